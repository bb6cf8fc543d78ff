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
	"cmp"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"
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
	// HMACSecrets sign codes and refresh tokens (and consent cookies):
	// the first signs, the others verify. Each at least 32 bytes.
	// Default: a random secret generated once and kept in the Store.
	HMACSecrets [][]byte
	// SigningKeys are PEM private keys for access tokens: the first signs,
	// all are published. Default: an RSA key generated once and kept in
	// the Store.
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
	// Limits bound what unauthenticated callers can make the server keep.
	Limits Limits
	// HTTPClient reaches upstream IdPs. Default: a client with a 10s timeout.
	HTTPClient *http.Client
	// Logger. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Limits bound what the server keeps for callers it does not know yet:
// logins waiting at the upstream IdP and registered clients. Zero fields
// mean their default.
type Limits struct {
	// PendingLogins caps the logins waiting for users at upstream IdPs, of
	// all clients together. Default: [DefaultPendingLogins].
	PendingLogins int
	// PendingLoginsPerClient caps them per client. Default:
	// [DefaultPendingLoginsPerClient].
	PendingLoginsPerClient int
	// PendingLoginTimeout is how long a user may take to log in upstream.
	// Default: [DefaultPendingLoginTimeout].
	PendingLoginTimeout time.Duration
	// Clients caps the stored clients (registered and static). Default:
	// [DefaultClients].
	Clients int
	// RegistrationBytes caps a registration request's body. Default:
	// [DefaultRegistrationBytes].
	RegistrationBytes int
	// UnusedClientExpiry is how long a registration is kept if no token is
	// ever issued to it. Default: [DefaultUnusedClientExpiry].
	UnusedClientExpiry time.Duration
	// IdleClientExpiry is how long a registration is kept after the last
	// token issued to it. Default: [DefaultIdleClientExpiry], and never
	// less than the refresh token lifespan.
	IdleClientExpiry time.Duration
}

// Defaults of [Limits].
const (
	DefaultPendingLogins          = 10000
	DefaultPendingLoginsPerClient = 100
	DefaultPendingLoginTimeout    = 10 * time.Minute
	DefaultClients                = 10000
	DefaultRegistrationBytes      = 4096
	DefaultUnusedClientExpiry     = 24 * time.Hour
	DefaultIdleClientExpiry       = 30 * 24 * time.Hour
)

func (l *Limits) applyDefaults(refreshLifespan time.Duration) {
	l.PendingLogins = cmp.Or(max(l.PendingLogins, 0), DefaultPendingLogins)
	l.PendingLoginsPerClient = cmp.Or(max(l.PendingLoginsPerClient, 0), DefaultPendingLoginsPerClient)
	l.PendingLoginTimeout = cmpOrDur(l.PendingLoginTimeout, DefaultPendingLoginTimeout)
	l.Clients = cmp.Or(max(l.Clients, 0), DefaultClients)
	l.RegistrationBytes = cmp.Or(max(l.RegistrationBytes, 0), DefaultRegistrationBytes)
	l.UnusedClientExpiry = cmpOrDur(l.UnusedClientExpiry, DefaultUnusedClientExpiry)
	l.IdleClientExpiry = max(cmpOrDur(l.IdleClientExpiry, DefaultIdleClientExpiry), refreshLifespan)
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
	store     Store
	providers []*provider // configuration order
	grants    *grants
	cimd      *cimdResolver
	limiter   registrationLimiter
	static    map[string]*Client // configured clients, secrets hashed
	secure    bool               // https issuer: secure, __Host- cookies
	metadata  []byte

	secrets atomic.Pointer[secrets] // nil until loaded ([Server.Ready])
	loading sync.Mutex              // guards tried and lastErr
	tried   time.Time               // last failed load
	lastErr error
}

// secrets are what the server signs with: HMAC secrets (codes, refresh
// tokens, consent cookies) and the access token keys.
type secrets struct {
	hmac [][]byte
	keys *keys
}

// New returns a server. It contacts neither upstream IdPs nor the store:
// each IdP is discovered on first use, and the secrets the server did not
// get in opts are loaded from the store (or generated and stored) on the
// first request that needs them, so that an IdP or a store that is down
// does not stop vmcp.
func New(opts *Options) (*Server, error) {
	o := *opts
	if o.Issuer == "" || o.Resource == "" || o.Store == nil || len(o.Providers) == 0 {
		return nil, errors.New("authserver: Issuer, Resource, Store and Providers are required")
	}
	o.Issuer = strings.TrimSuffix(o.Issuer, "/")
	o.AccessTokenLifespan = cmpOrDur(o.AccessTokenLifespan, 15*time.Minute)
	o.RefreshTokenLifespan = cmpOrDur(o.RefreshTokenLifespan, 7*24*time.Hour)
	o.CodeLifespan = cmpOrDur(o.CodeLifespan, 5*time.Minute)
	o.Limits.applyDefaults(o.RefreshTokenLifespan)
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	for i, s := range o.HMACSecrets {
		if len(s) < 32 {
			return nil, fmt.Errorf("authserver: HMAC secret %d has %d bytes; at least 32 are needed", i, len(s))
		}
	}
	if len(o.SigningKeys) > 0 {
		if _, err := newKeys(o.SigningKeys); err != nil {
			return nil, fmt.Errorf("authserver: %w", err)
		}
	}
	s := &Server{opts: o, logger: o.Logger, store: o.Store,
		secure: strings.HasPrefix(o.Issuer, "https://")}
	byName := map[string]*provider{}
	for _, pc := range o.Providers {
		p := newProvider(pc, o.HTTPClient, o.Logger)
		s.providers = append(s.providers, p)
		byName[pc.Name] = p
	}
	s.grants = &grants{store: s.store, providers: byName, now: o.Now, logger: o.Logger, keep: o.CodeLifespan + o.RefreshTokenLifespan}
	s.cimd = newCIMDResolver(o.InsecureAllowPrivateClientMetadataHosts, o.Logger)
	s.oauth = s.newFosite()
	var err error
	s.static = staticClients(o.StaticClients)
	if s.metadata, err = json.Marshal(s.Metadata()); err != nil {
		return nil, err
	}
	return s, nil
}

// generatedSecretName is where the generated secrets are kept.
const generatedSecretName = "authserver-keys"

// generatedSecrets are the secrets the server made for itself, as stored.
type generatedSecrets struct {
	HMAC       []byte `json:"hmac"`
	SigningKey []byte `json:"signing_key"` // PEM, PKCS#8
}

// Ready loads the server's secrets if they are not loaded yet: those
// configured, and the others from the store (generated and stored by the
// first server to need them). A failure is remembered for a second, so
// that a store that is down is not asked by every request.
func (s *Server) Ready(ctx context.Context) error {
	_, err := s.ready(ctx)
	return err
}

func (s *Server) ready(ctx context.Context) (*secrets, error) {
	if sec := s.secrets.Load(); sec != nil {
		return sec, nil
	}
	s.loading.Lock()
	defer s.loading.Unlock()
	if sec := s.secrets.Load(); sec != nil {
		return sec, nil
	}
	if s.lastErr != nil && s.opts.Now().Sub(s.tried) < time.Second {
		return nil, s.lastErr
	}
	sec, err := s.loadSecrets(ctx)
	if err != nil {
		s.tried, s.lastErr = s.opts.Now(), err
		s.logger.Warn("the authorization server's keys cannot be loaded yet", "error", err)
		return nil, err
	}
	s.secrets.Store(sec)
	s.lastErr = nil
	return sec, nil
}

func (s *Server) loadSecrets(ctx context.Context) (*secrets, error) {
	o := s.opts
	sec := &secrets{hmac: o.HMACSecrets}
	pems := o.SigningKeys
	if len(sec.hmac) == 0 || len(pems) == 0 {
		g, err := s.generated(ctx)
		if err != nil {
			return nil, err
		}
		if len(sec.hmac) == 0 {
			sec.hmac = [][]byte{g.HMAC}
		}
		if len(pems) == 0 {
			pems = [][]byte{g.SigningKey}
		}
	}
	k, err := newKeys(pems)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	sec.keys = k
	return sec, nil
}

// generated returns the generated secrets from the store, generating and
// storing them if there are none (of servers racing, all get the first's).
func (s *Server) generated(ctx context.Context) (*generatedSecrets, error) {
	b, err := s.store.GetSecret(ctx, generatedSecretName)
	if errors.Is(err, ErrNotFound) {
		var fresh []byte
		if fresh, err = newGeneratedSecrets(); err != nil {
			return nil, err
		}
		if b, err = s.store.InitSecret(ctx, generatedSecretName, fresh); err == nil {
			s.logger.Info("generated the authorization server's signing key and HMAC secret; they are kept in the store")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("loading the generated keys: %w", err)
	}
	var g generatedSecrets
	if err := json.Unmarshal(b, &g); err != nil || len(g.HMAC) < 32 || len(g.SigningKey) == 0 {
		return nil, errors.New("the generated keys in the store are damaged")
	}
	return &g, nil
}

func newGeneratedSecrets() ([]byte, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return json.Marshal(generatedSecrets{HMAC: []byte(rand.Text() + rand.Text()),
		SigningKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})})
}

// errNotReady is what fosite gets for secrets asked before they are
// loaded (endpoints check [Server.ready] first, so it is not seen).
var errNotReady = fmt.Errorf("%w: the server's keys are not loaded", ErrUnavailable)

// secretConfig hands fosite's HMAC strategy the loaded secrets.
type secretConfig struct {
	*fosite.Config
	s *Server
}

func (c secretConfig) GetGlobalSecret(context.Context) ([]byte, error) {
	if sec := c.s.secrets.Load(); sec != nil {
		return sec.hmac[0], nil
	}
	return nil, errNotReady
}

func (c secretConfig) GetRotatedGlobalSecrets(context.Context) ([][]byte, error) {
	if sec := c.s.secrets.Load(); sec != nil {
		return sec.hmac[1:], nil
	}
	return nil, errNotReady
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
		EnforcePKCE:                    true,
		EnablePKCEPlainChallengeMethod: false,
		RefreshTokenScopes:             []string{}, // no scope is needed: clients allowed the refresh_token grant get one
		ScopeStrategy:                  fosite.ExactScopeStrategy,
		JWTScopeClaimKey:               jwt.JWTScopeFieldString,
		SendDebugMessagesToClients:     false,
		ClientSecretsHasher:            secretHasher{},
	}
	fs := &fositeStore{store: s.store, clients: s.client, resource: o.Resource}
	hmac := compose.NewOAuth2HMACStrategy(secretConfig{cfg, s})
	jwtStrategy := compose.NewOAuth2JWTStrategy(func(context.Context) (any, error) {
		if sec := s.secrets.Load(); sec != nil {
			return sec.keys.signing, nil
		}
		return nil, errNotReady
	}, hmac, cfg)
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

func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	sec, err := s.ready(r.Context())
	if err != nil {
		writeUnavailable(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_ = json.NewEncoder(w).Encode(sec.keys.public)
}

// writeUnavailable answers an OAuth endpoint while the store cannot be
// reached: 503, temporarily_unavailable.
func writeUnavailable(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Retry-After", "5")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"The authorization server's storage cannot be reached; try again later."}` + "\n"))
}

// PublicKeys returns the keys access tokens are verified with (loading
// them first if needed: see [Server.Ready]).
func (s *Server) PublicKeys(ctx context.Context) (jose.JSONWebKeySet, error) {
	sec, err := s.ready(ctx)
	if err != nil {
		return jose.JSONWebKeySet{}, err
	}
	return sec.keys.public, nil
}

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
	if c, ok := s.static[id]; ok {
		return c, nil
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
	active, err := s.store.TokenActive(ctx, KindAccess, sig)
	if errors.Is(err, ErrNotFound) || (err == nil && !active) {
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

// RefreshStats are the upstream token refreshes of one provider since
// start: those that succeeded, those the provider refused (the user's grant
// is revoked and they must log in again), and those that failed otherwise
// (the provider unreachable or failing, the store failing).
type RefreshStats struct {
	Provider            string
	OK, Refused, Failed int64
}

// RefreshStats returns the refresh counts of every provider.
func (s *Server) RefreshStats() []RefreshStats {
	out := make([]RefreshStats, 0, len(s.providers))
	for _, p := range s.providers {
		out = append(out, RefreshStats{Provider: p.cfg.Name, OK: p.refreshes.ok.Load(),
			Refused: p.refreshes.refused.Load(), Failed: p.refreshes.failed.Load()})
	}
	return out
}
