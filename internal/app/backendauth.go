package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/backendauth"
	"github.com/vmcp-dev/vmcp/internal/config"
	"github.com/vmcp-dev/vmcp/internal/identity"
)

// backendAuth builds a backend's outgoing authentication strategy.
func (a *App) backendAuth(b *config.Backend) (backendauth.Strategy, error) {
	ba := a.cfg.BackendAuthFor(b)
	if ba == nil {
		return backendauth.None{}, nil
	}
	switch ba.Type {
	case config.AuthHeaderInjection:
		h := ba.HeaderInjection
		v, err := h.ValueSecretRef.Resolve()
		if err != nil {
			return nil, fmt.Errorf("headerInjection.valueSecretRef: %w", err)
		}
		return backendauth.Header{Name: cmp.Or(h.HeaderName, "Authorization"), Value: h.ValuePrefix + string(v)}, nil
	case config.AuthTokenExchange:
		t := ba.TokenExchange
		secret, err := t.ClientSecretRef.Resolve()
		if err != nil {
			return nil, fmt.Errorf("tokenExchange.clientSecretRef: %w", err)
		}
		return &backendauth.TokenExchange{TokenURL: t.TokenURL, ClientID: t.ClientID, ClientSecret: string(secret),
			Audience: t.Audience, Scopes: t.Scopes, Resource: t.Resource, SubjectProvider: t.SubjectProvider,
			Upstream: a.upstreamToken}, nil
	case config.AuthUpstreamInject:
		return backendauth.UpstreamInject{Provider: ba.UpstreamInject.Provider, Upstream: a.upstreamToken}, nil
	case config.AuthPassThroughUnsafe:
		a.logger.Warn("backend receives the client's own token (pass_through_unsafe): it can replay it against vmcp", "backend", b.Name)
		return backendauth.Passthrough{}, nil
	}
	return backendauth.None{}, nil
}

// upstreamToken returns the caller's upstream token from the embedded
// authorization server, refreshed if needed.
func (a *App) upstreamToken(ctx context.Context, id *identity.Identity, minValid time.Duration) (*backendauth.UpstreamToken, error) {
	if a.authServer == nil || id.GrantID == "" {
		return nil, fmt.Errorf("%w: the session has no upstream login", backendauth.ErrReauthorize)
	}
	g, err := a.authServer.Grant(ctx, id.GrantID, minValid)
	switch {
	case errors.Is(err, authserver.ErrGrantRevoked), errors.Is(err, authserver.ErrNotFound):
		return nil, fmt.Errorf("%w: %v", backendauth.ErrReauthorize, err)
	case err != nil:
		return nil, err
	}
	return &backendauth.UpstreamToken{Provider: g.Provider, AccessToken: g.AccessToken, Expiry: g.Expiry}, nil
}
