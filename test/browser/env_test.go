// Package browser tests the login a person does, in Chromium and in Firefox
// ESR (firefox_test.go): vmcp's consent and error pages, the redirects
// through upstream IdPs (Ory Hydra with an HTML login and consent app, and a
// GitHub-shaped provider) and back to the MCP client, with the browser
// enforcing what an HTTP client does not: Content-Security-Policy, SameSite
// and Secure cookies, history.
// Every page state is photographed at desktop and phone sizes into
// $VMCP_SCREENSHOTS (default: a temporary directory).
//
// The tests run with VMCP_E2E=1 (make test) and need Chromium, Firefox ESR,
// Hydra, Node and puppeteer-core from scripts/tools.sh.
package browser

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/app"
	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/store/memory"
	"github.com/vmcp-dev/vmcp/internal/testsupport/chrome"
	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
	"github.com/vmcp-dev/vmcp/internal/testsupport/firefox"
	"github.com/vmcp-dev/vmcp/internal/testsupport/hydra"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

func skipUnlessE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("VMCP_E2E") != "1" {
		t.Skip("end-to-end browser test: set VMCP_E2E=1 (make test does)")
	}
}

// idpHost is the host name the browser reaches the upstream IdPs by. vmcp
// is at 127.0.0.1, so the IdPs are another site, as in production, and
// SameSite cookie rules apply to the redirects between them.
const idpHost = "localhost"

// Providers a gateway logs users in with.
const (
	corp   = "corp"   // Ory Hydra, with its HTML login and consent app
	github = "github" // the GitHub-shaped fake: logs in without a page
)

// gatewayOptions choose a gateway's providers and listener.
type gatewayOptions struct {
	providers []string // corp, github, in this order on the consent page
	tls       bool     // serve vmcp over HTTPS (a TLS listener in front of it)
}

// gateway is vmcp with its authorization server, its upstream IdPs and a
// conformance fixture backend.
type gateway struct {
	base   string // the issuer: http://127.0.0.1:port or https://127.0.0.1:port
	app    *app.App
	hydra  *hydra.Hydra
	github *fakeidp.IdP
	client *http.Client // trusts the TLS listener
}

func (g *gateway) mcpURL() string { return g.base + "/mcp" }

func startGateway(t *testing.T, o gatewayOptions) *gateway {
	t.Helper()
	g := &gateway{client: http.DefaultClient}
	addr := vmcptest.FreeAddr(t)
	g.base = "http://" + addr
	var front *httptest.Server
	if o.tls {
		// A TLS listener forwarding to vmcp's plain one, as an ingress
		// does; the issuer is the https address.
		target, _ := url.Parse("http://" + addr)
		front = httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
		front.StartTLS()
		t.Cleanup(front.Close)
		g.base = front.URL
		g.client = front.Client()
	}
	secrets := t.TempDir()
	secret := func(name, value string) string {
		p := filepath.Join(secrets, name)
		if err := os.WriteFile(p, []byte(value), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var providers strings.Builder
	for _, p := range o.providers {
		switch p {
		case corp:
			g.hydra = hydra.Start(t, &hydra.Options{Host: idpHost, LoginPages: true})
			id, sec := g.hydra.CreateClient(t, hydra.ClientOptions{RedirectURIs: []string{g.base + "/oauth/callback"}})
			fmt.Fprintf(&providers, `
  - name: corp
    type: oidc
    oidcConfig:
      issuerUrl: %s
      clientId: %s
      clientSecretRef: {file: %s}
      scopes: [openid, email, profile, offline_access]
    loginOrigins: [%s]`, g.hydra.Issuer(), id, secret("hydra", sec), g.hydra.LoginAppURL())
		case github:
			g.github = fakeidp.Start(t, fakeidp.Options{Mode: fakeidp.GitHub, Subject: "4242",
				Claims: map[string]any{"login": "octo", "email": "octo@example.com", "name": "Octo Cat"}})
			fmt.Fprintf(&providers, `
  - name: github
    type: oauth2
    oauth2Config:
      authorizationUrl: %s
      tokenUrl: %s
      userInfoUrl: %s
      clientId: vmcp
      clientSecretRef: {file: %s}
      issuer: https://github.com
      claimMapping: {subject: id}`, onIdPHost(t, g.github.AuthorizationURL()), g.github.TokenURL(), g.github.UserInfoURL(), secret("github", "secret"))
		}
	}
	doc := fmt.Sprintf(`
name: acme-tools
incomingAuth:
  type: oidc
  oidcConfigRef: {name: gateway-incoming, audience: %[1]s/mcp}
authServerConfig:
  issuer: %[1]s
  clientMetadataDocuments: {insecureAllowPrivateHosts: true}
  upstreamProviders:%[2]s
config:
  aggregation:
    conflictResolution: prefix
backends:
- name: fixture
  url: %[3]s
server:
  listen: %[4]s
  publicURL: %[1]s/mcp
`, g.base, providers.String(), vmcptest.FixtureBackend(t), addr)
	g.app = vmcptest.Start(t, doc, nil)
	return g
}

// clock is a test's clock: now, moved forward by Advance.
type clock struct {
	mu     sync.Mutex // guards offset
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// startAuthServer runs vmcp's authorization server alone, without the rest
// of the gateway, logging people in with the GitHub-shaped provider, on the
// test's clock.
func startAuthServer(t *testing.T, now func() time.Time) *gateway {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	gh := fakeidp.Start(t, fakeidp.Options{Mode: fakeidp.GitHub, Subject: "4242"})
	as, err := authserver.New(&authserver.Options{Issuer: srv.URL, Name: "acme-tools", Resource: srv.URL + "/mcp",
		Store: memory.New(nil), Now: now, Providers: []authserver.ProviderConfig{{
			Name: github, Type: authserver.TypeOAuth2, AuthorizationURL: onIdPHost(t, gh.AuthorizationURL()),
			TokenURL: gh.TokenURL(), UserInfoURL: gh.UserInfoURL(), Issuer: "https://github.com", ClientID: "vmcp",
			ClientSecret: "secret", RedirectURI: srv.URL + authserver.PathCallback, Claims: authserver.ClaimMapping{Subject: "id"}}}})
	if err != nil {
		t.Fatal(err)
	}
	as.Routes(mux)
	return &gateway{base: srv.URL, github: gh, client: http.DefaultClient}
}

// onIdPHost rewrites a 127.0.0.1 URL of a test server to idpHost, the name
// the browser uses for IdPs.
func onIdPHost(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = idpHost + ":" + u.Port()
	return u.String()
}

// mcpClient is a public MCP client registered at the gateway, with a
// loopback redirect URI of its own, as desktop MCP clients have. Its page
// at the redirect URI records what the browser brought.
type mcpClient struct {
	t        *testing.T
	g        *gateway
	id       string
	redirect string
	verifier string
	doc      string // the metadata document, for a CIMD client

	mu      sync.Mutex // guards arrived
	arrived []url.Values
}

// registerClient registers a client by dynamic client registration.
func registerClient(t *testing.T, g *gateway, name string) *mcpClient {
	t.Helper()
	c := newClient(t, g)
	body, _ := json.Marshal(map[string]any{"redirect_uris": []string{c.redirect}, "client_name": name,
		"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "none"})
	resp, err := g.client.Post(g.base+"/oauth/register", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reg map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&reg); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("registering a client: %d %v %v", resp.StatusCode, reg, err)
	}
	c.id = reg["client_id"].(string)
	return c
}

// metadataClient is a client identified by the URL of its metadata
// document (CIMD), served beside its redirect URI. (Over http on loopback:
// the gateway allows that in tests only.)
func metadataClient(t *testing.T, g *gateway, name string) *mcpClient {
	t.Helper()
	c := newClient(t, g)
	c.id = strings.TrimSuffix(c.redirect, "/callback") + "/oauth/client.json"
	c.doc = fmt.Sprintf(`{"client_id":%q,"client_name":%q,"redirect_uris":[%q],"token_endpoint_auth_method":"none"}`, c.id, name, c.redirect)
	return c
}

// newClient starts a client's loopback page: its redirect URI, and its
// metadata document if it has one.
func newClient(t *testing.T, g *gateway) *mcpClient {
	t.Helper()
	c := &mcpClient{t: t, g: g, verifier: "verifier-" + strings.Repeat("0123456789", 5)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/client.json" && c.doc != "" {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, c.doc)
			return
		}
		if r.URL.Path != "/callback" {
			http.NotFound(w, r) // the browser's favicon request, for one
			return
		}
		c.mu.Lock()
		c.arrived = append(c.arrived, r.URL.Query())
		c.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		title := "Signed in"
		if r.URL.Query().Has("error") {
			title = "Sign-in failed"
		}
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>%s</title></head><body><h1 id="client-done">%s</h1></body></html>`, title, title)
	}))
	t.Cleanup(srv.Close)
	c.redirect = srv.URL + "/callback"
	return c
}

// authURL is the client's authorization URL for state.
func (c *mcpClient) authURL(state string) string {
	sum := sha256.Sum256([]byte(c.verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {c.id}, "redirect_uri": {c.redirect}, "state": {state},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"resource": {c.g.mcpURL()}}
	return c.g.base + "/oauth/authorize?" + q.Encode()
}

// landed waits until tab shows the client's redirect URI and returns the
// query the browser brought there.
func (c *mcpClient) landed(tab page) url.Values {
	c.t.Helper()
	u, err := url.Parse(tab.WaitURL(c.redirect))
	if err != nil {
		c.t.Fatal(err)
	}
	return u.Query()
}

// visits returns the queries the browser brought to the redirect URI.
func (c *mcpClient) visits() []url.Values {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.arrived)
}

// jwtClaim returns a claim of a JWT, without verifying it.
func jwtClaim(t *testing.T, token, claim string) any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	return claims[claim]
}

type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
}

// exchange redeems a code at the token endpoint.
func (c *mcpClient) exchange(code string) tokens {
	c.t.Helper()
	resp, err := c.g.client.PostForm(c.g.base+"/oauth/token", url.Values{"grant_type": {"authorization_code"},
		"code": {code}, "redirect_uri": {c.redirect}, "client_id": {c.id}, "code_verifier": {c.verifier}})
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok tokens
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	return tok
}

// callTool calls the fixture's simple text tool with an access token and
// returns its text.
func (c *mcpClient) callTool(accessToken string) string {
	c.t.Helper()
	s := vmcptest.Connect(c.t, c.g.mcpURL(), accessToken, nil)
	res, err := s.CallTool(c.t.Context(), &mcp.CallToolParams{Name: "fixture_test_simple_text"})
	if err != nil {
		c.t.Fatalf("calling a tool: %v", err)
	}
	if len(res.Content) == 0 {
		c.t.Fatalf("tool result without content: %+v", res)
	}
	text, _ := res.Content[0].(*mcp.TextContent)
	if text == nil {
		c.t.Fatalf("tool result is not text: %+v", res.Content[0])
	}
	return text.Text
}

// page is a tab of either browser: a *chrome.Tab or a *firefox.Tab. The
// steps of a login that both browsers take are written against it.
type page interface {
	Navigate(u string)
	Click(sel string)
	Type(sel, text string)
	WaitVisible(sel string)
	WaitURL(prefix string) string
	WaitURLFunc(what string, ok func(string) bool) string
	Requested(prefix string) string
	Text(sel string) string
	Screenshot(name string)
}

var (
	_ page = (*chrome.Tab)(nil)
	_ page = (*firefox.Tab)(nil)
)

// The consent page's controls.
const (
	consentDeny = `button[name="decision"][value="deny"]`
	clientDone  = "#client-done"
)

func consentApprove(provider string) string {
	return `button[name="provider"][value="` + provider + `"]`
}

// waitConsent waits for vmcp's consent page in tab.
func waitConsent(t *testing.T, g *gateway, tab page) {
	t.Helper()
	tab.WaitURL(g.base + "/oauth/authorize")
	tab.WaitVisible(consentDeny)
}

// hydraLogin logs in at Hydra's login app, then allows its consent page,
// as a person does.
func hydraLogin(t *testing.T, g *gateway, tab page) {
	t.Helper()
	tab.WaitURL(g.hydra.LoginAppURL() + "/login")
	tab.Type("#"+hydra.LoginPasswordField, "correct horse battery staple")
	tab.Click("#" + hydra.LoginSubmit)
	tab.WaitURL(g.hydra.LoginAppURL() + "/consent")
	tab.Click("#" + hydra.ConsentAllow)
}
