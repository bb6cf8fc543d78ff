package backend_test

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/backend"
	"github.com/vmcp-dev/vmcp/internal/testsupport/logbuf"
)

func testLogger(buf *logbuf.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestOptionalListMethods: a backend that declares resources and prompts
// but answers resources/templates/list and prompts/list with -32601 (the
// low-level TypeScript SDK server does, for handlers never registered) is
// ready, with no templates and no prompts; the log names the methods.
func TestOptionalListMethods(t *testing.T) {
	t.Parallel()
	s := &rawServer{
		caps: `{"tools":{},"resources":{},"prompts":{}}`,
		answers: map[string]func(http.ResponseWriter, *http.Request, *rpcMessage){
			"resources/list": func(w http.ResponseWriter, _ *http.Request, m *rpcMessage) {
				writeJSON(w, result(m, `{"resources":[{"uri":"file:///a","name":"a"}]}`))
			},
		},
	}
	var logs logbuf.Buffer
	b, _ := startRaw(t, s, &backend.Options{Logger: testLogger(&logs)}, backend.Spec{})
	mustReady(t, b)
	inv := b.Inventory()
	if len(inv.Tools) != 1 || len(inv.Resources) != 1 || len(inv.Templates) != 0 || len(inv.Prompts) != 0 {
		t.Errorf("inventory: %d tools, %d resources, %d templates, %d prompts; want 1, 1, 0, 0",
			len(inv.Tools), len(inv.Resources), len(inv.Templates), len(inv.Prompts))
	}
	for _, method := range []string{"resources/templates/list", "prompts/list"} {
		if !strings.Contains(logs.String(), method) {
			t.Errorf("the log does not name %s:\n%s", method, logs.String())
		}
	}
}

// TestMalformedAnswersFailOneCall: on the SDK path (CallTool,
// ReadResource: what sessions that relay, calls with a progress token and
// all resources and prompts traffic use), a malformed answer fails that
// call with an error naming the backend; the backend stays ready, on the
// same connection, and the next call goes through.
func TestMalformedAnswersFailOneCall(t *testing.T) {
	t.Parallel()
	tool := func(f func(w http.ResponseWriter, m *rpcMessage)) func(http.ResponseWriter, *http.Request, *rpcMessage) {
		return func(w http.ResponseWriter, _ *http.Request, m *rpcMessage) { f(w, m) }
	}
	s := &rawServer{
		caps: `{"tools":{},"resources":{}}`,
		answers: map[string]func(http.ResponseWriter, *http.Request, *rpcMessage){
			"resources/list": tool(func(w http.ResponseWriter, m *rpcMessage) {
				writeJSON(w, result(m, `{"resources":[{"uri":"file:///a","name":"a"}]}`))
			}),
			"resources/templates/list": tool(func(w http.ResponseWriter, m *rpcMessage) {
				writeJSON(w, result(m, `{"resourceTemplates":[]}`))
			}),
			"resources/read": tool(func(w http.ResponseWriter, _ *rpcMessage) { writeJSON(w, `{"jsonrpc":"2.0",`) }),
			"tools/call:garbage": tool(func(w http.ResponseWriter, _ *rpcMessage) {
				writeJSON(w, `this is not JSON`)
			}),
			"tools/call:html": tool(func(w http.ResponseWriter, _ *rpcMessage) {
				w.Header().Set("Content-Type", "text/html")
				_, _ = w.Write([]byte("<html>gateway error</html>"))
			}),
			"tools/call:forbidden": tool(func(w http.ResponseWriter, _ *rpcMessage) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusForbidden)
				_, _ = w.Write([]byte("<html>WAF: token=secret-value</html>"))
			}),
			"tools/call:bad-event": tool(func(w http.ResponseWriter, _ *rpcMessage) {
				writeEvents(w, "data: {not json\n\n")
			}),
			"tools/call:cut-stream": tool(func(w http.ResponseWriter, _ *rpcMessage) {
				writeEvents(w, `data: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}`+"\n\n", "data: {\"jsonrpc\":")
				panic(http.ErrAbortHandler) // the connection breaks mid-stream
			}),
			"tools/call:cut-body": tool(func(w http.ResponseWriter, m *rpcMessage) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Length", "1000")
				_, _ = w.Write([]byte(result(m, `{"content":[`)))
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			}),
			"tools/call:wrong-id": tool(func(w http.ResponseWriter, _ *rpcMessage) {
				writeJSON(w, `{"jsonrpc":"2.0","id":"someone-else","result":{}}`)
			}),
			"tools/call:rpc-error-403": tool(func(w http.ResponseWriter, m *rpcMessage) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":` + string(m.ID) + `,"error":{"code":-32001,"message":"not yours"}}`))
			}),
		},
	}
	b, _ := startRaw(t, s, &backend.Options{MinBackoff: 10 * time.Millisecond}, backend.Spec{CallTimeout: 10 * time.Second})
	mustReady(t, b)
	ready := func(t *testing.T) {
		t.Helper()
		waitFor(t, 20*time.Second, "the backend ready", func() (bool, string) {
			st := b.Status()
			return st.State == backend.StateReady, st.Error
		})
	}
	good := func(t *testing.T) {
		t.Helper()
		res, err := b.CallTool(t.Context(), nil, &mcp.CallToolParams{Name: "good", Arguments: map[string]any{}})
		if err != nil || res.IsError {
			t.Fatalf("a good call after it: %v %v", res, err)
		}
	}
	for _, tc := range []struct{ tool, want string }{
		{"garbage", "invalid JSON-RPC message"},
		{"html", `unexpected Content-Type "text/html"`},
		{"forbidden", "HTTP 403 Forbidden"},
		{"bad-event", "invalid JSON-RPC message"},
		{"cut-stream", "stream ended without an answer"},
		{"cut-body", "reading the backend's answer"},
		{"wrong-id", "not the response to the call"},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			ready(t) // each case on a ready backend, even where an earlier one broke it
			_, err := b.CallTool(t.Context(), nil, &mcp.CallToolParams{Name: tc.tool, Arguments: map[string]any{}})
			var ce *backend.CallError
			if !errors.As(err, &ce) || ce.Backend != "raw" || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "secret") {
				t.Errorf("error %v (%T); want a CallError naming the backend, saying %q, quoting no body", err, err, tc.want)
			}
			var rpcErr *jsonrpc.Error
			if errors.As(err, &rpcErr) {
				t.Errorf("the fault came back as the backend's own JSON-RPC error %v", rpcErr)
			}
			mustReady(t, b)
			good(t)
		})
	}
	t.Run("a JSON-RPC error in an HTTP error passes as the backend's", func(t *testing.T) {
		ready(t)
		_, err := b.CallTool(t.Context(), nil, &mcp.CallToolParams{Name: "rpc-error-403", Arguments: map[string]any{}})
		var rpcErr *jsonrpc.Error
		if !errors.As(err, &rpcErr) || rpcErr.Code != -32001 {
			t.Errorf("error %v; want the backend's -32001", err)
		}
		good(t)
	})
	t.Run("resources/read", func(t *testing.T) {
		ready(t)
		_, err := b.ReadResource(t.Context(), nil, &mcp.ReadResourceParams{URI: "file:///a"})
		var ce *backend.CallError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "invalid JSON-RPC message") {
			t.Errorf("error %v; want a CallError saying the answer is not JSON-RPC", err)
		}
		mustReady(t, b)
		good(t)
	})
	if st := b.Status(); st.Restarts != 0 {
		t.Errorf("the backend restarted %d times (%s); want its connection kept", st.Restarts, st.Error)
	}
}
