package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"

	"github.com/vmcp-dev/vmcp/internal/authn"
	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/config"
)

// setupAuth builds the embedded authorization server (if configured) and
// the authentication middleware of the MCP endpoint, and registers the
// authorization server's and the protected resource metadata's routes.
func (a *App) setupAuth(mux *http.ServeMux) (func(http.Handler) http.Handler, error) {
	cfg := a.cfg
	in := cfg.IncomingAuth
	if in.Type == config.AuthAnonymous {
		return authn.Anonymous, nil
	}
	resource := a.URL()
	if as := cfg.AuthServerConfig; as != nil {
		s, err := a.newAuthServer(as, resource, requiredScopes(in))
		if err != nil {
			return nil, err
		}
		a.authServer = s
		s.Routes(mux)
	}
	verifier, issuer, err := a.authenticator(in, resource)
	if err != nil {
		return nil, err
	}
	scopes := requiredScopes(in)
	paths, metadataURL, err := authn.MetadataLocations(resource)
	if err != nil {
		return nil, fmt.Errorf("protected resource metadata: %w", err)
	}
	prm, err := authn.NewProtectedResourceHandler(&authn.ProtectedResource{
		Resource: resource, AuthorizationServers: []string{issuer}, ScopesSupported: scopes,
		ResourceName: cfg.Name,
	})
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		mux.Handle(p, prm) // every method: the handler answers CORS preflights and refuses what is not GET
	}
	return authn.Middleware(verifier, &authn.MiddlewareOptions{ResourceMetadata: metadataURL, Scopes: scopes, Logger: a.logger}), nil
}

func requiredScopes(in *config.IncomingAuth) []string {
	if in.OIDCConfig != nil {
		return in.OIDCConfig.Scopes
	}
	return nil
}

// authenticator returns what validates bearer tokens, and the issuer that
// clients should get tokens from.
func (a *App) authenticator(in *config.IncomingAuth, resource string) (authn.Authenticator, string, error) {
	if ref := in.OIDCConfigRef; ref != nil {
		if ref.Audience != "" && ref.Audience != resource {
			return nil, "", fmt.Errorf("incomingAuth.oidcConfigRef.audience %q is not the MCP endpoint %q (set server.publicURL to the URL clients use)", ref.Audience, resource)
		}
		v, err := a.localVerifier(resource)
		return v, a.authServer.Issuer(), err
	}
	o := in.OIDCConfig
	audience := cmp.Or(o.Audience, resource)
	if a.authServer != nil && o.Issuer == a.authServer.Issuer() {
		v, err := a.localVerifier(audience)
		return v, o.Issuer, err
	}
	chain := &authn.Chain{}
	jwt, err := authn.NewJWTVerifier(&authn.JWTOptions{
		Issuer: o.Issuer, Audience: audience, JWKSURL: o.JWKSURL, Algorithms: o.AllowedAlgorithms,
		ClockSkew: o.ClockSkew.D(), Logger: a.logger,
	})
	if err != nil {
		return nil, "", err
	}
	chain.JWT = jwt
	if o.IntrospectionURL != "" {
		secret, err := o.ClientSecretRef.Resolve()
		if err != nil {
			return nil, "", fmt.Errorf("incomingAuth.oidcConfig.clientSecretRef: %w", err)
		}
		intro, err := authn.NewIntrospector(&authn.IntrospectionOptions{
			Endpoint: o.IntrospectionURL, ClientID: o.ClientID, ClientSecret: string(secret),
			Issuer: o.Issuer, Audience: audience, ClockSkew: o.ClockSkew.D(),
		})
		if err != nil {
			return nil, "", err
		}
		chain.Opaque = intro
	}
	return chain, o.Issuer, nil
}

// localVerifier validates tokens of the embedded authorization server with
// its own keys, and rejects revoked ones. The keys are loaded on first use
// (they may come from a store that is not reachable yet) and never change
// afterwards.
func (a *App) localVerifier(audience string) (authn.Authenticator, error) {
	s := a.authServer
	var loaded atomic.Pointer[[]authn.PublicKey]
	keys := func(ctx context.Context) ([]authn.PublicKey, error) {
		if p := loaded.Load(); p != nil {
			return *p, nil
		}
		set, err := s.PublicKeys(ctx)
		if err != nil {
			return nil, err
		}
		pub := make([]authn.PublicKey, len(set.Keys))
		for i, k := range set.Keys {
			pub[i] = authn.PublicKey{KeyID: k.KeyID, Algorithm: k.Algorithm, Key: k.Key}
		}
		loaded.Store(&pub)
		return pub, nil
	}
	return authn.NewJWTVerifier(&authn.JWTOptions{
		Issuer: s.Issuer(), Audience: audience,
		Keys:        keys,
		GrantClaims: true, // vmcp's own tokens name their grant
		Check: func(ctx context.Context, claims map[string]any, raw string) error {
			err := s.CheckToken(ctx, claims, raw)
			if errors.Is(err, authserver.ErrTokenRevoked) || errors.Is(err, authserver.ErrGrantRevoked) {
				return fmt.Errorf("%w: %w", authn.ErrInvalidToken, err)
			}
			return err
		},
		Logger: a.logger,
	})
}

func (a *App) newAuthServer(c *config.AuthServerConfig, resource string, required []string) (*authserver.Server, error) {
	st, err := a.openStore(a.cfg.Storage)
	if err != nil {
		return nil, err
	}
	a.store = st
	opts := &authserver.Options{
		Issuer: c.Issuer, Name: a.cfg.Name, Resource: resource, Store: st.Store, Logger: a.logger,
		AccessTokenLifespan: c.TokenLifespans.AccessToken.D(), RefreshTokenLifespan: c.TokenLifespans.RefreshToken.D(),
		CodeLifespan:                            c.TokenLifespans.AuthorizationCode.D(),
		DisableClientMetadataDocuments:          c.ClientMetadataDocuments.Disabled,
		InsecureAllowPrivateClientMetadataHosts: c.ClientMetadataDocuments.InsecureAllowPrivateHosts,
		Scopes:                                  slices.Clone(c.ScopesSupported),
		Limits: authserver.Limits{
			PendingLogins: c.PendingLogins.Max, PendingLoginsPerClient: c.PendingLogins.MaxPerClient,
			PendingLoginTimeout: c.PendingLogins.Timeout.D(),
			Clients:             c.ClientRegistration.Max, RegistrationBytes: c.ClientRegistration.MaxBytes,
			UnusedClientExpiry: c.ClientRegistration.UnusedExpiry.D(), IdleClientExpiry: c.ClientRegistration.IdleExpiry.D(),
		},
	}
	for _, s := range required {
		if !slices.Contains(opts.Scopes, s) {
			opts.Scopes = append(opts.Scopes, s)
		}
	}
	for i, r := range c.HMACSecretRefs {
		b, err := r.Resolve()
		if err != nil {
			return nil, fmt.Errorf("authServerConfig.hmacSecretRefs[%d]: %w", i, err)
		}
		opts.HMACSecrets = append(opts.HMACSecrets, b)
	}
	for i, r := range c.SigningKeySecretRefs {
		b, err := r.Resolve()
		if err != nil {
			return nil, fmt.Errorf("authServerConfig.signingKeySecretRefs[%d]: %w", i, err)
		}
		opts.SigningKeys = append(opts.SigningKeys, b)
	}
	if len(c.SigningKeySecretRefs) == 0 && a.cfg.Storage.Type == config.StorageMemory {
		a.logger.Warn("no signing keys configured and storage.type memory: the key generated for this process dies with it, and so do its tokens")
	}
	for i, sc := range c.StaticClients {
		secret, err := sc.ClientSecretRef.Resolve()
		if err != nil {
			return nil, fmt.Errorf("authServerConfig.staticClients[%d].clientSecretRef: %w", i, err)
		}
		opts.StaticClients = append(opts.StaticClients, authserver.StaticClient{ID: sc.ClientID, Secret: secret,
			GrantTypes: []string{authserver.GrantTypeTokenExchange}, Audiences: sc.Audiences})
	}
	for i, p := range c.UpstreamProviders {
		pc, err := providerConfig(p)
		if err != nil {
			return nil, fmt.Errorf("authServerConfig.upstreamProviders[%d]: %w", i, err)
		}
		opts.Providers = append(opts.Providers, pc)
	}
	return authserver.New(opts)
}

func providerConfig(p config.UpstreamProvider) (authserver.ProviderConfig, error) {
	pc := authserver.ProviderConfig{Name: p.Name, Type: p.Type, LoginOrigins: p.LoginOrigins}
	var ref *config.SecretRef
	var m config.ClaimMapping
	switch p.Type {
	case config.ProviderOIDC:
		o := p.OIDCConfig
		pc.IssuerURL, pc.ClientID, pc.RedirectURI, pc.Scopes, pc.AuthParams = o.IssuerURL, o.ClientID, o.RedirectURI, o.Scopes, o.AdditionalAuthorizationParams
		ref, m = o.ClientSecretRef, o.ClaimMapping
	case config.ProviderOAuth2:
		o := p.OAuth2Config
		pc.AuthorizationURL, pc.TokenURL, pc.UserInfoURL, pc.Issuer = o.AuthorizationURL, o.TokenURL, o.UserInfoURL, o.Issuer
		pc.ClientID, pc.RedirectURI, pc.Scopes, pc.AuthParams = o.ClientID, o.RedirectURI, o.Scopes, o.AdditionalAuthorizationParams
		pc.EmailVerified = o.EmailVerified
		ref, m = o.ClientSecretRef, o.ClaimMapping
	}
	pc.Claims = authserver.ClaimMapping{Subject: m.Subject, Email: m.Email, Name: m.Name, Groups: m.Groups}
	if ref != nil {
		secret, err := ref.Resolve()
		if err != nil {
			return pc, fmt.Errorf("clientSecretRef: %w", err)
		}
		pc.ClientSecret = string(secret)
	}
	return pc, nil
}
