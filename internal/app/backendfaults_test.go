package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/app"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// garbageBackend is a hand-written MCP server whose tool "garbage" answers
// with something that is not JSON-RPC and whose tool "good" answers.
func garbageBackend(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct{ Name string }
	}
	_ = json.NewDecoder(r.Body).Decode(&m)
	w.Header().Set("Mcp-Session-Id", "s")
	w.Header().Set("Content-Type", "application/json")
	answer := func(res string) { fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, m.ID, res) }
	switch {
	case len(m.ID) == 0:
		w.WriteHeader(http.StatusAccepted)
	case m.Method == "initialize":
		answer(`{"protocolVersion":"2025-11-25","capabilities":{"tools":{},"logging":{}},"serverInfo":{"name":"g","version":"1"}}`)
	case m.Method == "tools/list":
		answer(`{"tools":[{"name":"garbage","inputSchema":{"type":"object"}},{"name":"good","inputSchema":{"type":"object"}}]}`)
	case m.Method == "tools/call" && m.Params.Name == "garbage":
		_, _ = io.WriteString(w, "<html>not JSON-RPC</html>")
	default:
		answer(`{"content":[{"type":"text","text":"good"}]}`)
	}
}

// TestBackendFaultsThroughTheGateway: a malformed backend answer is an
// isError result naming the backend for the calling client, on the fast
// path and on the SDK's (a session that set a log level), and the backend's
// tools stay listed; secrets in backend URLs appear neither on /readyz nor
// in results or logs.
func TestBackendFaultsThroughTheGateway(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(garbageBackend))
	t.Cleanup(be.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	var logs syncBuffer
	addr := vmcptest.FreeAddr(t)
	vmcptest.Start(t, fmt.Sprintf(`backends:
- {name: raw, url: "%s/mcp?token=tok-secret"}
- {name: gone, url: "http://alice:pw-secret@%s/mcp?key=key-secret"}
server: {listen: %s}
`, be.URL, closed, addr), &app.Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	secretFree := func(what, text string) {
		t.Helper()
		for _, s := range []string{"tok-secret", "pw-secret", "key-secret", "alice"} {
			if strings.Contains(text, s) {
				t.Errorf("%s shows %q: %s", what, s, text)
			}
		}
	}
	endpoint := "http://" + addr + "/mcp"
	fast := vmcptest.Connect(t, endpoint, "", nil)
	relaying := vmcptest.Connect(t, endpoint, "", nil)
	if err := relaying.SetLoggingLevel(t.Context(), &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*mcp.ClientSession{"fast path": fast, "SDK path": relaying} {
		res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "raw_garbage"})
		if err != nil || !res.IsError {
			t.Fatalf("%s: %v %+v; want an isError result", name, err, res)
		}
		text := res.Content[0].(*mcp.TextContent).Text
		if !strings.HasPrefix(text, `backend "raw": `) || strings.Contains(text, "<html>") {
			t.Errorf("%s: %q; want the text to name the backend and quote nothing of its answer", name, text)
		}
		secretFree(name+"'s result", text)
		res, err = s.CallTool(t.Context(), &mcp.CallToolParams{Name: "raw_good"})
		if err != nil || res.IsError {
			t.Errorf("%s: the next call: %v %+v", name, err, res)
		}
		tools, err := s.ListTools(t.Context(), nil)
		if err != nil || len(tools.Tools) != 2 {
			t.Errorf("%s: tools after the fault: %v %v; want the backend's 2", name, tools, err)
		}
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"name":"gone","state":"down"`) || !strings.Contains(string(body), "REDACTED") {
		t.Errorf("/readyz: %s; want the unreachable backend down, its URL redacted", body)
	}
	secretFree("/readyz", string(body))
	secretFree("the log", logs.String())
}
