package hydra_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/vmcp-dev/vmcp/internal/testsupport/hydra"
)

// redirectURI is where clients want the code; nothing listens there.
const redirectURI = "http://127.0.0.1:9/callback"

func config(h *hydra.Hydra, id, secret, redirect string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     id,
		ClientSecret: secret,
		Endpoint: oauth2.Endpoint{
			AuthURL:   h.PublicURL() + "/oauth2/auth",
			TokenURL:  h.PublicURL() + "/oauth2/token",
			AuthStyle: oauth2.AuthStyleInHeader,
		},
		RedirectURL: redirect,
		Scopes:      []string{"openid", "email", "profile", "offline_access"},
	}
}

// authURL returns an authorization-code URL with PKCE, and its verifier.
func authURL(conf *oauth2.Config, state string, extra ...oauth2.AuthCodeOption) (string, string) {
	verifier := oauth2.GenerateVerifier()
	opts := append([]oauth2.AuthCodeOption{
		oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("nonce", "nonce-"+state),
	}, extra...)
	return conf.AuthCodeURL(state, opts...), verifier
}

// login runs the whole authorization-code flow with PKCE and returns the tokens.
func login(t *testing.T, h *hydra.Hydra, conf *oauth2.Config, extra ...oauth2.AuthCodeOption) *oauth2.Token {
	t.Helper()
	ctx := t.Context()
	u, verifier := authURL(conf, "state-one", extra...)
	cb, err := h.NewBrowser().Authorize(ctx, u, conf.RedirectURL)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	if got := cb.Query().Get("state"); got != "state-one" {
		t.Fatalf("callback %s: state %q, want state-one", cb, got)
	}
	tok, err := conf.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return tok
}

// jwtClaims decodes a JWT's payload without verifying it; ok is false if s
// is not a JWT.
func jwtClaims(s string) (claims map[string]any, ok bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	return claims, json.Unmarshal(b, &claims) == nil
}

// pick returns the named entries of m.
func pick(m map[string]any, keys ...string) map[string]any {
	out := map[string]any{}
	for _, k := range keys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}

func refresh(ctx context.Context, conf *oauth2.Config, refreshToken string) (*oauth2.Token, error) {
	return conf.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
}

func TestOpaque(t *testing.T) {
	t.Parallel()
	h := hydra.Start(t, nil)
	id, secret := h.CreateClient(t, hydra.ClientOptions{RedirectURIs: []string{redirectURI}})
	conf := config(h, id, secret, redirectURI)
	tok := login(t, h, conf)
	ctx := t.Context()

	if !strings.HasPrefix(tok.AccessToken, "ory_at_") {
		t.Errorf("access token %q, want ory_at_…", tok.AccessToken)
	}
	if _, ok := jwtClaims(tok.AccessToken); ok {
		t.Errorf("access token %q is a JWT, want opaque", tok.AccessToken)
	}
	if !strings.HasPrefix(tok.RefreshToken, "ory_rt_") {
		t.Errorf("refresh token %q, want ory_rt_…", tok.RefreshToken)
	}
	idToken, _ := tok.Extra("id_token").(string)
	claims, ok := jwtClaims(idToken)
	if !ok {
		t.Fatalf("id_token %q is not a JWT", idToken)
	}
	want := map[string]any{
		"iss":            h.Issuer(),
		"sub":            hydra.DefaultSubject,
		"aud":            []any{id},
		"nonce":          "nonce-state-one",
		"email":          "alice@example.com",
		"email_verified": true,
		"name":           "Alice Example",
		"groups":         []any{"engineering", "admins"},
	}
	if diff := cmp.Diff(want, pick(claims, "iss", "sub", "aud", "nonce", "email", "email_verified", "name", "groups")); diff != "" {
		t.Errorf("id_token claims (-want +got):\n%s", diff)
	}

	active, intro := h.Introspect(t, tok.AccessToken)
	if diff := cmp.Diff(map[string]any{
		"active":    true,
		"sub":       hydra.DefaultSubject,
		"client_id": id,
		"scope":     "openid email profile offline_access",
		"iss":       h.Issuer(),
	}, pick(intro, "active", "sub", "client_id", "scope", "iss")); !active || diff != "" {
		t.Errorf("introspection (-want +got):\n%s", diff)
	}

	// /userinfo answers with the ID token's identity claims.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.PublicURL()+"/userinfo", nil)
	tok.SetAuthHeader(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]any
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil || info["email"] != "alice@example.com" || info["sub"] != hydra.DefaultSubject {
		t.Errorf("userinfo = %v, %v; want alice@example.com, %s", info, err, hydra.DefaultSubject)
	}

	// A refresh rotates both tokens and retires the old access token.
	tok2, err := refresh(ctx, conf, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if tok2.AccessToken == tok.AccessToken || tok2.RefreshToken == tok.RefreshToken {
		t.Errorf("refresh did not rotate the tokens")
	}
	if active, _ := h.Introspect(t, tok.AccessToken); active {
		t.Errorf("old access token still active after refresh")
	}
	if active, _ := h.Introspect(t, tok2.AccessToken); !active {
		t.Errorf("new access token inactive")
	}
	// Revoking the consent kills the refresh token and the access token.
	h.RevokeConsentSessions(t, hydra.DefaultSubject)
	if active, _ := h.Introspect(t, tok2.AccessToken); active {
		t.Errorf("access token still active after the consent was revoked")
	}
	_, err = refresh(ctx, conf, tok2.RefreshToken)
	if oauthError(err) != "invalid_grant" {
		t.Errorf("refresh after revoking consent: %v, want invalid_grant", err)
	}
	t.Logf("refresh after revoking consent: %v", err)
}

// Reusing a spent refresh token fails, and Hydra then revokes the whole
// chain: the tokens the refresh produced die too.
func TestRefreshReuse(t *testing.T) {
	t.Parallel()
	h := hydra.Start(t, nil)
	id, secret := h.CreateClient(t, hydra.ClientOptions{RedirectURIs: []string{redirectURI}})
	conf := config(h, id, secret, redirectURI)
	tok := login(t, h, conf)
	ctx := t.Context()
	tok2, err := refresh(ctx, conf, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if _, err := refresh(ctx, conf, tok.RefreshToken); oauthError(err) != "invalid_grant" {
		t.Errorf("reusing a refresh token: %v, want invalid_grant", err)
	}
	if active, _ := h.Introspect(t, tok2.AccessToken); active {
		t.Errorf("access token of the refreshed pair still active after the reuse")
	}
	if _, err := refresh(ctx, conf, tok2.RefreshToken); oauthError(err) != "invalid_grant" {
		t.Errorf("refresh with the refreshed pair after the reuse: %v, want invalid_grant", err)
	}
}

// oauthError returns the OAuth error code of a token endpoint error.
func oauthError(err error) string {
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
		return re.ErrorCode
	}
	if err != nil {
		return "not an OAuth error: " + err.Error()
	}
	return ""
}

func TestJWT(t *testing.T) {
	t.Parallel()
	h := hydra.Start(t, &hydra.Options{
		AccessTokenStrategy: hydra.JWT,
		Login:               hydra.Login{Subject: "user-456", AccessTokenClaims: map[string]any{"tenant": "acme"}},
	})
	id, secret := h.CreateClient(t, hydra.ClientOptions{RedirectURIs: []string{redirectURI}})
	conf := config(h, id, secret, redirectURI)
	tok := login(t, h, conf)

	claims, ok := jwtClaims(tok.AccessToken)
	if !ok {
		t.Fatalf("access token %q is not a JWT", tok.AccessToken)
	}
	want := map[string]any{
		"iss":       h.Issuer(),
		"sub":       "user-456",
		"client_id": id,
		"scp":       []any{"openid", "email", "profile", "offline_access"},
		"aud":       []any{},
		"ext":       map[string]any{"tenant": "acme"},
	}
	if diff := cmp.Diff(want, pick(claims, "iss", "sub", "client_id", "scp", "aud", "ext")); diff != "" {
		t.Errorf("access token claims (-want +got):\n%s", diff)
	}
	for _, k := range []string{"jti", "exp", "iat"} {
		if _, ok := claims[k]; !ok {
			t.Errorf("access token has no %q claim: %v", k, claims)
		}
	}
	if !strings.HasPrefix(tok.RefreshToken, "ory_rt_") {
		t.Errorf("refresh token %q, want ory_rt_…", tok.RefreshToken)
	}
	// Introspection of a JWT access token works too, and carries the extra claims.
	active, intro := h.Introspect(t, tok.AccessToken)
	if !active || intro["sub"] != "user-456" || !cmp.Equal(intro["ext"], map[string]any{"tenant": "acme"}) {
		t.Errorf("introspection = %v", intro)
	}
}

// A client of an opaque instance can ask for JWT access tokens with an audience.
func TestClientJWTWithAudience(t *testing.T) {
	t.Parallel()
	h := hydra.Start(t, nil)
	const aud = "http://127.0.0.1:9/mcp"
	id, secret := h.CreateClient(t, hydra.ClientOptions{
		RedirectURIs:            []string{redirectURI},
		TokenEndpointAuthMethod: "client_secret_post",
		AccessTokenStrategy:     hydra.JWT,
		Audience:                []string{aud},
	})
	conf := config(h, id, secret, redirectURI)
	conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	tok := login(t, h, conf, oauth2.SetAuthURLParam("audience", aud))
	claims, ok := jwtClaims(tok.AccessToken)
	if !ok {
		t.Fatalf("access token %q is not a JWT", tok.AccessToken)
	}
	if diff := cmp.Diff([]any{aud}, claims["aud"]); diff != "" {
		t.Errorf("aud (-want +got):\n%s", diff)
	}
}

func TestPublicClient(t *testing.T) {
	t.Parallel()
	h := hydra.Start(t, nil)
	id, secret := h.CreateClient(t, hydra.ClientOptions{
		RedirectURIs:            []string{redirectURI},
		TokenEndpointAuthMethod: "none",
	})
	if secret != "" {
		t.Errorf("public client got secret %q", secret)
	}
	conf := config(h, id, "", redirectURI)
	conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	if tok := login(t, h, conf); !strings.HasPrefix(tok.AccessToken, "ory_at_") {
		t.Errorf("access token %q", tok.AccessToken)
	}
}

func TestRejectLogin(t *testing.T) {
	t.Parallel()
	h := hydra.Start(t, &hydra.Options{Login: hydra.Login{Reject: true}})
	id, secret := h.CreateClient(t, hydra.ClientOptions{RedirectURIs: []string{redirectURI}})
	u, _ := authURL(config(h, id, secret, redirectURI), "state-reject")
	cb, err := h.NewBrowser().Authorize(t.Context(), u, redirectURI)
	if err != nil {
		t.Fatal(err)
	}
	q := cb.Query()
	if q.Get("error") != "access_denied" || q.Get("state") != "state-reject" || q.Has("code") {
		t.Errorf("callback %s, want error=access_denied, the state and no code", cb)
	}
}

// gateway is a stand-in for an MCP gateway that is its own authorization
// server: its /authorize sets a cookie and sends the browser to Hydra, and
// its /callback checks the cookie and sends the code on to the client.
func gateway(t *testing.T, h *hydra.Hydra) (srv *httptest.Server, conf *oauth2.Config, verifier string) {
	mux := http.NewServeMux()
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	id, secret := h.CreateClient(t, hydra.ClientOptions{RedirectURIs: []string{srv.URL + "/callback"}})
	conf = config(h, id, secret, srv.URL+"/callback")
	var u string
	u, verifier = authURL(conf, "upstream-state")
	mux.HandleFunc("/authorize", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "gw_session", Value: url.QueryEscape(r.URL.RawQuery), Path: "/"})
		http.Redirect(w, r, u, http.StatusFound)
	})
	mux.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie("gw_session")
		if err != nil {
			http.Error(w, "no session cookie", http.StatusBadRequest)
			return
		}
		orig, _ := url.QueryUnescape(c.Value)
		client, _ := url.ParseQuery(orig)
		q := url.Values{"state": {client.Get("state")}}
		for _, k := range []string{"code", "error", "error_description"} {
			if v := r.URL.Query().Get(k); v != "" {
				q.Set(k, v)
			}
		}
		http.Redirect(w, r, client.Get("redirect_uri")+"?"+q.Encode(), http.StatusFound)
	})
	return srv, conf, verifier
}

func TestThroughGateway(t *testing.T) {
	t.Parallel()
	h := hydra.Start(t, nil)
	srv, conf, verifier := gateway(t, h)
	start := srv.URL + "/authorize?" + url.Values{"redirect_uri": {redirectURI}, "state": {"client-state"}}.Encode()
	cb, err := h.NewBrowser().Authorize(t.Context(), start, redirectURI)
	if err != nil {
		t.Fatal(err)
	}
	if cb.Query().Get("state") != "client-state" {
		t.Errorf("callback %s, want state=client-state", cb)
	}
	if _, err := conf.Exchange(t.Context(), cb.Query().Get("code"), oauth2.VerifierOption(verifier)); err != nil {
		t.Errorf("Exchange: %v", err)
	}
}

func TestStop(t *testing.T) {
	t.Parallel()
	h := hydra.Start(t, nil)
	id, secret := h.CreateClient(t, hydra.ClientOptions{RedirectURIs: []string{redirectURI}})
	u, _ := authURL(config(h, id, secret, redirectURI), "state-stop")
	// The identity provider goes down while the user is on the login page.
	b := h.NewBrowser()
	b.BeforeHop = func(u *url.URL) error {
		if u.Query().Has("login_challenge") {
			h.Stop()
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if cb, err := b.Authorize(ctx, u, redirectURI); err == nil {
		t.Errorf("Authorize = %s, want an error", cb)
	} else {
		t.Logf("Authorize with Hydra stopped at the login page: %v", err)
	}
	h.Stop() // a second Stop is harmless
	if _, err := h.NewBrowser().Authorize(ctx, u, redirectURI); err == nil {
		t.Errorf("Authorize after Stop succeeded")
	}
}
