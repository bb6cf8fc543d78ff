// Package fakeidp is a small identity provider for tests: an OpenID Connect
// provider (discovery, JWKS, authorize, token, userinfo; opaque or JWT
// access tokens) or a GitHub-shaped OAuth 2.0 provider (no ID token, a
// numeric user id from /user). Authorization is automatic: /authorize
// redirects straight back with a code for the configured user.
//
// It checks what a real IdP checks (PKCE S256, redirect URI, client
// credentials, single-use codes) so the client side is tested honestly.
package fakeidp

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Mode selects the provider's shape.
type Mode int

// Modes.
const (
	OIDC   Mode = iota // an OpenID Connect provider
	GitHub             // a plain OAuth 2.0 provider shaped like GitHub
)

// Options configure an [IdP].
type Options struct {
	Mode         Mode
	ClientID     string // default "vmcp"
	ClientSecret string // default "secret"
	// JWTAccessTokens issues signed JWT access tokens instead of opaque ones.
	JWTAccessTokens bool
	// AccessTokenClaims are added to JWT access tokens.
	AccessTokenClaims map[string]any
	// AccessTokenTTL default: 1h.
	AccessTokenTTL time.Duration
	// Subject and Claims describe the user who logs in. Claims go into the
	// ID token and userinfo (OIDC) or /user (GitHub, where Subject becomes
	// the numeric "id").
	Subject string
	Claims  map[string]any
	// RotateRefreshTokens issues a new refresh token on each refresh.
	RotateRefreshTokens bool
	// RevokeOnReuse (with RotateRefreshTokens) treats a refresh token
	// presented again as stolen, as strict IdPs do: the whole chain of
	// tokens rotated from the same login is revoked.
	RevokeOnReuse bool
}

// IdP is a running fake provider.
type IdP struct {
	opts   Options
	server *httptest.Server
	key    *rsa.PrivateKey
	signer jose.Signer

	// RefuseRefresh makes refreshes fail with invalid_grant.
	RefuseRefresh atomic.Bool
	// Refreshes counts refresh grants served.
	Refreshes atomic.Int64

	// Reuses counts refresh tokens presented after they were rotated.
	Reuses atomic.Int64

	mu      sync.Mutex // guards the fields below
	codes   map[string]codeInfo
	refresh map[string]bool
	family  map[string]string // refresh token -> the login it descends from
	used    map[string]bool   // rotated refresh tokens
	subject string
	claims  map[string]any
}

// SetUser changes who logs in next.
func (p *IdP) SetUser(subject string, claims map[string]any) {
	p.mu.Lock()
	p.subject, p.claims = subject, claims
	p.mu.Unlock()
}

func (p *IdP) user() (string, map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.subject, p.claims
}

type codeInfo struct {
	redirect, nonce, challenge string
}

// Start runs an IdP until the test ends.
func Start(t testing.TB, opts Options) *IdP {
	t.Helper()
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.server.Close)
	return p
}

// New runs an IdP until [IdP.Close] (for harnesses outside tests).
func New(opts Options) (*IdP, error) {
	if opts.ClientID == "" {
		opts.ClientID = "vmcp"
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "secret"
	}
	if opts.AccessTokenTTL == 0 {
		opts.AccessTokenTTL = time.Hour
	}
	if opts.Subject == "" {
		opts.Subject = "user-1"
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, nil)
	if err != nil {
		return nil, err
	}
	p := &IdP{opts: opts, key: key, signer: signer, codes: map[string]codeInfo{}, refresh: map[string]bool{},
		family: map[string]string{}, used: map[string]bool{}, subject: opts.Subject, claims: opts.Claims}
	mux := http.NewServeMux()
	if opts.Mode == OIDC {
		mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
		mux.HandleFunc("GET /jwks", p.jwks)
		mux.HandleFunc("GET /authorize", p.authorize)
		mux.HandleFunc("POST /token", p.token)
		mux.HandleFunc("GET /userinfo", p.userinfo)
	} else {
		mux.HandleFunc("GET /login/oauth/authorize", p.authorize)
		mux.HandleFunc("POST /login/oauth/access_token", p.token)
		mux.HandleFunc("GET /user", p.userinfo)
	}
	p.server = httptest.NewServer(mux)
	return p, nil
}

// AuthorizeCode opens authURL, an authorization request to this provider,
// as a browser would, and returns the code the provider redirects back
// with.
func (p *IdP) AuthorizeCode(t testing.TB, authURL string) string {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorization at the fake IdP: %s, redirect %v", resp.Status, loc)
	}
	return loc.Query().Get("code")
}

// URL is the provider's base URL (the issuer in OIDC mode).
func (p *IdP) URL() string { return p.server.URL }

// Close stops the provider (to test an IdP that is down).
func (p *IdP) Close() { p.server.Close() }

// Endpoints of the GitHub shape.
func (p *IdP) AuthorizationURL() string { return p.server.URL + "/login/oauth/authorize" }
func (p *IdP) TokenURL() string         { return p.server.URL + "/login/oauth/access_token" }
func (p *IdP) UserInfoURL() string      { return p.server.URL + "/user" }

func (p *IdP) discovery(w http.ResponseWriter, _ *http.Request) {
	u := p.server.URL
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer": u, "authorization_endpoint": u + "/authorize", "token_endpoint": u + "/token",
		"userinfo_endpoint": u + "/userinfo", "jwks_uri": u + "/jwks",
		"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"}, "code_challenge_methods_supported": []string{"S256"},
	})
}

func (p *IdP) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
}

func (p *IdP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != p.opts.ClientID {
		http.Error(w, "unknown client", http.StatusBadRequest)
		return
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		http.Error(w, "PKCE S256 required", http.StatusBadRequest)
		return
	}
	code := rand.Text()
	p.mu.Lock()
	p.codes[code] = codeInfo{redirect: q.Get("redirect_uri"), nonce: q.Get("nonce"), challenge: q.Get("code_challenge")}
	p.mu.Unlock()
	back, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	bq := back.Query()
	bq.Set("code", code)
	bq.Set("state", q.Get("state"))
	if p.opts.Mode == OIDC {
		bq.Set("iss", p.server.URL)
	}
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (p *IdP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, "invalid_request")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != p.opts.ClientID || secret != p.opts.ClientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		p.mu.Lock()
		ci, ok := p.codes[r.PostForm.Get("code")]
		delete(p.codes, r.PostForm.Get("code"))
		p.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || ci.redirect != r.PostForm.Get("redirect_uri") || base64.RawURLEncoding.EncodeToString(sum[:]) != ci.challenge {
			oauthError(w, "invalid_grant")
			return
		}
		p.issue(w, ci.nonce, "", rand.Text())
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		p.mu.Lock()
		valid := p.refresh[rt]
		fam := p.family[rt]
		if valid && p.opts.RotateRefreshTokens {
			delete(p.refresh, rt)
			p.used[rt] = true
		} else if p.used[rt] {
			p.Reuses.Add(1)
			if p.opts.RevokeOnReuse {
				for t, f := range p.family {
					if f == fam {
						delete(p.refresh, t)
					}
				}
			}
		}
		p.mu.Unlock()
		if !valid || p.RefuseRefresh.Load() {
			oauthError(w, "invalid_grant")
			return
		}
		p.Refreshes.Add(1)
		keep := rt
		if p.opts.RotateRefreshTokens {
			keep = ""
		}
		p.issue(w, "", keep, fam)
	default:
		oauthError(w, "unsupported_grant_type")
	}
}

// issue writes a token response; keepRefresh, if set, is not replaced;
// a new refresh token belongs to family.
func (p *IdP) issue(w http.ResponseWriter, nonce, keepRefresh, family string) {
	now := time.Now()
	subject, userClaims := p.user()
	resp := map[string]any{"token_type": "Bearer", "expires_in": int(p.opts.AccessTokenTTL.Seconds())}
	if p.opts.JWTAccessTokens {
		claims := map[string]any{"iss": p.server.URL, "sub": subject, "exp": now.Add(p.opts.AccessTokenTTL).Unix(),
			"iat": now.Unix(), "client_id": p.opts.ClientID, "jti": rand.Text()}
		for k, v := range p.opts.AccessTokenClaims {
			claims[k] = v
		}
		resp["access_token"] = p.sign(claims)
	} else {
		resp["access_token"] = "opaque_" + rand.Text()
	}
	if keepRefresh == "" {
		rt := "rt_" + rand.Text()
		p.mu.Lock()
		p.refresh[rt] = true
		p.family[rt] = family
		p.mu.Unlock()
		resp["refresh_token"] = rt
	}
	if p.opts.Mode == OIDC {
		claims := map[string]any{"iss": p.server.URL, "sub": subject, "aud": p.opts.ClientID,
			"exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
		if nonce != "" {
			claims["nonce"] = nonce
		}
		for k, v := range userClaims {
			claims[k] = v
		}
		resp["id_token"] = p.sign(claims)
		resp["scope"] = "openid email profile"
	}
	writeJSON(w, http.StatusOK, resp)
}

func (p *IdP) sign(claims map[string]any) string {
	s, err := jwt.Signed(p.signer).Claims(claims).Serialize()
	if err != nil {
		panic(err)
	}
	return s
}

func (p *IdP) userinfo(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	subject, claims := p.user()
	info := map[string]any{}
	for k, v := range claims {
		info[k] = v
	}
	if p.opts.Mode == GitHub {
		info["id"] = json.Number(subject)
	} else {
		info["sub"] = subject
	}
	writeJSON(w, http.StatusOK, info)
}

func oauthError(w http.ResponseWriter, code string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
