package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// dynamicBackend is a go-sdk MCP server over streamable HTTP, run by the
// test, whose tools the test changes.
type dynamicBackend struct {
	server *mcp.Server
	srv    *http.Server
	done   chan struct{} // closed when Serve has returned
}

// startDynamicBackend serves an MCP server with the given tools at addr
// ("127.0.0.1:0" for any port); it is stopped when the test ends.
func startDynamicBackend(t *testing.T, addr string, tools ...string) (*dynamicBackend, string) {
	t.Helper()
	d := &dynamicBackend{
		server: mcp.NewServer(&mcp.Implementation{Name: "dynamic", Version: "1.0.0"}, nil),
		done:   make(chan struct{}),
	}
	for _, name := range tools {
		d.addTool(name)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	d.srv = &http.Server{
		Handler:           mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return d.server }, nil),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		defer close(d.done)
		if err := d.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("dynamic backend: %v", err)
		}
	}()
	t.Cleanup(d.stop)
	return d, ln.Addr().String()
}

// addTool adds a tool that answers with its own name; the go-sdk server
// sends notifications/tools/list_changed to its sessions.
func (d *dynamicBackend) addTool(name string) {
	d.server.AddTool(&mcp.Tool{Name: name, InputSchema: map[string]any{"type": "object"}},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "I am " + name}}}, nil
		})
}

// stop closes the listener and every connection, open streams included, as
// a crash would.
func (d *dynamicBackend) stop() {
	_ = d.srv.Close()
	<-d.done
}

// TestListChanged checks that a connected legacy client follows the
// catalog: a backend adding a tool, a backend going away (found by health
// checks) and coming back each reach it as notifications/tools/list_changed
// and show in tools/list.
func TestListChanged(t *testing.T) {
	setup(t)
	t.Parallel()
	dyn, addr := startDynamicBackend(t, "127.0.0.1:0", "alpha")
	v := startVMCP(t, fmt.Sprintf(`name: listchanged
config:
  operational:
    failureHandling:
      healthCheckInterval: 200ms
      unhealthyThreshold: 1
backends:
  - name: dyn
    url: %q
  - name: fixture
    command: %q
    args: [--stdio]
`, "http://"+addr+"/mcp", bins.fixture))
	v.waitBackends(t, "ready", "dyn", "fixture")

	changed := make(chan struct{}, 100)
	cs := connect(t, v.URL, legacyVersion, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			changed <- struct{}{}
		},
	})
	drain := func() {
		for {
			select {
			case <-changed:
			default:
				return
			}
		}
	}
	waitNotified := func(t *testing.T, what string) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(waitTimeout):
			t.Fatalf("no notifications/tools/list_changed after %s", what)
		}
	}
	// waitTools polls tools/list until the dyn_ tools are want.
	waitTools := func(t *testing.T, want ...string) {
		t.Helper()
		eventually(t, waitTimeout, fmt.Sprintf("dyn tools %v", want), func() (bool, string) {
			names := toolNames(t, cs)
			got := withPrefix(names, "dyn_")
			if len(withPrefix(names, "fixture_")) == 0 {
				return false, fmt.Sprintf("the fixture's tools are gone too: %v", names)
			}
			return slices.Equal(got, want), fmt.Sprintf("%v", got)
		})
	}

	if got := withPrefix(toolNames(t, cs), "dyn_"); !slices.Equal(got, []string{"dyn_alpha"}) {
		t.Fatalf("dyn tools at start: %v, want [dyn_alpha]", got)
	}

	t.Run("a backend adds a tool", func(t *testing.T) {
		drain()
		dyn.addTool("beta")
		waitNotified(t, "the backend added a tool")
		// vmcp registers the tool (which starts the SDK's notification
		// timer) just before it swaps in the catalog tools/list reads, so
		// the list may lag the notification by a moment: poll.
		waitTools(t, "dyn_alpha", "dyn_beta")
		if got := callOK(t, cs, "dyn_beta", nil); got != "I am beta" {
			t.Errorf("dyn_beta = %q", got)
		}
	})

	t.Run("a backend goes away", func(t *testing.T) {
		drain()
		dyn.stop()
		waitTools(t) // none
		waitNotified(t, "the backend went away")
		if h := v.health(t); h.backend("dyn").State != "down" {
			t.Errorf("/readyz: dyn is %+v, want down", h.backend("dyn"))
		}
		text, isError := call(t, cs, "fixture_test_simple_text", nil)
		if isError || text == "" {
			t.Errorf("the fixture stopped working: %q", text)
		}
	})

	t.Run("the backend comes back on the same address", func(t *testing.T) {
		drain()
		startDynamicBackend(t, addr, "alpha", "beta", "gamma")
		waitTools(t, "dyn_alpha", "dyn_beta", "dyn_gamma")
		waitNotified(t, "the backend came back")
		if got := callOK(t, cs, "dyn_gamma", nil); got != "I am gamma" {
			t.Errorf("dyn_gamma = %q", got)
		}
		if b := v.health(t).backend("dyn"); b.State != "ready" || b.Restarts < 1 {
			t.Errorf("/readyz: dyn is %+v, want ready after a reconnect", b)
		}
	})
}
