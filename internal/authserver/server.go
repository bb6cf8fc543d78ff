// Package authserver is vmcp's embedded OAuth 2.1 authorization server. It
// federates login to upstream identity providers (OIDC or plain OAuth 2.0),
// keeps each user's upstream tokens and verified claims as a [Grant], and
// issues its own short-lived JWT access tokens (audience: the MCP endpoint)
// and rotating refresh tokens to MCP clients.
//
// Grant handling (authorization code with PKCE, refresh rotation, reuse
// detection) is fosite's; this package adds what MCP needs on top: dynamic
// client registration (RFC 7591), client ID metadata documents, RFC 8707
// resource indicators, RFC 9207 iss in responses, per-client consent before
// any redirect upstream, and the federation itself. Storage is behind the
// [Store] interfaces. This package does not serve MCP and knows nothing of
// backends.
package authserver

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"
	"golang.org/x/crypto/bcrypt"
)

// Options configure a [Server]. Zero fields mean their documented default.
type Options struct {
	// Issuer is the server's issuer URL (no trailing slash). Required.
	Issuer string
	// Name is what the consent and error pages call this gateway.
	// Default: the issuer's host.
	Name string
	// Resource is the MCP endpoint URL: the one resource tokens are for,
	// and their audience. Required.
	Resource string
	// Store keeps clients, tokens, grants and pending logins. Required.
	Store Store
	// Providers are the upstream IdPs. At least one is required.
	Providers []ProviderConfig
	// HMACSecrets sign codes and refresh tokens: the first signs, the
	// others verify. Each at least 32 bytes. Default: a random secret.
	HMACSecrets [][]byte
	// SigningKeys are PEM private keys for access tokens: the first signs,
	// all are published. Default: a generated RSA key.
	SigningKeys [][]byte
	// Lifespans. Defaults: 15m, 7 days, 5m.
	AccessTokenLifespan, RefreshTokenLifespan, CodeLifespan time.Duration
	// Scopes clients may request, besides none.
	Scopes []string
	// StaticClients are configured service clients (token exchange).
	StaticClients []StaticClient
	// DisableClientMetadataDocuments turns off URL client IDs.
	DisableClientMetadataDocuments bool
	// InsecureAllowPrivateClientMetadataHosts lets client ID URLs point at
	// private or loopback addresses. Tests only.
	InsecureAllowPrivateClientMetadataHosts bool
	// HTTPClient reaches upstream IdPs. Default: a client with a 10s timeout.
	HTTPClient *http.Client
	// Logger. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Paths of the server's endpoints, under the issuer.
const (
	PathAuthorize = "/oauth/authorize"
	PathConsent   = "/oauth/consent"
	PathToken     = "/oauth/token"
	PathRegister  = "/oauth/register"
	PathJWKS      = "/oauth/jwks"
	PathCallback  = "/oauth/callback"
)

// Server is the embedded authorization server.
type Server struct {
	opts      Options
	logger    *slog.Logger
	oauth     fosite.OAuth2Provider
	keys      *keys
	store     Store
	providers []*provider // configuration order
	grants    *grants
	cimd      *cimdResolver
	limiter   registrationLimiter
	secret    []byte // signs consent cookies and CSRF tokens
	secure    bool   // https issuer: secure, __Host- cookies
	metadata  []byte
}

// New returns a server. It does not contact upstream IdPs: each is
// discovered on first use, so one that is down does not stop vmcp.
func New(opts *Options) (*Server, error) {
	o := *opts
	if o.Issuer == "" || o.Resource == "" || o.Store == nil || len(o.Providers) == 0 {
		return nil, errors.New("authserver: Issuer, Resource, Store and Providers are required")
	}
	o.Issuer = strings.TrimSuffix(o.Issuer, "/")
	o.AccessTokenLifespan = cmpOrDur(o.AccessTokenLifespan, 15*time.Minute)
	o.RefreshTokenLifespan = cmpOrDur(o.RefreshTokenLifespan, 7*24*time.Hour)
	o.CodeLifespan = cmpOrDur(o.CodeLifespan, 5*time.Minute)
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if len(o.HMACSecrets) == 0 {
		o.HMACSecrets = [][]byte{[]byte(rand.Text() + rand.Text())}
	}
	for i, s := range o.HMACSecrets {
		if len(s) < 32 {
			return nil, fmt.Errorf("authserver: HMAC secret %d has %d bytes; at least 32 are needed", i, len(s))
		}
	}
	k, err := newKeys(o.SigningKeys)
	if err != nil {
		return nil, fmt.Errorf("authserver: %w", err)
	}
	s := &Server{opts: o, logger: o.Logger, keys: k, store: o.Store, secret: o.HMACSecrets[0],
		secure: strings.HasPrefix(o.Issuer, "https://")}
	byName := map[string]*provider{}
	for _, pc := range o.Providers {
		p := newProvider(pc, o.HTTPClient, o.Logger)
		s.providers = append(s.providers, p)
		byName[pc.Name] = p
	}
	s.grants = &grants{store: o.Store, providers: byName, now: o.Now, logger: o.Logger, keep: o.CodeLifespan + o.RefreshTokenLifespan}
	s.cimd = newCIMDResolver(o.InsecureAllowPrivateClientMetadataHosts, o.Logger)
	s.oauth = s.newFosite()
	if err := withStaticClients(context.Background(), o.Store, o.StaticClients, func(b []byte) ([]byte, error) {
		return bcrypt.GenerateFromPassword(b, 10)
	}); err != nil {
		return nil, fmt.Errorf("authserver: %w", err)
	}
	if s.metadata, err = json.Marshal(s.Metadata()); err != nil {
		return nil, err
	}
	return s, nil
}

func cmpOrDur(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}

func (s *Server) newFosite() fosite.OAuth2Provider {
	o := s.opts
	cfg := &fosite.Config{
		AccessTokenLifespan:            o.AccessTokenLifespan,
		RefreshTokenLifespan:           o.RefreshTokenLifespan,
		AuthorizeCodeLifespan:          o.CodeLifespan,
		AccessTokenIssuer:              o.Issuer,
		TokenURL:                       o.Issuer + PathToken,
		GlobalSecret:                   o.HMACSecrets[0],
		RotatedGlobalSecrets:           o.HMACSecrets[1:],
		EnforcePKCE:                    true,
		EnablePKCEPlainChallengeMethod: false,
		RefreshTokenScopes:             []string{}, // no scope is needed: clients allowed the refresh_token grant get one
		ScopeStrategy:                  fosite.ExactScopeStrategy,
		JWTScopeClaimKey:               jwt.JWTScopeFieldString,
		SendDebugMessagesToClients:     false,
		ClientSecretsHasher:            &fosite.BCrypt{Config: &fosite.Config{HashCost: 10}},
	}
	fs := &fositeStore{store: s.store, clients: s.client, resource: o.Resource}
	hmac := compose.NewOAuth2HMACStrategy(cfg)
	jwtStrategy := compose.NewOAuth2JWTStrategy(func(context.Context) (any, error) { return s.keys.signing, nil }, hmac, cfg)
	strategy := &compose.CommonStrategy{CoreStrategy: jwtStrategy}
	exchange := func(fosite.Configurator, any, any) any {
		return &exchangeHandler{s: s, strategy: jwtStrategy, store: fs}
	}
	return compose.Compose(cfg, fs, strategy,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2PKCEFactory,
		exchange,
	)
}

// newSession is the session stored with every request: the claims of the
// access tokens it yields.
func newSession() *oauth2.JWTSession {
	return &oauth2.JWTSession{JWTClaims: &jwt.JWTClaims{Extra: map[string]any{}}, JWTHeader: &jwt.Headers{}}
}

// Routes registers the server's endpoints on mux. Paths are relative to
// the issuer, which vmcp serves at its root.
func (s *Server) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", s.serveMetadata)
	mux.HandleFunc("GET /.well-known/openid-configuration", s.serveMetadata)
	mux.HandleFunc("GET "+PathJWKS, s.serveJWKS)
	mux.HandleFunc("GET "+PathAuthorize, s.authorize)
	mux.HandleFunc("POST "+PathConsent, s.consent)
	mux.HandleFunc("POST "+PathToken, s.token)
	mux.HandleFunc("POST "+PathRegister, s.register)
	for _, path := range s.callbackPaths() {
		mux.HandleFunc("GET "+path, s.callback)
	}
}

// callbackPaths are the paths of the providers' redirect URIs on vmcp.
func (s *Server) callbackPaths() []string {
	var paths []string
	for _, p := range s.providers {
		u, err := url.Parse(p.cfg.RedirectURI)
		path := PathCallback
		if err == nil && u.Path != "" {
			path = u.Path
		}
		if !slices.Contains(paths, path) {
			paths = append(paths, path)
		}
	}
	return paths
}

// Metadata is the RFC 8414 document (also served as OpenID discovery).
func (s *Server) Metadata() map[string]any {
	i := s.opts.Issuer
	return map[string]any{
		"issuer":                                         i,
		"authorization_endpoint":                         i + PathAuthorize,
		"token_endpoint":                                 i + PathToken,
		"registration_endpoint":                          i + PathRegister,
		"jwks_uri":                                       i + PathJWKS,
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token", GrantTypeTokenExchange},
		"code_challenge_methods_supported":               []string{"S256"},
		"token_endpoint_auth_methods_supported":          []string{"none", "client_secret_basic", "client_secret_post"},
		"scopes_supported":                               nonNil(s.opts.Scopes),
		"subject_types_supported":                        []string{"public"},
		"id_token_signing_alg_values_supported":          []string{"RS256", "ES256"},
		"authorization_response_iss_parameter_supported": true,
		"client_id_metadata_document_supported":          !s.opts.DisableClientMetadataDocuments,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Server) serveMetadata(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.metadata)
}

func (s *Server) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_ = json.NewEncoder(w).Encode(s.keys.public)
}

// PublicKeys returns the keys access tokens are verified with.
func (s *Server) PublicKeys() jose.JSONWebKeySet { return s.keys.public }

// Issuer returns the issuer URL.
func (s *Server) Issuer() string { return s.opts.Issuer }

// client finds a client: registered, or (for an HTTPS URL client ID)
// described by its metadata document.
func (s *Server) client(ctx context.Context, id string) (*Client, error) {
	if isURLClientID(id) {
		if s.opts.DisableClientMetadataDocuments {
			return nil, ErrNotFound
		}
		c, err := s.cimd.resolve(ctx, id)
		if err != nil {
			return nil, err
		}
		cc := *c
		if len(cc.Scopes) == 0 {
			cc.Scopes = s.opts.Scopes
		}
		// A document may ask for any scope; it gets only supported ones.
		cc.Scopes = slices.DeleteFunc(slices.Clone(cc.Scopes), func(sc string) bool { return !slices.Contains(s.opts.Scopes, sc) })
		return &cc, nil
	}
	return s.store.GetClient(ctx, id)
}

// ErrTokenRevoked is returned by [Server.CheckToken] for a token that was
// revoked (its code or a refresh token of its family was reused) or that
// vmcp never issued.
var ErrTokenRevoked = errors.New("the token was revoked")

// CheckToken is the resource server's check of a verified vmcp access
// token: it must not have been revoked (code or refresh token reuse) and
// its upstream grant must stand.
func (s *Server) CheckToken(ctx context.Context, claims map[string]any, raw string) error {
	sig := raw[strings.LastIndexByte(raw, '.')+1:]
	rec, err := s.store.GetToken(ctx, KindAccess, sig)
	if errors.Is(err, ErrNotFound) || (err == nil && !rec.Active) {
		return ErrTokenRevoked
	}
	if err != nil {
		return err
	}
	gid, _ := claims["gid"].(string)
	if gid == "" {
		return nil
	}
	revoked, err := s.store.GrantRevoked(ctx, gid)
	if errors.Is(err, ErrNotFound) || (err == nil && revoked) {
		return ErrGrantRevoked
	}
	return err
}

// StoredGrant returns a user's upstream grant as stored, without
// refreshing anything: the identity claims verified at the last login or
// refresh.
func (s *Server) StoredGrant(ctx context.Context, id string) (*Grant, error) {
	return s.store.GetGrant(ctx, id)
}

// Grant returns a user's upstream grant with tokens valid for at least
// minValid, refreshing them if needed.
func (s *Server) Grant(ctx context.Context, id string, minValid time.Duration) (*Grant, error) {
	return s.grants.Fresh(ctx, id, minValid)
}
