package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stopGrace is what vmcp may take, after the shutdown timeout, to stop its
// stdio children: each gets its stdin closed, then SIGTERM after 2s, then
// SIGKILL; they are stopped in parallel.
const stopGrace = 10 * time.Second

// TestShutdown sends SIGTERM to vmcp with stdio backends — one started
// through npx, so that it has grandchildren — and checks that it exits with
// status 0 within its shutdown timeout and leaves no process behind.
func TestShutdown(t *testing.T) {
	setupTools(t)
	t.Parallel()
	tl := needTools(t)
	tests := []struct {
		name            string
		shutdownTimeout time.Duration
		// callInFlight starts a minute-long call before the signal, which
		// vmcp must cancel when the shutdown timeout is up.
		callInFlight bool
		// deadline bounds the wait for the exit.
		deadline time.Duration
	}{
		{name: "idle", shutdownTimeout: 10 * time.Second, deadline: 10 * time.Second},
		{name: "call in flight", shutdownTimeout: 2 * time.Second, callInFlight: true, deadline: 2*time.Second + stopGrace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := startVMCP(t, fmt.Sprintf(`name: shutdown
server:
  shutdownTimeout: %s
backends:
  - name: fixture
    command: %q
    args: [--stdio]
  - name: memory
    command: npx
    args: [-y, "@modelcontextprotocol/server-memory"]
    cwd: %q
    env:
      MEMORY_FILE_PATH: %q
      npm_config_offline: "true"
      npm_config_update_notifier: "false"
  - name: everything
    command: %q
    args: [%q, stdio]
`, tc.shutdownTimeout, bins.fixture, tl.npmDir, filepath.Join(t.TempDir(), "memory.jsonl"), tl.node, tl.everything()))
			v.waitBackends(t, "ready", "fixture", "memory", "everything")
			pid := v.cmd.Process.Pid
			tree := descendants(t, pid)
			var grandchildren []int
			for _, p := range tree {
				if info, ok := readProc(p); ok && info.ppid != pid {
					grandchildren = append(grandchildren, p)
				}
			}
			if len(tree) < 4 || len(grandchildren) == 0 {
				t.Fatalf("vmcp's process tree is %v (grandchildren %v): want the three backends and npx's children", tree, grandchildren)
			}
			for _, p := range tree {
				t.Logf("before SIGTERM: pid %d: %s", p, cmdline(p))
			}
			t.Cleanup(func() { // if the test failed, leave nothing behind
				for _, p := range tree {
					if alive(p) {
						_ = syscall.Kill(p, syscall.SIGKILL)
					}
				}
			})

			var callDone <-chan callOutcome // how the call in flight ended
			if tc.callInFlight {
				cs, progress := connectWithProgress(t, v.URL, legacyVersion)
				callDone = startSlowCall(t, cs, progress)
			}

			if err := v.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case <-v.exited:
			case <-time.After(tc.deadline):
				t.Fatalf("vmcp did not exit within %s of SIGTERM (shutdown timeout %s)", tc.deadline, tc.shutdownTimeout)
			}
			if code, desc := exitCode(v.err); code != 0 {
				t.Errorf("vmcp exited with %s, want exit status 0", desc)
			}
			if !v.logged(`msg=stopped`) {
				t.Error(`vmcp's log lacks its "stopped" line`)
			}
			if tc.callInFlight {
				select {
				case o := <-callDone:
					how := o.String()
					t.Logf("the call in flight ended with %s", how)
					if strings.HasPrefix(how, "success") {
						t.Error("the call in flight succeeded; it should have been cancelled at the shutdown timeout")
					}
				case <-time.After(waitTimeout):
					t.Error("the call in flight never ended")
				}
			}
			eventually(t, stopGrace, "every process vmcp started is gone", func() (bool, string) {
				left := slices.DeleteFunc(slices.Clone(tree), func(p int) bool { return !alive(p) })
				var desc []string
				for _, p := range left {
					desc = append(desc, fmt.Sprintf("%d %s", p, cmdline(p)))
				}
				return len(left) == 0, fmt.Sprint(desc)
			})
		})
	}
}
