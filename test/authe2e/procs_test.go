package authe2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/testsupport/hydra"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// binDir holds the vmcp binary built for this package's tests.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "vmcp-authe2e-bin-")
	if err != nil {
		return "", err
	}
	binDir = dir
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/vmcp")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building vmcp: %v\n%s", err, out)
	}
	return filepath.Join(dir, "vmcp"), nil
})

// vmcpBinary builds cmd/vmcp once for the package.
func vmcpBinary(t *testing.T) string {
	t.Helper()
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// vmcpProc is a vmcp process started by a test.
type vmcpProc struct {
	t      *testing.T
	name   string
	args   []string
	env    []string
	base   string // http://listen
	cmd    *exec.Cmd
	exited chan struct{}
	out    *bytes.Buffer
	mu     sync.Mutex // guards out
}

type lockedWriter struct{ p *vmcpProc }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

// startVMCP runs the vmcp binary with the configuration (file contents)
// and extra flags, listening on addr, until the test ends, and waits until
// it is ready. env adds to a minimal environment.
func startVMCP(t *testing.T, name, config, addr string, env []string, flags ...string) *vmcpProc {
	t.Helper()
	file := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &vmcpProc{t: t, name: name, base: "http://" + addr, out: &bytes.Buffer{},
		args: append([]string{"serve", "--config", file, "--listen", addr}, flags...),
		env:  append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)}
	p.start()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s output:\n%s", name, p.out.String())
			p.mu.Unlock()
		}
	})
	return p
}

func (p *vmcpProc) start() {
	p.t.Helper()
	cmd := exec.Command(vmcpBinary(p.t), p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = lockedWriter{p}, lockedWriter{p}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p.cmd, p.exited = cmd, exited
	vmcptest.WaitReady(p.t, p.base)
}

// stop ends the process (SIGTERM: a clean shutdown; SIGKILL: a crash) and
// waits up to 30s for it.
func (p *vmcpProc) stop(sig syscall.Signal) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.t.Errorf("%s did not exit within 30s of %v", p.name, sig)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// restart stops the process cleanly and starts it again with the same
// arguments.
func (p *vmcpProc) restart() {
	p.t.Helper()
	p.stop(syscall.SIGTERM)
	p.start()
}

// clientState is what mcp-oauth-client.mjs keeps in its --state file.
type clientState struct {
	Client struct {
		ClientID string `json:"client_id"`
	} `json:"client"`
	Tokens struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	} `json:"tokens"`
	Counts struct {
		Registrations, Logins, Refreshes int
	} `json:"counts"`
}

func readState(t *testing.T, file string) clientState {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var st clientState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// runLivingClient runs the TypeScript SDK client with a state file (its
// registration and tokens live on between runs) and returns its steps.
func runLivingClient(t *testing.T, h *hydra.Hydra, mcpURL, state string, flags []string, script string) []any {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	args := append([]string{"--url", mcpURL, "--state", state}, h.NodeArgs(hydra.Login{})...)
	args = append(append(args, flags...), "script", script)
	out, err := hydra.RunNodeScript(ctx, t, "mcp-oauth-client.mjs", args...)
	if err != nil {
		t.Fatalf("TypeScript client (%v) failed: %v\n%s", flags, err, out)
	}
	var steps []any
	if err := json.Unmarshal(out, &steps); err != nil {
		t.Fatalf("client output is not a JSON list: %v\n%s", err, out)
	}
	return steps
}

// checkCall fails unless a step is the fixture's simple text result.
func checkCall(t *testing.T, step any) {
	t.Helper()
	b, _ := json.Marshal(step)
	if !strings.Contains(string(b), "This is a simple text response for testing.") {
		t.Errorf("tools/call = %s", b)
	}
}

// statelessCall sends one 2026-07-28 tools/call (no session) with token.
func statelessCall(t *testing.T, mcpURL, token string) (int, string) {
	t.Helper()
	return vmcptest.Stateless(t, mcpURL, token, "tools/call", "fixture_test_simple_text", `"name":"fixture_test_simple_text","arguments":{}`)
}
