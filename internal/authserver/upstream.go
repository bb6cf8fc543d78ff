package authserver

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/vmcp-dev/vmcp/internal/identity"
)

// Upstream provider types.
const (
	TypeOIDC   = "oidc"
	TypeOAuth2 = "oauth2"
)

// ProviderConfig configures an upstream IdP.
type ProviderConfig struct {
	Name string
	Type string // TypeOIDC or TypeOAuth2
	// IssuerURL of an OIDC provider (endpoints found by discovery).
	IssuerURL string
	// AuthorizationURL, TokenURL and UserInfoURL of an OAuth 2.0 provider;
	// Issuer names it in the user's stable id.
	AuthorizationURL, TokenURL, UserInfoURL, Issuer string
	ClientID, ClientSecret                          string
	RedirectURI                                     string
	Scopes                                          []string
	AuthParams                                      map[string]string
	Claims                                          ClaimMapping
	// EmailVerified declares that an OAuth 2.0 provider's email claim
	// holds only addresses it verified. Without it, an OAuth 2.0
	// provider's email is used only beside "email_verified": true; an OIDC
	// provider's always needs that.
	EmailVerified bool
	// LoginOrigins are origins (scheme://host[:port]) the provider's login
	// redirects the browser through before it shows a page, besides its
	// authorization endpoint: for example Ory Hydra's login and consent
	// app. The consent page's CSP form-action lists them.
	LoginOrigins []string
}

// ClaimMapping names the upstream claims (dotted paths) holding the
// identity. Empty fields mean sub, email, name, groups.
type ClaimMapping struct {
	Subject, Email, Name, Groups string
}

// login is what an upstream login or refresh yields.
type login struct {
	token             *oauth2.Token
	idToken           string
	idTokenClaims     map[string]any
	userinfoClaims    map[string]any
	accessTokenClaims map[string]any
	issuer, subject   string
}

// provider talks to one upstream IdP.
type provider struct {
	cfg    ProviderConfig
	client *http.Client
	logger *slog.Logger

	// refreshes counts upstream refreshes by outcome (RefreshStats).
	refreshes struct{ ok, refused, failed atomic.Int64 }

	mu       sync.Mutex // guards the fields below, set once discovery succeeds
	issuer   string     // as discovered
	oidc     *oidc.Provider
	verifier *oidc.IDTokenVerifier
	keySet   *oidc.RemoteKeySet
	oauth    *oauth2.Config
}

func newProvider(cfg ProviderConfig, client *http.Client, logger *slog.Logger) *provider {
	c := cfg.Claims
	c.Subject = cmp.Or(c.Subject, "sub")
	c.Email = cmp.Or(c.Email, "email")
	c.Name = cmp.Or(c.Name, "name")
	c.Groups = cmp.Or(c.Groups, "groups")
	cfg.Claims = c
	p := &provider{cfg: cfg, client: client, logger: logger.With("provider", cfg.Name)}
	if cfg.Type == TypeOAuth2 {
		p.oauth = &oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURI, Scopes: cfg.Scopes,
			Endpoint: oauth2.Endpoint{AuthURL: cfg.AuthorizationURL, TokenURL: cfg.TokenURL},
		}
	}
	return p
}

// ErrUpstream wraps failures to reach or understand an upstream IdP.
var ErrUpstream = errors.New("upstream identity provider")

var errOtherUser = errors.New("the refreshed upstream identity is another user")

// ready discovers an OIDC provider's endpoints on first use, so that an IdP
// that is down at start-up does not stop vmcp; it is retried on each login.
func (p *provider) ready(ctx context.Context) (*oauth2.Config, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.oauth != nil {
		return p.oauth, nil
	}
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, p.client), p.cfg.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("%w %q: discovery: %w", ErrUpstream, p.cfg.Name, err)
	}
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := op.Claims(&meta); err != nil {
		return nil, fmt.Errorf("%w %q: discovery document: %v", ErrUpstream, p.cfg.Name, err)
	}
	p.oidc, p.issuer = op, meta.Issuer
	p.verifier = op.Verifier(&oidc.Config{ClientID: p.cfg.ClientID})
	p.keySet = oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), p.client), meta.JWKSURI)
	p.oauth = &oauth2.Config{
		ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, RedirectURL: p.cfg.RedirectURI,
		Scopes: p.cfg.Scopes, Endpoint: op.Endpoint(),
	}
	return p.oauth, nil
}

// authCodeURL is where the user's browser goes to log in.
func (p *provider) authCodeURL(ctx context.Context, state, nonce, verifier string) (string, error) {
	oc, err := p.ready(ctx)
	if err != nil {
		return "", err
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	if p.cfg.Type == TypeOIDC {
		opts = append(opts, oidc.Nonce(nonce))
	}
	for k, v := range p.cfg.AuthParams {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	return oc.AuthCodeURL(state, opts...), nil
}

func (p *provider) ctx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, p.client)
}

// exchange redeems the code and verifies everything that came back.
func (p *provider) exchange(ctx context.Context, code, verifier, nonce string) (*login, error) {
	oc, err := p.ready(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := oc.Exchange(p.ctx(ctx), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("%w %q: code exchange: %v", ErrUpstream, p.cfg.Name, err)
	}
	return p.identify(ctx, tok, nonce, nil)
}

// refresh uses the grant's refresh token. The IdP may rotate it; if it
// returns none, the old one is kept.
func (p *provider) refresh(ctx context.Context, g *Grant) (*oauth2.Token, error) {
	oc, err := p.ready(ctx)
	if err != nil {
		return nil, err
	}
	old := &oauth2.Token{RefreshToken: g.RefreshToken, Expiry: time.Unix(1, 0)}
	tok, err := oc.TokenSource(p.ctx(ctx), old).Token()
	if err != nil {
		return nil, err
	}
	if tok.RefreshToken == "" {
		tok.RefreshToken = g.RefreshToken
	}
	return tok, nil
}

// identify verifies the ID token (if any), fetches userinfo, and checks the
// access token as a claims source.
func (p *provider) identify(ctx context.Context, tok *oauth2.Token, nonce string, prev *Grant) (*login, error) {
	l := &login{token: tok}
	if raw, _ := tok.Extra("id_token").(string); raw != "" && p.verifier != nil {
		idt, err := p.verifier.Verify(ctx, raw)
		if err != nil {
			return nil, fmt.Errorf("%w %q: ID token: %v", ErrUpstream, p.cfg.Name, err)
		}
		if nonce != "" && idt.Nonce != nonce {
			return nil, fmt.Errorf("%w %q: ID token nonce does not match the request", ErrUpstream, p.cfg.Name)
		}
		if err := idt.Claims(&l.idTokenClaims); err != nil {
			return nil, fmt.Errorf("%w %q: ID token claims: %v", ErrUpstream, p.cfg.Name, err)
		}
		l.idToken, l.issuer, l.subject = raw, idt.Issuer, idt.Subject
	} else if prev != nil {
		l.idToken, l.idTokenClaims = prev.IDToken, prev.IDTokenClaims // a refresh need not return a new one
	}
	if p.cfg.Type == TypeOIDC && l.idTokenClaims == nil {
		return nil, fmt.Errorf("%w %q: no ID token in the token response (is the openid scope requested?)", ErrUpstream, p.cfg.Name)
	}
	ui, err := p.userinfo(ctx, tok)
	if err != nil {
		return nil, err
	}
	if sub, ok := ui["sub"].(string); ok && l.subject != "" && p.cfg.Type == TypeOIDC && sub != l.subject {
		// OIDC Core §5.3.2: userinfo about someone else must not be used.
		return nil, fmt.Errorf("%w %q: userinfo is about subject %q, the ID token about %q", ErrUpstream, p.cfg.Name, sub, l.subject)
	}
	l.userinfoClaims = ui
	l.accessTokenClaims = p.accessTokenClaims(ctx, tok.AccessToken)
	if p.cfg.Type == TypeOAuth2 {
		sub, _ := identity.ClaimPath(ui, p.cfg.Claims.Subject)
		l.subject = stringOf(sub)
		l.issuer = p.cfg.Issuer
		if l.subject == "" {
			return nil, fmt.Errorf("%w %q: userinfo has no %q claim to identify the user", ErrUpstream, p.cfg.Name, p.cfg.Claims.Subject)
		}
	} else if prev != nil && l.subject == "" {
		l.issuer, l.subject = prev.UpstreamIssuer, prev.UpstreamSubject
	}
	if prev != nil && (l.issuer != prev.UpstreamIssuer || l.subject != prev.UpstreamSubject) {
		return nil, errOtherUser
	}
	for _, src := range []map[string]any{l.idTokenClaims, l.userinfoClaims, l.accessTokenClaims} {
		p.dropUnverifiedEmail(src)
	}
	return l, nil
}

// dropUnverifiedEmail removes the email (the standard claim and the mapped
// one) from a claims source that does not vouch for it: "email_verified"
// true in the same source, or an OAuth 2.0 provider declared EmailVerified.
// What is removed here is neither copied into vmcp's tokens nor shown to
// policies.
func (p *provider) dropUnverifiedEmail(src map[string]any) {
	if src == nil || (p.cfg.Type == TypeOAuth2 && p.cfg.EmailVerified) {
		return
	}
	switch v := src["email_verified"].(type) {
	case bool:
		if v {
			return
		}
	case string: // some providers send "true"
		if v == "true" {
			return
		}
	}
	for _, path := range []string{"email", p.cfg.Claims.Email} {
		deletePath(src, path)
	}
}

// deletePath removes a claim by its exact name, or else by a dotted path
// into nested claims.
func deletePath(m map[string]any, path string) {
	if _, ok := m[path]; ok {
		delete(m, path)
		return
	}
	parts := strings.Split(path, ".")
	for _, part := range parts[:len(parts)-1] {
		next, ok := m[part].(map[string]any)
		if !ok {
			return
		}
		m = next
	}
	delete(m, parts[len(parts)-1])
}

// userinfo fetches the userinfo claims; for OIDC providers its subject must
// match the ID token's. An OIDC provider without a userinfo endpoint yields
// none.
func (p *provider) userinfo(ctx context.Context, tok *oauth2.Token) (map[string]any, error) {
	var claims map[string]any
	switch {
	case p.cfg.Type == TypeOAuth2:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.UserInfoURL, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		tok.SetAuthHeader(req)
		resp, err := p.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%w %q: userinfo: %v", ErrUpstream, p.cfg.Name, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%w %q: userinfo answered %s", ErrUpstream, p.cfg.Name, resp.Status)
		}
		if err := json.Unmarshal(body, &claims); err != nil {
			return nil, fmt.Errorf("%w %q: userinfo is not a JSON object: %v", ErrUpstream, p.cfg.Name, err)
		}
	case p.oidc != nil && p.oidc.UserInfoEndpoint() != "":
		ui, err := p.oidc.UserInfo(p.ctx(ctx), oauth2.StaticTokenSource(tok))
		if err != nil {
			return nil, fmt.Errorf("%w %q: userinfo: %v", ErrUpstream, p.cfg.Name, err)
		}
		if err := ui.Claims(&claims); err != nil {
			return nil, fmt.Errorf("%w %q: userinfo claims: %v", ErrUpstream, p.cfg.Name, err)
		}
	}
	return claims, nil
}

// accessTokenClaims returns the upstream access token's claims only when it
// is a JWT signed by the IdP's keys and issued by it; an opaque token is
// simply not a claims source. A token that looks like a JWT but does not
// verify is logged and not used.
func (p *provider) accessTokenClaims(ctx context.Context, at string) map[string]any {
	if strings.Count(at, ".") != 2 || p.keySet == nil {
		return nil
	}
	payload, err := p.keySet.VerifySignature(ctx, at)
	if err != nil {
		p.logger.Warn("upstream access token looks like a JWT but does not verify; not used as a claims source", "error", err)
		return nil
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		p.logger.Warn("upstream access token payload is not JSON; not used as a claims source")
		return nil
	}
	if iss, _ := claims["iss"].(string); iss != p.issuer {
		p.logger.Warn("upstream access token has another issuer; not used as a claims source", "iss", iss)
		return nil
	}
	return claims
}

// stringOf renders a claim that identifies something (GitHub's numeric id
// included) as a string.
func stringOf(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return fmt.Sprintf("%.0f", v)
	case json.Number:
		return v.String()
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// stableSubject derives vmcp's subject from the upstream issuer and
// subject: the same person gets the same id whatever the shape of the
// IdP's tokens, and ids from different IdPs never collide.
func stableSubject(issuer, subject string) string {
	h := sha256.Sum256([]byte(issuer + "\x00" + subject))
	return "u_" + hex.EncodeToString(h[:16])
}
