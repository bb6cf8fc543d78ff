package authe2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/testsupport/hydra"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// googleLikeAPI is an MCP backend that, like an API of the IdP, accepts
// only the user's upstream access token: it introspects every request's
// bearer token at Hydra and answers 401 otherwise (vmcp's own, anonymous
// connection included).
func googleLikeAPI(t *testing.T, h *hydra.Hydra) string {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "api"}, nil)
	s.AddTool(&mcp.Tool{Name: "whoami", InputSchema: map[string]any{"type": "object"}},
		func(_ context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			sub, _ := introspect(h, strings.TrimPrefix(r.Extra.Header.Get("Authorization"), "Bearer "))
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "sub=" + sub}}}, nil
		})
	inner := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if _, active := introspect(h, tok); !ok || !active {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/mcp"
}

func introspect(h *hydra.Hydra, token string) (sub string, active bool) {
	if token == "" {
		return "", false
	}
	resp, err := http.PostForm(h.AdminURL()+"/admin/oauth2/introspect", url.Values{"token": {token}})
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	var r struct {
		Active bool   `json:"active"`
		Sub    string `json:"sub"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&r)
	return r.Sub, r.Active
}

// TestUpstreamInjectHydra: the user's opaque Hydra token reaches a backend
// that checks it at Hydra; when Hydra refuses to refresh it, the call
// fails with a message to authorize again and the session's token stops
// working, so the client re-authorizes.
func TestUpstreamInjectHydra(t *testing.T) {
	skipUnlessE2E(t)
	// Upstream tokens live 5s: every call finds the user's token within a
	// minute of expiry and refreshes it first.
	h := hydra.Start(t, &hydra.Options{AccessTokenStrategy: hydra.Opaque, AccessTokenTTL: 5 * time.Second})
	api := googleLikeAPI(t, h)
	g := startGateway(t, h, func(doc string) string {
		return strings.Replace(doc, "backends:\n", fmt.Sprintf(`backends:
- name: api
  url: %s
  outgoingAuth: {type: upstream_inject, upstreamInject: {provider: hydra}}
`, api), 1)
	})
	// A real client: the backend's tools are listed (vmcp's own connection
	// is refused, so they come through the user's) and the call works.
	_, steps := runClient(t, h, g, hydra.Login{}, "script", `[{"op":"tools"},{"op":"call","name":"api_whoami","arguments":{}}]`)
	names := toolNames(t, steps[0].(map[string]any))
	if !containsString(names, "api_whoami") {
		t.Fatalf("tools = %v, want api_whoami (listed through the user's credentials)", names)
	}
	if out, _ := json.Marshal(steps[1]); !strings.Contains(string(out), "sub="+hydra.DefaultSubject) {
		t.Errorf("api_whoami = %s, want the backend to see the user's own Hydra token", out)
	}

	tok := goLogin(t, g, nil)
	s := vmcptest.Connect(t, g.mcpURL(), tok.AccessToken, nil)
	res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "api_whoami"})
	if err != nil || res.IsError {
		t.Fatalf("call before revocation: %v %+v", err, res)
	}
	// Hydra revokes the user's consent: the current upstream token is dead
	// and the next refresh is refused.
	h.RevokeConsentSessions(t, hydra.DefaultSubject)
	res, err = s.CallTool(t.Context(), &mcp.CallToolParams{Name: "api_whoami"})
	if err != nil || !res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "authorize again") {
		t.Errorf("call after Hydra refused the refresh: %v %+v, want an isError result telling the user to authorize again", err, res)
	}
	req, _ := http.NewRequest(http.MethodPost, g.mcpURL(), strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the session's token after the revocation: %d, want 401 so the client re-authorizes", resp.StatusCode)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
