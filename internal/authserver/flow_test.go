package authserver_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"

	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/store/memory"
	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
)

const redirectURI = "http://127.0.0.1:9999/cb"

// env is an authorization server in front of a fake IdP, and a browser.
type env struct {
	t       *testing.T
	idp     *fakeidp.IdP
	as      *authserver.Server
	srv     *httptest.Server
	mux     *http.ServeMux
	browser *http.Client
	store   *memory.Store
}

func newEnv(t *testing.T, idpOpts fakeidp.Options, mutate func(*authserver.Options)) *env {
	t.Helper()
	idp := fakeidp.Start(t, idpOpts)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	pc := authserver.ProviderConfig{Name: "idp", Type: authserver.TypeOIDC, IssuerURL: idp.URL(), ClientID: "vmcp",
		ClientSecret: "secret", RedirectURI: srv.URL + authserver.PathCallback, Scopes: []string{"openid", "email"}}
	if idpOpts.Mode == fakeidp.GitHub {
		pc = authserver.ProviderConfig{Name: "github", Type: authserver.TypeOAuth2, AuthorizationURL: idp.AuthorizationURL(),
			TokenURL: idp.TokenURL(), UserInfoURL: idp.UserInfoURL(), Issuer: "https://github.com", ClientID: "vmcp",
			ClientSecret: "secret", RedirectURI: srv.URL + authserver.PathCallback, Claims: authserver.ClaimMapping{Subject: "id"}}
	}
	st := memory.New(nil)
	opts := &authserver.Options{Issuer: srv.URL, Resource: srv.URL + "/mcp", Store: st, Providers: []authserver.ProviderConfig{pc},
		Scopes: []string{"mcp"}}
	if mutate != nil {
		mutate(opts)
	}
	as, err := authserver.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	as.Routes(mux)
	if ms, ok := opts.Store.(*memory.Store); ok {
		st = ms
	}
	return &env{t: t, idp: idp, as: as, srv: srv, mux: mux, browser: newBrowser(), store: st}
}

// newBrowser is a user agent with its own cookies that does not follow
// redirects by itself.
func newBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (e *env) register(meta map[string]any) (int, map[string]any) {
	e.t.Helper()
	b, _ := json.Marshal(meta)
	resp, err := http.Post(e.srv.URL+authserver.PathRegister, "application/json", strings.NewReader(string(b)))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (e *env) publicClient() string {
	e.t.Helper()
	code, out := e.register(map[string]any{"redirect_uris": []string{redirectURI}, "client_name": "Test client",
		"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "none"})
	if code != http.StatusCreated {
		e.t.Fatalf("register: %d %v", code, out)
	}
	return out["client_id"].(string)
}

func challenge(verifier string) string {
	s := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

func (e *env) authorizeURL(clientID, verifier string, extra url.Values) string {
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI},
		"state": {"a+b~state"}, "code_challenge": {challenge(verifier)}, "code_challenge_method": {"S256"},
		"resource": {e.srv.URL + "/mcp"}, "scope": {"mcp"}}
	for k, v := range extra {
		q[k] = v
	}
	return e.srv.URL + authserver.PathAuthorize + "?" + q.Encode()
}

func (e *env) get(u string) *http.Response {
	e.t.Helper()
	resp, err := e.browser.Get(u)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

var hiddenRE = regexp.MustCompile(`name="(request|csrf)" value="([^"]*)"`)

// consentForm extracts the hidden fields of the consent page.
func consentForm(t *testing.T, resp *http.Response) url.Values {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("consent page: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("consent page may be framed: %v", resp.Header)
	}
	if !strings.Contains(string(body), "127.0.0.1:9999") {
		t.Errorf("consent page does not show the redirect host:\n%s", body)
	}
	f := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(string(body), 2) {
		f.Set(m[1], htmlUnescape(m[2]))
	}
	return f
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'").Replace(s)
}

// follow follows redirects until one leaves for the client's redirect URI,
// and returns that URL.
func (e *env) follow(resp *http.Response) *url.URL {
	e.t.Helper()
	for range 10 {
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			e.t.Fatalf("expected a redirect, got %d", resp.StatusCode)
		}
		loc, err := resp.Location()
		if err != nil {
			e.t.Fatal(err)
		}
		if strings.HasPrefix(loc.String(), redirectURI) {
			return loc
		}
		resp = e.get(loc.String())
	}
	e.t.Fatal("too many redirects")
	return nil
}

// login runs an authorization through consent and the IdP and returns the
// client's callback URL.
func (e *env) login(clientID, verifier string) *url.URL {
	e.t.Helper()
	resp := e.get(e.authorizeURL(clientID, verifier, nil))
	if resp.StatusCode == http.StatusOK {
		f := consentForm(e.t, resp)
		f.Set("decision", "approve")
		f.Set("provider", "idp")
		var err error
		resp, err = e.browser.PostForm(e.srv.URL+authserver.PathConsent, f)
		if err != nil {
			e.t.Fatal(err)
		}
	}
	return e.follow(resp)
}

type tokenResp struct {
	status                    int
	AccessToken, RefreshToken string
	Error                     string `json:"error"`
	raw                       map[string]any
}

func (e *env) token(form url.Values) tokenResp {
	e.t.Helper()
	resp, err := http.PostForm(e.srv.URL+authserver.PathToken, form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&raw)
	tr := tokenResp{status: resp.StatusCode, raw: raw}
	tr.AccessToken, _ = raw["access_token"].(string)
	tr.RefreshToken, _ = raw["refresh_token"].(string)
	tr.Error, _ = raw["error"].(string)
	return tr
}

func (e *env) exchange(clientID, code, verifier string) tokenResp {
	return e.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
		"client_id": {clientID}, "code_verifier": {verifier}, "resource": {e.srv.URL + "/mcp"}})
}

func (e *env) refresh(clientID, rt string) tokenResp {
	return e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {clientID}})
}

// claims verifies an access token with the server's published keys.
func (e *env) claims(at string) map[string]any {
	e.t.Helper()
	tok, err := jwt.ParseSigned(at)
	if err != nil {
		e.t.Fatalf("access token is not a JWT: %v", err)
	}
	keys, err := e.as.PublicKeys(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	var kid string
	if len(tok.Headers) > 0 {
		kid = tok.Headers[0].KeyID
	}
	var key *jose.JSONWebKey
	for i := range keys.Keys {
		if keys.Keys[i].KeyID == kid {
			key = &keys.Keys[i]
		}
	}
	if key == nil {
		e.t.Fatalf("no published key has kid %q", kid)
	}
	var c map[string]any
	if err := tok.Claims(key, &c); err != nil {
		e.t.Fatalf("signature: %v", err)
	}
	return c
}

func TestFullFlowOIDC(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakeidp.Options{Subject: "alice-123", Claims: map[string]any{"email": "alice@example.com", "email_verified": true, "name": "Alice", "groups": []string{"eng"}}}, nil)
	client := e.publicClient()
	back := e.login(client, "verifier-0123456789-0123456789-0123456789-abc")
	q := back.Query()
	if q.Get("state") != "a+b~state" {
		t.Errorf("state = %q, want it back byte for byte", q.Get("state"))
	}
	if q.Get("iss") != e.srv.URL {
		t.Errorf("iss = %q, want %q", q.Get("iss"), e.srv.URL)
	}
	tr := e.exchange(client, q.Get("code"), "verifier-0123456789-0123456789-0123456789-abc")
	if tr.status != http.StatusOK || tr.AccessToken == "" || tr.RefreshToken == "" {
		t.Fatalf("token: %d %v", tr.status, tr.raw)
	}
	c := e.claims(tr.AccessToken)
	aud, _ := c["aud"].([]any)
	if len(aud) != 1 || aud[0] != e.srv.URL+"/mcp" {
		t.Errorf("aud = %v, want the MCP endpoint", c["aud"])
	}
	if c["iss"] != e.srv.URL || c["email"] != "alice@example.com" || c["name"] != "Alice" || c["idp"] != "idp" || c["client_id"] != client {
		t.Errorf("claims = %v", c)
	}
	if groups, _ := c["groups"].([]any); len(groups) != 1 || groups[0] != "eng" {
		t.Errorf("groups = %v", c["groups"])
	}
	sub, _ := c["sub"].(string)
	if !strings.HasPrefix(sub, "u_") || strings.Contains(sub, "alice") {
		t.Errorf("sub = %q, want a derived stable id", sub)
	}
	exp, iat := c["exp"].(float64), c["iat"].(float64)
	if exp-iat > (15*time.Minute + time.Second).Seconds() { // fosite rounds to the second
		t.Errorf("access token lives %vs, want at most 15m", exp-iat)
	}
	if err := e.as.CheckToken(context.Background(), c, tr.AccessToken); err != nil {
		t.Errorf("CheckToken: %v", err)
	}
	g, err := e.as.Grant(context.Background(), c["gid"].(string), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if g.IDToken == "" || g.RefreshToken == "" || g.IDTokenClaims["email"] != "alice@example.com" || g.UserinfoClaims["sub"] != "alice-123" {
		t.Errorf("grant = %+v", g)
	}
	if g.AccessTokenClaims != nil {
		t.Errorf("opaque upstream access token became a claims source: %v", g.AccessTokenClaims)
	}

	// The same user logging in again gets the same subject; this browser
	// approved the client, so no consent page this time.
	resp := e.get(e.authorizeURL(client, "verifier-1123456789-0123456789-0123456789-abc", nil))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("second authorization: status %d, want a redirect upstream (consent remembered)", resp.StatusCode)
	}
	back = e.follow(resp)
	tr2 := e.exchange(client, back.Query().Get("code"), "verifier-1123456789-0123456789-0123456789-abc")
	if got := e.claims(tr2.AccessToken)["sub"]; got != sub {
		t.Errorf("second login sub = %v, want %v", got, sub)
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakeidp.Options{Claims: map[string]any{"email": "a@example.com"}}, nil)
	client := e.publicClient()
	v := "verifier-0123456789-0123456789-0123456789-abc"
	first := e.exchange(client, e.login(client, v).Query().Get("code"), v)
	second := e.refresh(client, first.RefreshToken)
	if second.status != http.StatusOK || second.RefreshToken == first.RefreshToken {
		t.Fatalf("refresh: %d %v", second.status, second.raw)
	}
	if reuse := e.refresh(client, first.RefreshToken); reuse.Error != "invalid_grant" {
		t.Errorf("reusing RT1: %v, want invalid_grant", reuse.raw)
	}
	if after := e.refresh(client, second.RefreshToken); after.Error != "invalid_grant" {
		t.Errorf("RT2 after RT1 reuse: %v, want invalid_grant (whole grant revoked)", after.raw)
	}
	if err := e.as.CheckToken(context.Background(), e.claims(second.AccessToken), second.AccessToken); err == nil {
		t.Error("AT2 still valid after refresh token reuse")
	}
}

func TestCodeRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakeidp.Options{}, nil)
	client := e.publicClient()
	v := "verifier-0123456789-0123456789-0123456789-abc"
	code := e.login(client, v).Query().Get("code")
	if bad := e.exchange(client, code, "wrong-verifier-0123456789-0123456789-01234"); bad.Error != "invalid_grant" {
		t.Errorf("wrong verifier: %v, want invalid_grant", bad.raw)
	}
	code = e.login(client, v).Query().Get("code")
	first := e.exchange(client, code, v)
	if first.status != http.StatusOK {
		t.Fatalf("first redemption: %v", first.raw)
	}
	if again := e.exchange(client, code, v); again.Error != "invalid_grant" {
		t.Errorf("reused code: %v, want invalid_grant", again.raw)
	}
	if err := e.as.CheckToken(context.Background(), e.claims(first.AccessToken), first.AccessToken); err == nil {
		t.Error("the access token of a reused code is still valid")
	}
	if r := e.refresh(client, first.RefreshToken); r.Error != "invalid_grant" {
		t.Errorf("the refresh token of a reused code: %v, want invalid_grant", r.raw)
	}
	code = e.login(client, v).Query().Get("code")
	if wrong := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
		"client_id": {client}, "code_verifier": {v}, "resource": {"https://evil.example/mcp"}}); wrong.Error != "invalid_target" {
		t.Errorf("foreign resource at the token endpoint: %v, want invalid_target", wrong.raw)
	}
}

func TestAuthorizeErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakeidp.Options{}, nil)
	client := e.publicClient()
	v := "verifier-0123456789-0123456789-0123456789-abc"
	tests := []struct {
		name      string
		extra     url.Values
		wantError string // "" means: an error page, no redirect
	}{
		{"redirect URI mismatch", url.Values{"redirect_uri": {"http://127.0.0.1:9999/cb/"}}, ""},
		{"redirect URI of another host", url.Values{"redirect_uri": {"https://evil.example/cb"}}, ""},
		{"unknown client", url.Values{"client_id": {"nope"}}, ""},
		{"no PKCE", url.Values{"code_challenge": {""}}, "invalid_request"},
		{"plain PKCE", url.Values{"code_challenge_method": {"plain"}}, "invalid_request"},
		{"foreign resource", url.Values{"resource": {"https://evil.example/mcp"}}, "invalid_target"},
		{"unsupported scope", url.Values{"scope": {"admin"}}, "invalid_scope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.get(e.authorizeURL(client, v, tc.extra))
			defer resp.Body.Close()
			if tc.wantError == "" {
				if resp.StatusCode < 400 || resp.Header.Get("Location") != "" {
					t.Errorf("status %d, Location %q: want an error page and no redirect", resp.StatusCode, resp.Header.Get("Location"))
				}
				return
			}
			loc, err := resp.Location()
			if err != nil {
				t.Fatalf("status %d: want a redirect with error=%s", resp.StatusCode, tc.wantError)
			}
			q := loc.Query()
			if q.Get("error") != tc.wantError || q.Get("iss") != e.srv.URL || q.Get("state") != "a+b~state" {
				t.Errorf("redirect %s: want error=%s with iss and state", loc, tc.wantError)
			}
		})
	}
	// A loopback redirect URI may use another port.
	resp := e.get(e.authorizeURL(client, v, url.Values{"redirect_uri": {"http://127.0.0.1:54321/cb"}}))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("loopback port variation: status %d, want the consent page", resp.StatusCode)
	}
}

func TestConsentCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakeidp.Options{}, nil)
	client := e.publicClient()
	f := consentForm(t, e.get(e.authorizeURL(client, "verifier-0123456789-0123456789-0123456789-abc", nil)))
	f.Set("decision", "approve")
	for name, form := range map[string]url.Values{
		"no token":     {"request": f["request"], "decision": {"approve"}},
		"forged token": {"request": f["request"], "csrf": {"AAAA"}, "decision": {"approve"}},
		"other request": {"request": {strings.Replace(f.Get("request"), "a%2Bb", "zzz", 1)}, "csrf": f["csrf"],
			"decision": {"approve"}},
	} {
		resp, err := e.browser.PostForm(e.srv.URL+authserver.PathConsent, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", name, resp.StatusCode)
		}
	}
	// From a browser without the CSRF cookie (another user), even a copied
	// token fails.
	resp, err := http.PostForm(e.srv.URL+authserver.PathConsent, f)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("copied form from another browser: %d, want 403", resp.StatusCode)
	}
	// Deny goes back to the client with access_denied.
	f.Set("decision", "deny")
	resp, err = e.browser.PostForm(e.srv.URL+authserver.PathConsent, f)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc, _ := resp.Location(); loc == nil || loc.Query().Get("error") != "access_denied" {
		t.Errorf("deny: %d %v, want a redirect with access_denied", resp.StatusCode, loc)
	}
}

func TestUpstreamRefreshRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakeidp.Options{AccessTokenTTL: time.Second}, nil) // upstream tokens always about to expire
	client := e.publicClient()
	v := "verifier-0123456789-0123456789-0123456789-abc"
	first := e.exchange(client, e.login(client, v).Query().Get("code"), v)
	ok := e.refresh(client, first.RefreshToken)
	if ok.status != http.StatusOK || e.idp.Refreshes.Load() != 1 {
		t.Fatalf("refresh: %v, upstream refreshes %d (want 1)", ok.raw, e.idp.Refreshes.Load())
	}
	e.idp.RefuseRefresh.Store(true)
	refused := e.refresh(client, ok.RefreshToken)
	if refused.Error != "invalid_grant" {
		t.Errorf("refresh after the IdP refused: %v, want invalid_grant", refused.raw)
	}
	c := e.claims(ok.AccessToken)
	if err := e.as.CheckToken(context.Background(), c, ok.AccessToken); err == nil {
		t.Error("access token still accepted after the upstream grant was revoked")
	}
	if _, err := e.as.Grant(context.Background(), c["gid"].(string), 0); err == nil {
		t.Error("Grant() of a revoked grant succeeded")
	}
}

func TestGitHubShapedProvider(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakeidp.Options{Mode: fakeidp.GitHub, Subject: "583231", Claims: map[string]any{"login": "octocat", "name": "The Octocat", "email": "octo@example.com"}},
		func(o *authserver.Options) { o.Providers[0].EmailVerified = true }) // GitHub's public email is a verified one
	client := e.publicClient()
	v := "verifier-0123456789-0123456789-0123456789-abc"
	resp := e.get(e.authorizeURL(client, v, nil))
	f := consentForm(t, resp)
	f.Set("decision", "approve")
	f.Set("provider", "github")
	resp, err := e.browser.PostForm(e.srv.URL+authserver.PathConsent, f)
	if err != nil {
		t.Fatal(err)
	}
	tr := e.exchange(client, e.follow(resp).Query().Get("code"), v)
	if tr.status != http.StatusOK {
		t.Fatalf("token: %v", tr.raw)
	}
	c := e.claims(tr.AccessToken)
	if c["email"] != "octo@example.com" || c["name"] != "The Octocat" || c["idp"] != "github" {
		t.Errorf("claims = %v", c)
	}
	g, err := e.as.Grant(context.Background(), c["gid"].(string), 0)
	if err != nil {
		t.Fatal(err)
	}
	if g.UpstreamSubject != "583231" || g.UpstreamIssuer != "https://github.com" || g.IDToken != "" {
		t.Errorf("grant identity = %q %q (id token %q)", g.UpstreamIssuer, g.UpstreamSubject, g.IDToken)
	}
}

func TestRegistration(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakeidp.Options{}, nil)
	tests := []struct {
		name  string
		meta  map[string]any
		code  int
		error string
	}{
		{"native loopback", map[string]any{"redirect_uris": []string{"http://127.0.0.1/cb"}, "application_type": "native"}, 201, ""},
		{"private-use scheme", map[string]any{"redirect_uris": []string{"com.example.app:/cb"}, "application_type": "native"}, 201, ""},
		{"confidential", map[string]any{"redirect_uris": []string{"https://app.example/cb"}, "token_endpoint_auth_method": "client_secret_basic"}, 201, ""},
		{"http off loopback", map[string]any{"redirect_uris": []string{"http://evil.example/cb"}}, 400, "invalid_redirect_uri"},
		{"no redirect", map[string]any{"client_name": "x"}, 400, "invalid_redirect_uri"},
		{"fragment", map[string]any{"redirect_uris": []string{"https://app.example/cb#x"}}, 400, "invalid_redirect_uri"},
		{"javascript", map[string]any{"redirect_uris": []string{"javascript:alert(1)"}, "application_type": "native"}, 400, "invalid_redirect_uri"},
		{"bad grant", map[string]any{"redirect_uris": []string{"https://a.example/cb"}, "grant_types": []string{"password"}}, 400, "invalid_client_metadata"},
		{"bad auth method", map[string]any{"redirect_uris": []string{"https://a.example/cb"}, "token_endpoint_auth_method": "private_key_jwt"}, 400, "invalid_client_metadata"},
		{"bad scope", map[string]any{"redirect_uris": []string{"https://a.example/cb"}, "scope": "admin"}, 400, "invalid_client_metadata"},
		{"bad application type", map[string]any{"redirect_uris": []string{"https://a.example/cb"}, "application_type": "desktop"}, 400, "invalid_client_metadata"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := e.register(tc.meta)
			if code != tc.code || (tc.error != "" && out["error"] != tc.error) {
				t.Fatalf("register = %d %v, want %d %s", code, out, tc.code, tc.error)
			}
			if code != 201 {
				return
			}
			if out["client_id"] == "" || out["redirect_uris"] == nil {
				t.Errorf("response lacks client_id or metadata: %v", out)
			}
			_, hasSecret := out["client_secret"]
			if confidential := out["token_endpoint_auth_method"] != "none"; confidential != hasSecret {
				t.Errorf("secret issued = %v for auth method %v", hasSecret, out["token_endpoint_auth_method"])
			}
			if hasSecret {
				if _, ok := out["client_secret_expires_at"]; !ok {
					t.Error("client_secret_expires_at missing")
				}
			}
		})
	}
}

func TestMetadata(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakeidp.Options{}, nil)
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		resp, err := http.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if m["issuer"] != e.srv.URL || m["authorization_response_iss_parameter_supported"] != true {
			t.Errorf("%s: %v", path, m)
		}
		if methods, _ := m["code_challenge_methods_supported"].([]any); len(methods) != 1 || methods[0] != "S256" {
			t.Errorf("%s: code_challenge_methods_supported = %v", path, m["code_challenge_methods_supported"])
		}
		for _, k := range []string{"authorization_endpoint", "token_endpoint", "registration_endpoint", "jwks_uri"} {
			if s, _ := m[k].(string); !strings.HasPrefix(s, e.srv.URL+"/") {
				t.Errorf("%s: %s = %v", path, k, m[k])
			}
		}
	}
}

// TestSecureCookies: with an https issuer, consent and CSRF cookies use the
// __Host- prefix and are Secure, HttpOnly and SameSite=Lax.
func TestSecureCookies(t *testing.T) {
	t.Parallel()
	idp := fakeidp.Start(t, fakeidp.Options{})
	mux := http.NewServeMux()
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	as, err := authserver.New(&authserver.Options{Issuer: srv.URL, Resource: srv.URL + "/mcp", Store: memory.New(nil),
		Providers: []authserver.ProviderConfig{{Name: "idp", Type: authserver.TypeOIDC, IssuerURL: idp.URL(), ClientID: "vmcp",
			ClientSecret: "secret", RedirectURI: srv.URL + authserver.PathCallback}}})
	if err != nil {
		t.Fatal(err)
	}
	as.Routes(mux)
	reg := `{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"none"}`
	client := srv.Client()
	resp, err := client.Post(srv.URL+authserver.PathRegister, "application/json", strings.NewReader(reg))
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	q := url.Values{"response_type": {"code"}, "client_id": {out["client_id"].(string)}, "redirect_uri": {"https://app.example/cb"},
		"state": {"state-123456"}, "code_challenge": {challenge("v-0123456789-0123456789-0123456789-0123456789")}, "code_challenge_method": {"S256"}}
	resp, err = client.Get(srv.URL + authserver.PathAuthorize + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var csrf *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-vmcp-csrf" {
			csrf = c
		}
	}
	if csrf == nil || !csrf.Secure || !csrf.HttpOnly || csrf.SameSite != http.SameSiteLaxMode || csrf.Path != "/" || csrf.Domain != "" {
		t.Errorf("CSRF cookie = %+v, want __Host-, Secure, HttpOnly, SameSite=Lax, Path=/", csrf)
	}
}

// TestMetadataDocumentClient: a client identified by a metadata document
// URL is described by that document (shown by name on the consent page),
// and its redirect URIs are enforced.
func TestMetadataDocumentClient(t *testing.T) {
	t.Parallel()
	var docURL string
	docs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `{"client_id":%q,"client_name":"Metadata Client","redirect_uris":[%q]}`, docURL, redirectURI)
	}))
	t.Cleanup(docs.Close)
	docURL = docs.URL + "/client.json"
	e := newEnv(t, fakeidp.Options{}, func(o *authserver.Options) { o.InsecureAllowPrivateClientMetadataHosts = true })
	resp := e.get(e.authorizeURL(docURL, "verifier-0123456789-0123456789-0123456789-abc", nil))
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Metadata Client") {
		t.Errorf("consent for a metadata-document client: %d\n%s", resp.StatusCode, body)
	}
	resp = e.get(e.authorizeURL(docURL, "verifier-0123456789-0123456789-0123456789-abc", url.Values{"redirect_uri": {"http://127.0.0.1:9999/other"}}))
	resp.Body.Close()
	if resp.StatusCode < 400 || resp.Header.Get("Location") != "" {
		t.Errorf("redirect URI not in the document: %d %q, want an error page", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Without the test-only switch, a loopback metadata host is refused.
	strict := newEnv(t, fakeidp.Options{}, nil)
	resp = strict.get(strict.authorizeURL(docURL, "verifier-0123456789-0123456789-0123456789-abc", nil))
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Errorf("a loopback metadata document was fetched: %d", resp.StatusCode)
	}
}

// flakyTokens is a store whose token lookups fail while down is set.
type flakyTokens struct {
	*memory.Store
	down atomic.Bool
}

func (f *flakyTokens) GetToken(ctx context.Context, kind authserver.TokenKind, sig string) (*authserver.TokenRecord, error) {
	if f.down.Load() {
		return nil, errors.New("store: connection refused to 10.0.0.7:6379 (password=hunter2)")
	}
	return f.Store.GetToken(ctx, kind, sig)
}

func (f *flakyTokens) TokenActive(ctx context.Context, kind authserver.TokenKind, sig string) (bool, error) {
	if f.down.Load() {
		return false, errors.New("store: connection refused to 10.0.0.7:6379 (password=hunter2)")
	}
	return f.Store.TokenActive(ctx, kind, sig)
}

// TestTokenExchangeStoreDown: when the store cannot be asked whether the
// subject token is still valid, the client hears "try again later", not
// "invalid grant", and the store's own words stay in the log.
func TestTokenExchangeStoreDown(t *testing.T) {
	t.Parallel()
	var flaky *flakyTokens
	e := newEnv(t, fakeidp.Options{}, func(o *authserver.Options) {
		flaky = &flakyTokens{Store: o.Store.(*memory.Store)}
		o.Store = flaky
		o.StaticClients = []authserver.StaticClient{{ID: "svc", Secret: []byte("svc-secret"),
			GrantTypes: []string{authserver.GrantTypeTokenExchange}, Audiences: []string{"https://api.example"}}}
	})
	client := e.publicClient()
	verifier := "verifier-0123456789-0123456789-0123456789-abc"
	tr := e.exchange(client, e.login(client, verifier).Query().Get("code"), verifier)
	if tr.status != http.StatusOK {
		t.Fatalf("token: %d %v", tr.status, tr.raw)
	}
	exchange := func() tokenResp {
		form := url.Values{"grant_type": {authserver.GrantTypeTokenExchange}, "subject_token": {tr.AccessToken},
			"subject_token_type": {authserver.TokenTypeAccessToken}, "audience": {"https://api.example"}}
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+authserver.PathToken, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("svc", "svc-secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var raw map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&raw)
		out := tokenResp{status: resp.StatusCode, raw: raw}
		out.Error, _ = raw["error"].(string)
		return out
	}
	if ok := exchange(); ok.status != http.StatusOK {
		t.Fatalf("exchange with the store up: %d %v", ok.status, ok.raw)
	}
	flaky.down.Store(true)
	down := exchange()
	if down.Error != "temporarily_unavailable" || strings.Contains(fmt.Sprint(down.raw), "hunter2") || strings.Contains(fmt.Sprint(down.raw), "10.0.0.7") {
		t.Errorf("exchange with the store down: %d %v; want temporarily_unavailable without the store's error", down.status, down.raw)
	}
}
