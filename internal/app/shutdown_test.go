package app_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// goroutines returns the stacks of the running goroutines, by the header
// line that names each ("goroutine 12 [select]:").
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		head, _, _ := strings.Cut(string(g), " [")
		out[head] = string(g)
	}
	return out
}

// TestShutdownWaitsForItsGoroutines: when Shutdown returns, every
// goroutine the App started has stopped: the catalog loop and its helpers,
// the policy file watcher, and the goroutines that watch the sessions of
// the MCP server; those it looks for once, without waiting. The sessions
// themselves are closed (the go-sdk's goroutines of a closed connection
// stop just after it reports it is done).
func TestShutdownWaitsForItsGoroutines(t *testing.T) {
	policy := filepath.Join(t.TempDir(), "policy.cedar")
	if err := os.WriteFile(policy, []byte(`permit(principal, action, resource);`), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := vmcptest.FreeAddr(t)
	a, _ := vmcptest.New(t, fmt.Sprintf(`
server: {listen: %s}
backends: []
incomingAuth:
  type: anonymous
  authzConfig: {type: file, file: {policyFiles: [%s], reloadInterval: 10ms}}
`, addr, policy), nil)
	before := goroutines()
	a.Start()
	vmcptest.WaitReady(t, "http://"+addr)
	for range 3 { // sessions that are never closed by their clients
		vmcptest.Initialize(t, addr, `{"sampling":{}}`)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// vmcp's own goroutines must be gone at once.
	started := func(match string) []string {
		var out []string
		for head, stack := range goroutines() {
			if _, old := before[head]; !old && strings.Contains(running(stack), match) {
				out = append(out, stack)
			}
		}
		return out
	}
	for _, stack := range started("vmcp-dev/vmcp/internal/") {
		t.Errorf("a goroutine the App started is still running after Shutdown returned:\n%s", stack)
	}
	// The go-sdk's connections report that they are done just before their
	// goroutines return: those get a moment.
	deadline := time.Now().Add(5 * time.Second)
	for left := started("modelcontextprotocol/go-sdk"); len(left) > 0; left = started("modelcontextprotocol/go-sdk") {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of the MCP server's sessions still run 5s after Shutdown returned, the first:\n%s", len(left), left[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// running returns the frames of a goroutine's stack, without the line that
// says which goroutine created it.
func running(stack string) string {
	frames, _, _ := strings.Cut(stack, "\ncreated by ")
	return frames
}
