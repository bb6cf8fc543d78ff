package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/app"
	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// recorder is a real MCP backend over streamable HTTP that records every
// request it receives (headers and body) and whose whoami tool answers with
// the credentials of the call.
type recorder struct {
	srv     *httptest.Server
	mu      sync.Mutex
	traffic bytes.Buffer
}

func newRecorder(t *testing.T) *recorder { return newRecorderRequiring(t, "") }

// newRecorderRequiring answers 401 to every request without the API key.
func newRecorderRequiring(t *testing.T, apiKey string) *recorder {
	t.Helper()
	r := &recorder{}
	s := mcp.NewServer(&mcp.Implementation{Name: "recorder"}, nil)
	s.AddTool(&mcp.Tool{Name: "whoami", InputSchema: map[string]any{"type": "object"}},
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			h := req.Extra.Header
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{
				Text: "authorization=" + h.Get("Authorization") + ";apikey=" + h.Get("X-Api-Key")}}}, nil
		})
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if apiKey != "" && req.Header.Get("X-Api-Key") != apiKey {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		fmt.Fprintf(&r.traffic, "%s %s %v %s\n", req.Method, req.URL, req.Header, body)
		r.mu.Unlock()
		req.Body = io.NopCloser(bytes.NewReader(body))
		mcpHandler.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) seen() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.traffic.String()
}

// extSTS is an independent RFC 8693 token service.
type extSTS struct {
	srv       *httptest.Server
	exchanges atomic.Int64
	subjects  sync.Map // token issued -> subject token received
}

func newExtSTS(t *testing.T) *extSTS {
	x := &extSTS{}
	x.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, secret, _ := r.BasicAuth(); id != "vmcp" || secret != "ext-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		tok := fmt.Sprintf("sts-token-%d", x.exchanges.Add(1))
		x.subjects.Store(tok, r.FormValue("subject_token"))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":600}`, tok)
	}))
	t.Cleanup(x.srv.Close)
	return x
}

func claimsOf(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	_ = json.Unmarshal(b, &c)
	return c
}

// TestOutgoingStrategies: each backend gets exactly its credential, per
// user, with two users calling in parallel; the client's token reaches no
// backend and no log.
func TestOutgoingStrategies(t *testing.T) {
	idp := fakeidp.Start(t, fakeidp.Options{Subject: "alice", Claims: map[string]any{"email": "alice@example.com"}})
	backends := map[string]*recorder{}
	for _, n := range []string{"none", "xself", "xext", "up"} {
		backends[n] = newRecorder(t)
	}
	backends["hdr"] = newRecorderRequiring(t, "static-key-123") // discovery and health need the key too
	sts := newExtSTS(t)
	addr := vmcptest.FreeAddr(t)
	base := "http://" + addr
	t.Setenv("VMCP_SECRET_IDP_SECRET", "secret")
	t.Setenv("TEST_API_KEY", "static-key-123")
	t.Setenv("TEST_STS_SECRET", "self-sts-secret-0123456789")
	t.Setenv("TEST_EXT_SECRET", "ext-secret")
	doc := fmt.Sprintf(`
name: outgoing
incomingAuth:
  type: oidc
  oidcConfigRef: {name: self, audience: %[1]s/mcp}
authServerConfig:
  issuer: %[1]s
  staticClients:
  - {clientId: vmcp-sts, clientSecretRef: {env: TEST_STS_SECRET}, audiences: [https://xself.example]}
  upstreamProviders:
  - name: idp
    type: oidc
    oidcConfig: {issuerUrl: %[2]s, clientId: vmcp, clientSecretRef: {name: idp, key: secret}}
outgoingAuth:
  source: inline
  backends:
    hdr: {type: header_injection, headerInjection: {headerName: X-Api-Key, valueSecretRef: {env: TEST_API_KEY}}}
    xself: {type: token_exchange, tokenExchange: {tokenUrl: %[1]s/oauth/token, clientId: vmcp-sts, clientSecretRef: {env: TEST_STS_SECRET}, audience: https://xself.example}}
    xext: {type: token_exchange, tokenExchange: {tokenUrl: %[3]s/token, clientId: vmcp, clientSecretRef: {env: TEST_EXT_SECRET}, audience: https://xext.example}}
    up: {type: upstream_inject, upstreamInject: {provider: idp}}
backends:
- {name: none, url: %[4]s}
- {name: hdr, url: %[5]s}
- {name: xself, url: %[6]s}
- {name: xext, url: %[7]s}
- {name: up, url: %[8]s}
server:
  listen: %[9]s
  logLevel: debug
`, base, idp.URL(), sts.srv.URL, backends["none"].srv.URL, backends["hdr"].srv.URL, backends["xself"].srv.URL,
		backends["xext"].srv.URL, backends["up"].srv.URL, addr)
	logs := &syncBuffer{}
	a := vmcptest.Start(t, doc, &app.Options{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	for deadline := time.Now().Add(10 * time.Second); a.Backends().Get("hdr").Inventory() == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the backend that needs its API key is %+v", a.Backends().Get("hdr").Status())
		}
	}

	tokens := map[string]string{}
	tokens["alice"] = login(t, base)
	idp.SetUser("bob", map[string]any{"email": "bob@example.com"})
	tokens["bob"] = login(t, base)

	type result struct{ user, backend, text string }
	var mu sync.Mutex
	var results []result
	var wg sync.WaitGroup
	for user, tok := range tokens {
		s := connect(t, base+"/mcp", tok)
		for name := range backends {
			for range 3 {
				wg.Go(func() {
					res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: name + "_whoami"})
					if err != nil || res.IsError {
						t.Errorf("%s calling %s: %v %v", user, name, err, res)
						return
					}
					mu.Lock()
					results = append(results, result{user, name, res.Content[0].(*mcp.TextContent).Text})
					mu.Unlock()
				})
			}
		}
	}
	wg.Wait()

	seen := map[string]map[string]string{} // backend -> user -> credentials
	for _, r := range results {
		if seen[r.backend] == nil {
			seen[r.backend] = map[string]string{}
		}
		if prev, ok := seen[r.backend][r.user]; ok && prev != r.text {
			t.Errorf("%s got different credentials for %s across calls: %q vs %q", r.backend, r.user, prev, r.text)
		}
		seen[r.backend][r.user] = r.text
	}
	bearer := func(s string) string {
		v, _ := strings.CutPrefix(strings.Split(s, ";")[0], "authorization=Bearer ")
		return v
	}
	for user := range tokens {
		if got := seen["none"][user]; got != "authorization=;apikey=" {
			t.Errorf("none/%s: %q", user, got)
		}
		if got := seen["hdr"][user]; got != "authorization=;apikey=static-key-123" {
			t.Errorf("hdr/%s: %q", user, got)
		}
		x := claimsOf(t, bearer(seen["xself"][user]))
		own := claimsOf(t, tokens[user])
		aud, _ := x["aud"].([]any)
		act, _ := x["act"].(map[string]any)
		if len(aud) != 1 || aud[0] != "https://xself.example" || x["sub"] != own["sub"] || act["sub"] != "vmcp-sts" || x["iss"] != base {
			t.Errorf("xself/%s: exchanged token claims %v", user, x)
		}
		ext := bearer(seen["xext"][user])
		if subj, _ := sts.subjects.Load(ext); subj != tokens[user] {
			t.Errorf("xext/%s: the STS issued %q for another subject token", user, ext)
		}
		if up := bearer(seen["up"][user]); !strings.HasPrefix(up, "opaque_") {
			t.Errorf("up/%s: %q, want the user's upstream token", user, up)
		}
	}
	for _, name := range []string{"xself", "xext", "up"} {
		if seen[name]["alice"] == seen[name]["bob"] {
			t.Errorf("%s: alice and bob got the same credentials %q", name, seen[name]["alice"])
		}
	}
	if n := sts.exchanges.Load(); n != 2 {
		t.Errorf("the external STS made %d exchanges, want 2 (one per user, then cached)", n)
	}
	for user, tok := range tokens {
		for name, b := range backends {
			if strings.Contains(b.seen(), tok) {
				t.Errorf("%s's own token reached backend %s", user, name)
			}
		}
		if strings.Contains(logs.String(), tok) {
			t.Errorf("%s's own token is in the logs", user)
		}
	}

	// The STS goes down: calls needing a new exchange fail cleanly, naming
	// the backend.
	sts.srv.Close()
	idp.SetUser("carol", nil)
	carol := connect(t, base+"/mcp", login(t, base))
	start := time.Now()
	res, err := carol.CallTool(t.Context(), &mcp.CallToolParams{Name: "xext_whoami"})
	if err != nil || !res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, `backend "xext"`) {
		t.Errorf("STS down: %v %+v, want an isError result naming the backend", err, res)
	}
	if time.Since(start) > 15*time.Second {
		t.Errorf("STS down took %v", time.Since(start))
	}
}
