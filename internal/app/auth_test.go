package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/app"
	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// whoamiBackend is an MCP server whose tool answers with what it was sent;
// it shows that vmcp does not forward the client's token.
func whoamiBackend(t *testing.T) string {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "whoami"}, nil)
	s.AddTool(&mcp.Tool{Name: "whoami", InputSchema: map[string]any{"type": "object"}},
		func(_ context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "authorization=" + r.Extra.Header.Get("Authorization")}}}, nil
		})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	return srv.URL
}

// authGateway runs vmcp with its authorization server federating to idp.
func authGateway(t *testing.T, idp *fakeidp.IdP) (*app.App, string) {
	return authGatewayWith(t, idp, "", nil)
}

// authGatewayWith adds authz (YAML lines of incomingAuth, indented by two
// spaces) and app options.
func authGatewayWith(t *testing.T, idp *fakeidp.IdP, authz string, opts *app.Options) (*app.App, string) {
	t.Helper()
	addr := vmcptest.FreeAddr(t)
	base := "http://" + addr
	t.Setenv("VMCP_SECRET_IDP_SECRET", "secret")
	doc := fmt.Sprintf(`
name: authtest
incomingAuth:
  type: oidc
  oidcConfigRef: {name: self, audience: %[1]s/mcp}
%[5]sauthServerConfig:
  issuer: %[1]s
  upstreamProviders:
  - name: idp
    type: oidc
    oidcConfig:
      issuerUrl: %[2]s
      clientId: vmcp
      clientSecretRef: {name: idp, key: secret}
backends:
- name: be
  url: %[3]s
server:
  listen: %[4]s
`, base, idp.URL(), whoamiBackend(t), addr, authz)
	return vmcptest.Start(t, doc, opts), base
}

// login runs dynamic registration and the authorization code flow with
// PKCE through a headless browser, and returns an access token.
func login(t *testing.T, base string) string {
	t.Helper()
	return vmcptest.Login(t, base).Access
}

func connect(t *testing.T, endpoint, token string) *mcp.ClientSession {
	return vmcptest.Connect(t, endpoint, token, nil)
}

func TestAuthenticatedGateway(t *testing.T) {
	idp := fakeidp.Start(t, fakeidp.Options{Subject: "alice", Claims: map[string]any{"email": "alice@example.com"}})
	_, base := authGateway(t, idp)
	endpoint := base + "/mcp"

	// No token: 401 with a challenge naming the resource metadata, and no
	// error attribute.
	resp, err := http.Post(endpoint, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	chal := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(chal, `resource_metadata="`+base+`/.well-known/oauth-protected-resource/mcp"`) || strings.Contains(chal, "error=") {
		t.Fatalf("no token: %d %q", resp.StatusCode, chal)
	}
	// The metadata names the endpoint exactly and vmcp as the authorization server.
	resp, err = http.Get(base + "/.well-known/oauth-protected-resource/mcp")
	if err != nil {
		t.Fatal(err)
	}
	var prm map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&prm)
	resp.Body.Close()
	if prm["resource"] != endpoint || fmt.Sprint(prm["authorization_servers"]) != "["+base+"]" {
		t.Errorf("protected resource metadata = %v", prm)
	}

	alice := login(t, base)
	s := connect(t, endpoint, alice)
	res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "be_whoami"})
	if err != nil {
		t.Fatal(err)
	}
	if text := res.Content[0].(*mcp.TextContent).Text; text != "authorization=" {
		t.Errorf("the backend received %q: the client's token must never be forwarded", text)
	}

	// A bad token gets error="invalid_token"; a token in the query string
	// is no token at all.
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+alice[:len(alice)-4]+"AAAA")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("tampered token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	resp, err = http.Post(endpoint+"?access_token="+alice, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("token in the query: %d, want 401", resp.StatusCode)
	}

	// Bob may not use Alice's session.
	idp.SetUser("bob", map[string]any{"email": "bob@example.com"})
	bob := login(t, base)
	req, _ = http.NewRequest(http.MethodPost, endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/list"}`))
	req.Header.Set("Authorization", "Bearer "+bob)
	req.Header.Set("Mcp-Session-Id", s.ID())
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusNotFound {
		t.Errorf("Bob on Alice's session: %d %s, want 403 or 404", resp.StatusCode, b)
	}
	if _, err := connect(t, endpoint, bob).ListTools(t.Context(), nil); err != nil {
		t.Errorf("Bob's own session: %v", err)
	}
}
