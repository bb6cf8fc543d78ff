package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/testsupport/conformance"
)

// modernMeta is the per-request _meta of a 2026-07-28 request.
const modernMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",` +
	`"io.modelcontextprotocol/clientInfo":{"name":"vmcp-e2e-raw","version":"1.0.0"},` +
	`"io.modelcontextprotocol/clientCapabilities":{}}`

// modernHeaders are the HTTP headers of a 2026-07-28 request.
func modernHeaders(method, name string) []string {
	h := []string{"Mcp-Protocol-Version: " + modernVersion, "Mcp-Method: " + method}
	if name != "" {
		h = append(h, "Mcp-Name: "+name)
	}
	return h
}

// TestModernAndLegacyClients serves a 2026-07-28 client (stateless:
// server/discover, then requests that each carry their own _meta) and a
// 2025-11-25 client (initialize, Mcp-Session-Id) on the same endpoint at the
// same time, with backends over both streamable HTTP and stdio.
func TestModernAndLegacyClients(t *testing.T) {
	setup(t)
	t.Parallel()
	v := startVMCP(t, fmt.Sprintf(`name: eras
backends:
  - name: http
    url: %q
  - name: stdio
    command: %q
    args: [--stdio]
`, startFixtureHTTP(t), bins.fixture))
	v.waitBackends(t, "ready", "http", "stdio")

	legacy := connect(t, v.URL, legacyVersion, nil)
	if legacy.ID() == "" {
		t.Error("the legacy session has no Mcp-Session-Id")
	}
	modern := connect(t, v.URL, modernVersion, nil) // the go-sdk's default: server/discover first
	if modern.ID() != "" {
		t.Errorf("the modern client got session id %q; 2026-07-28 has no sessions", modern.ID())
	}

	t.Run("both clients call tools, interleaved and concurrently", func(t *testing.T) {
		tools := []string{"http_test_simple_text", "stdio_test_simple_text"}
		for _, tool := range tools {
			for _, cs := range []*mcp.ClientSession{legacy, modern, legacy} {
				if got := callOK(t, cs, tool, nil); got != conformance.SimpleText {
					t.Errorf("%s = %q, want %q", tool, got, conformance.SimpleText)
				}
			}
		}
		var wg sync.WaitGroup
		for i := range 8 {
			cs := []*mcp.ClientSession{legacy, modern}[i%2]
			tool := tools[i/2%2]
			wg.Go(func() {
				text, isError, err := tryCall(t.Context(), cs, tool, nil)
				if err != nil || isError || text != conformance.SimpleText {
					t.Errorf("concurrent %s: %q isError=%v err=%v", tool, text, isError, err)
				}
			})
		}
		wg.Wait()
	})

	t.Run("both clients list the same tools", func(t *testing.T) {
		l, m := toolNames(t, legacy), toolNames(t, modern)
		if diff := cmp.Diff(l, m); diff != "" {
			t.Errorf("tools/list differs between the eras (-legacy +modern):\n%s", diff)
		}
		if !slices.Contains(m, "http_test_simple_text") || !slices.Contains(m, "stdio_test_simple_text") {
			t.Errorf("tools/list lacks the fixture tools: %v", m)
		}
	})

	t.Run("server/discover", func(t *testing.T) {
		r := do(t, http.MethodPost, v.URL, []byte(`{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{`+modernMeta+`}}`),
			modernHeaders("server/discover", "")...)
		m, ok := r.rpc()
		if r.status != http.StatusOK || !ok || m.Error != nil {
			t.Fatalf("server/discover: %v", r)
		}
		if id := r.header.Get("Mcp-Session-Id"); id != "" {
			t.Errorf("server/discover minted session id %q", id)
		}
		var res struct {
			ResultType        string          `json:"resultType"`
			SupportedVersions []string        `json:"supportedVersions"`
			Capabilities      json.RawMessage `json:"capabilities"`
			TTLMs             *int            `json:"ttlMs"`
			CacheScope        string          `json:"cacheScope"`
			Meta              map[string]struct {
				Name string `json:"name"`
			} `json:"_meta"`
		}
		if err := json.Unmarshal(m.Result, &res); err != nil {
			t.Fatal(err)
		}
		if res.ResultType != "complete" || !slices.Contains(res.SupportedVersions, modernVersion) ||
			!slices.Contains(res.SupportedVersions, legacyVersion) || len(res.Capabilities) == 0 ||
			res.TTLMs == nil || *res.TTLMs < 0 || res.CacheScope == "" ||
			res.Meta["io.modelcontextprotocol/serverInfo"].Name != "eras" {
			t.Errorf("server/discover result lacks required fields: %s", m.Result)
		}
	})

	t.Run("stateless tools/call on the wire", func(t *testing.T) {
		// A bogus session id is ignored: the request carries everything.
		headers := append(modernHeaders("tools/call", "stdio_test_simple_text"), "Mcp-Session-Id: BOGUS")
		r := do(t, http.MethodPost, v.URL,
			[]byte(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"stdio_test_simple_text","arguments":{},`+modernMeta+`}}`),
			headers...)
		m, ok := r.rpc()
		if r.status != http.StatusOK || !ok || m.Error != nil {
			t.Fatalf("tools/call: %v", r)
		}
		if id := r.header.Get("Mcp-Session-Id"); id != "" {
			t.Errorf("a modern tools/call got session id %q", id)
		}
		var res mcp.CallToolResult
		if err := json.Unmarshal(m.Result, &res); err != nil {
			t.Fatal(err)
		}
		if got := resultText(&res); got != conformance.SimpleText || res.IsError {
			t.Errorf("tools/call = %q (isError %v), want %q", got, res.IsError, conformance.SimpleText)
		}
	})

	t.Run("initialize never negotiates the modern revision", func(t *testing.T) {
		r := do(t, http.MethodPost, v.URL, []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2026-07-28","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`))
		m, ok := r.rpc()
		var res struct {
			ProtocolVersion string `json:"protocolVersion"`
		}
		if !ok || m.Error != nil || json.Unmarshal(m.Result, &res) != nil || res.ProtocolVersion != legacyVersion {
			t.Errorf("initialize asking for %s: %v, want protocolVersion %s", modernVersion, r, legacyVersion)
		}
	})

	t.Run("modern GET and DELETE are 405", func(t *testing.T) {
		for _, method := range []string{http.MethodGet, http.MethodDelete} {
			r := do(t, method, v.URL, nil, "Mcp-Protocol-Version: "+modernVersion, "Accept: text/event-stream")
			if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
				t.Errorf("modern %s: %v (Allow %q), want 405 with Allow: POST", method, r, r.header.Get("Allow"))
			}
		}
	})

	t.Run("modern ping is an unknown method", func(t *testing.T) {
		r := do(t, http.MethodPost, v.URL, []byte(`{"jsonrpc":"2.0","id":3,"method":"ping","params":{`+modernMeta+`}}`),
			modernHeaders("ping", "")...)
		if m, ok := r.rpc(); r.status != http.StatusNotFound || !ok || m.Error == nil || m.Error.Code != -32601 {
			t.Errorf("modern ping: %v, want 404 with -32601", r)
		}
	})

	t.Run("the legacy session is unaffected", func(t *testing.T) {
		if err := legacy.Ping(t.Context(), nil); err != nil {
			t.Errorf("legacy ping: %v", err)
		}
		if got := callOK(t, legacy, "http_test_simple_text", nil); got != conformance.SimpleText {
			t.Errorf("http_test_simple_text = %q", got)
		}
	})
}
