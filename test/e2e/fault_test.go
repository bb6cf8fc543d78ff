package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/testsupport/conformance"
)

// TestStdioBackendKilledMidCall kills a stdio backend (SIGKILL) while a slow
// call to it is in flight: the call fails with an error naming the backend,
// the other backends keep serving during the outage, and the backend is
// restarted and usable again.
func TestStdioBackendKilledMidCall(t *testing.T) {
	setupTools(t)
	t.Parallel()
	tl := needTools(t)
	// While the gate file exists, js/gate.mjs refuses to start
	// server-everything: the test holds the outage open for as long as it
	// looks at it, without depending on how fast vmcp restarts children.
	gate := filepath.Join(t.TempDir(), "gate")
	v := startVMCP(t, fmt.Sprintf(`name: fault
backends:
  - name: everything
    command: %q
    args: [%q, %q, %q, stdio]
  - name: fixture
    command: %q
    args: [--stdio]
`, tl.node, filepath.Join(tl.js, "gate.mjs"), gate, tl.everything(), bins.fixture))
	v.waitBackends(t, "ready", "everything", "fixture")
	vmcpPID := v.cmd.Process.Pid
	victim := childMatching(t, vmcpPID, "gate.mjs")

	cs, progress := connectWithProgress(t, v.URL, legacyVersion)
	callOK(t, cs, "everything_echo", map[string]any{"message": "before"})

	// A call that runs for a minute, reporting progress every second.
	slow := startSlowCall(t, cs, progress)

	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatalf("killing the backend (pid %d): %v", victim, err)
	}

	t.Run("the call in flight fails naming the backend", func(t *testing.T) {
		var o callOutcome
		select {
		case o = <-slow:
		case <-time.After(waitTimeout):
			t.Fatal("the call to the killed backend did not end")
		}
		t.Logf("the call in flight ended with: text %q, isError %v, err %v", o.text, o.isError, o.err)
		msg := o.text
		if o.err != nil {
			msg = o.err.Error()
		} else if !o.isError {
			t.Fatalf("the call to the killed backend succeeded: %q", o.text)
		}
		if !strings.Contains(msg, `"everything"`) {
			t.Errorf("the error %q does not name the backend", msg)
		}
	})

	t.Run("the backend is reported down", func(t *testing.T) {
		h := v.waitBackends(t, "down", "everything")
		if b := h.backend("everything"); b.Error == "" {
			t.Errorf("/readyz says everything is down without saying why: %+v", b)
		}
		// Its tools leave the catalog (checklist U2). A client that still
		// calls one (it listed before the backend went down) gets a tool
		// error naming the backend, not a bare "unknown tool".
		eventually(t, waitTimeout, "everything's tools leave tools/list", func() (bool, string) {
			names := withPrefix(toolNames(t, cs), "everything_")
			return len(names) == 0, fmt.Sprint(names)
		})
		text, isError, err := tryCall(t.Context(), cs, "everything_echo", map[string]any{"message": "during"})
		switch {
		case err != nil:
			t.Errorf("a call to a tool of the down backend: protocol error %v, want a tool error result", err)
		case !isError:
			t.Errorf("a call to a tool of the down backend succeeded: %q", text)
		case !strings.Contains(text, `backend "everything"`):
			t.Errorf("the tool error %q does not name the down backend", text)
		}
	})

	t.Run("the other backends keep serving", func(t *testing.T) {
		for range 3 {
			if got := callOK(t, cs, "fixture_test_simple_text", nil); got != conformance.SimpleText {
				t.Errorf("fixture_test_simple_text = %q, want %q", got, conformance.SimpleText)
			}
		}
		// A new session too, while the backend is still down.
		fresh := connect(t, v.URL, legacyVersion, nil)
		if got := callOK(t, fresh, "fixture_test_simple_text", nil); got != conformance.SimpleText {
			t.Errorf("fixture_test_simple_text on a new session = %q", got)
		}
		if st := v.health(t).backend("everything").State; st != "down" {
			t.Fatalf("everything is %s; the gate should have kept it down", st)
		}
	})

	if err := os.Remove(gate); err != nil {
		t.Fatal(err)
	}
	t.Run("the backend is restarted and usable", func(t *testing.T) {
		eventually(t, waitTimeout, "everything_echo works again", func() (bool, string) {
			text, isError, err := tryCall(t.Context(), cs, "everything_echo", map[string]any{"message": "after"})
			return err == nil && !isError && text == "Echo: after", fmt.Sprintf("%q isError=%v err=%v", text, isError, err)
		})
		h := v.health(t)
		if b := h.backend("everything"); b.State != "ready" || b.Restarts < 1 {
			t.Errorf("/readyz: everything is %+v, want ready after at least one restart", b)
		}
		if pid := childMatching(t, vmcpPID, "gate.mjs"); pid == victim {
			t.Errorf("the backend runs as pid %d, the killed process", pid)
		}
	})
}
