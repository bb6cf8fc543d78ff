package e2e

import (
	"cmp"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/vmcp-dev/vmcp/internal/testsupport/conformance"
)

// maxRequestBytes is the body limit the edge test configures.
const maxRequestBytes = 64 << 10

// TestHTTPEdge sends bad input to the MCP endpoint: each request gets the
// status and JSON-RPC error code of the checklist (MCP-CHECKLIST.md groups
// 1 and 2), and vmcp keeps serving after every one of them.
func TestHTTPEdge(t *testing.T) {
	setup(t)
	t.Parallel()
	v := startVMCP(t, fmt.Sprintf(`name: edge
backends:
  - name: fixture
    command: %q
    args: [--stdio]
server:
  maxRequestBytes: %d
  allowedOrigins: ["https://app.example"]
`, bins.fixture, maxRequestBytes))
	v.waitBackends(t, "ready", "fixture")
	live := rawSession(t, v.URL) // a session that must survive every case

	const ping = `{"jsonrpc":"2.0","id":7,"method":"ping"}`
	inSession := func(id string) []string {
		return []string{"Mcp-Session-Id: " + id, "Mcp-Protocol-Version: " + legacyVersion}
	}
	oversized := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":%q}}`, strings.Repeat("a", maxRequestBytes))
	const evil = "Origin: https://evil.example"

	tests := []struct {
		name    string
		method  string
		body    string
		headers []string
		// session: "live" sends the shared session's id, "own" a fresh
		// session's (for requests that would end or hold it if accepted).
		session    string
		wantStatus int
		// wantCode is the JSON-RPC error code the body must carry.
		wantCode int64
		// wantID is the id the error must carry: the request's once its
		// body is read, else null.
		wantID string
	}{
		{name: "malformed JSON", method: "POST", body: `{"jsonrpc":"2.0","id":1,"method":`, session: "live",
			wantStatus: 400, wantCode: -32700},
		{name: "invalid UTF-8", method: "POST", body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"x\":\"\xff\xfe\"}}", session: "live",
			wantStatus: 400, wantCode: -32700},
		{name: "JSON-RPC batch", method: "POST", body: `[` + ping + `]`, session: "live",
			wantStatus: 400, wantCode: -32600},
		{name: "oversized body", method: "POST", body: oversized, session: "live",
			wantStatus: 413, wantCode: -32600},
		{name: "id null", method: "POST", body: `{"jsonrpc":"2.0","id":null,"method":"ping"}`, session: "live",
			wantStatus: 400, wantCode: -32600},
		{name: "unknown session POST", method: "POST", body: ping, headers: []string{"Mcp-Session-Id: NOSUCHSESSION"},
			wantStatus: 404},
		{name: "unknown session GET", method: "GET", headers: []string{"Mcp-Session-Id: NOSUCHSESSION", "Accept: text/event-stream"},
			wantStatus: 404},
		{name: "unknown session DELETE", method: "DELETE", headers: []string{"Mcp-Session-Id: NOSUCHSESSION"},
			wantStatus: 404},
		{name: "foreign Origin POST", method: "POST", body: ping, headers: []string{evil}, session: "own",
			wantStatus: 403, wantCode: -32600},
		{name: "foreign Origin GET", method: "GET", headers: []string{evil, "Accept: text/event-stream"}, session: "own",
			wantStatus: 403, wantCode: -32600},
		{name: "foreign Origin DELETE", method: "DELETE", headers: []string{evil}, session: "own",
			wantStatus: 403, wantCode: -32600},
		{name: "foreign Origin initialize", method: "POST", body: initializeBody, headers: []string{evil},
			wantStatus: 403, wantCode: -32600},
		// Controls: the origin check does not refuse everything.
		{name: "allowed Origin POST", method: "POST", body: ping, headers: []string{"Origin: https://app.example"}, session: "live",
			wantStatus: 200},
		{name: "loopback Origin POST", method: "POST", body: ping, headers: []string{"Origin: http://localhost:5173"}, session: "live",
			wantStatus: 200},
		{name: "request without a session", method: "POST", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
			wantStatus: 400, wantCode: -32600, wantID: "1"},
		{name: "unknown protocol revision", method: "POST", body: ping, headers: []string{"Mcp-Protocol-Version: 2099-01-01"}, session: "live",
			wantStatus: 400, wantCode: -32022, wantID: "7"},
		{name: "foreign Host", method: "POST", body: ping, headers: []string{"Host: evil.example"}, session: "live",
			wantStatus: 403, wantCode: -32600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			headers := tc.headers
			switch tc.session {
			case "live":
				headers = append(inSession(live), headers...)
			case "own":
				headers = append(inSession(rawSession(t, v.URL)), headers...)
			}
			r := do(t, tc.method, v.URL, []byte(tc.body), headers...)
			if r.status != tc.wantStatus {
				t.Errorf("status %d, want %d; response: %v", r.status, tc.wantStatus, r)
			}
			if tc.wantCode != 0 {
				m, ok := r.rpc()
				switch {
				case !ok:
					t.Errorf("the body is not a JSON-RPC message: %v", r)
				case ok && (m.Error == nil || m.Error.Code != tc.wantCode):
					t.Errorf("the body is %s, want a JSON-RPC error with code %d", r.body, tc.wantCode)
				case ok && string(m.ID) != cmp.Or(tc.wantID, "null"):
					t.Errorf("the error has id %s, want %s", m.ID, cmp.Or(tc.wantID, "null"))
				}
			}
			if tc.wantStatus == 200 {
				if m, ok := r.rpc(); !ok || m.Error != nil || string(m.ID) != "7" {
					t.Errorf("want the ping's result, got %v", r)
				}
			}
			assertServing(t, v, live)
		})
	}

	t.Run("terminated session", func(t *testing.T) {
		id := rawSession(t, v.URL)
		if r := do(t, http.MethodDelete, v.URL, nil, inSession(id)...); r.status/100 != 2 {
			t.Fatalf("DELETE: %v, want 2xx", r)
		}
		if r := do(t, http.MethodPost, v.URL, []byte(ping), inSession(id)...); r.status != http.StatusNotFound {
			t.Errorf("POST on the terminated session: %v, want 404", r)
		}
		assertServing(t, v, live)
	})

	t.Run("the gateway still routes calls", func(t *testing.T) {
		cs := connect(t, v.URL, legacyVersion, nil)
		if got := callOK(t, cs, "fixture_test_simple_text", nil); got != conformance.SimpleText {
			t.Errorf("fixture_test_simple_text = %q, want %q", got, conformance.SimpleText)
		}
	})
}

// assertServing checks that vmcp is still running and that session id still
// answers a ping.
func assertServing(t *testing.T, v *vmcp, session string) {
	t.Helper()
	select {
	case <-v.exited:
		t.Fatalf("vmcp exited: %v", v.err)
	default:
	}
	r := do(t, http.MethodPost, v.URL, []byte(`{"jsonrpc":"2.0","id":"alive","method":"ping"}`),
		"Mcp-Session-Id: "+session, "Mcp-Protocol-Version: "+legacyVersion)
	if m, ok := r.rpc(); r.status != http.StatusOK || !ok || m.Error != nil || string(m.Result) != "{}" {
		t.Fatalf("vmcp no longer serves the session: ping got %v", r)
	}
}
