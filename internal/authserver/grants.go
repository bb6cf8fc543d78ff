package authserver

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"
)

// ErrGrantRevoked means the user's upstream authorization is gone (the IdP
// refused a refresh, or the grant was revoked): the client must authorize
// again.
var ErrGrantRevoked = errors.New("the upstream authorization was revoked; authorize again")

// grants keeps users' upstream grants fresh.
type grants struct {
	store     GrantStore
	providers map[string]*provider
	now       func() time.Time
	logger    *slog.Logger
	inflight  singleflight.Group // one refresh (or extension) per grant at a time
	// keep is how long a grant outlives its last use: the longest a vmcp
	// token issued then can live (a refresh token, plus the code before
	// it). Zero: grants never expire.
	keep time.Duration
}

// create stores a new grant for a completed upstream login.
func (gs *grants) create(ctx context.Context, p *provider, l *login) (*Grant, error) {
	g := &Grant{
		ID:              randomID(),
		Provider:        p.cfg.Name,
		Subject:         stableSubject(l.issuer, l.subject),
		UpstreamIssuer:  l.issuer,
		UpstreamSubject: l.subject,
	}
	gs.fill(g, l)
	if gs.keep > 0 {
		g.ExpiresAt = gs.now().Add(gs.keep)
	}
	if err := gs.store.PutGrant(ctx, g); err != nil {
		return nil, fmt.Errorf("storing grant: %w", err)
	}
	return g, nil
}

// stale reports whether g, in use now, should have its expiry pushed back:
// when less than half of keep is left, so that a grant in steady use is
// written once per half keep, not on every use.
func (gs *grants) stale(g *Grant) bool {
	return gs.keep > 0 && !g.ExpiresAt.IsZero() && g.ExpiresAt.Before(gs.now().Add(gs.keep/2))
}

// fill copies a login's tokens and verified claims into g.
func (gs *grants) fill(g *Grant, l *login) {
	t := l.token
	g.AccessToken, g.TokenType, g.Expiry = t.AccessToken, t.TokenType, t.Expiry
	if t.RefreshToken != "" {
		g.RefreshToken = t.RefreshToken
	}
	if scope, _ := t.Extra("scope").(string); scope != "" {
		g.Scopes = strings.Fields(scope)
	}
	g.IDToken, g.IDTokenClaims = l.idToken, l.idTokenClaims
	g.UserinfoClaims, g.AccessTokenClaims = l.userinfoClaims, l.accessTokenClaims
	g.UpdatedAt = gs.now()
}

// Fresh returns the grant, first refreshing its upstream tokens if they
// expire within minValid, and keeps it from expiring while it is in use.
// Concurrent calls for one grant share one refresh. A refresh the IdP
// refuses revokes the grant ([ErrGrantRevoked]); a failure to reach the IdP
// is returned as is and revokes nothing.
func (gs *grants) Fresh(ctx context.Context, id string, minValid time.Duration) (*Grant, error) {
	g, err := gs.store.GetGrant(ctx, id)
	if err != nil {
		return nil, err
	}
	if g.Revoked {
		return nil, ErrGrantRevoked
	}
	if !gs.needsRefresh(g, minValid) && !gs.stale(g) {
		return g, nil
	}
	v, err, _ := gs.inflight.Do(id, func() (any, error) { return gs.refreshLocked(context.WithoutCancel(ctx), id, minValid) })
	if err != nil {
		return nil, err
	}
	return v.(*Grant), nil
}

// Bounds of a refresh under the grant's lock. The lease outlives the
// refresh's own deadline, so a live holder never loses it; a holder that
// died blocks the others for lockTTL at most.
const (
	refreshTimeout = 25 * time.Second // two IdP requests (10s each) and the store
	lockTTL        = 30 * time.Second
)

// refreshLocked runs refresh under the grant's lock in the store, so that
// servers sharing the store refresh a grant one at a time: the upstream
// refresh token is presented once, and its rotated successor is what the
// next one reads. A server that finds the lock held waits for the holder
// and takes its result when that serves.
func (gs *grants) refreshLocked(ctx context.Context, id string, minValid time.Duration) (*Grant, error) {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	owner := randomID()
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 250*time.Millisecond) {
		ok, err := gs.store.LockGrant(ctx, id, owner, lockTTL)
		if err != nil {
			return nil, fmt.Errorf("locking grant %s: %w", id, err)
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: waiting for another server's refresh of grant %s", ErrUnavailable, id)
		case <-time.After(wait):
		}
		g, err := gs.store.GetGrant(ctx, id)
		if err != nil {
			return nil, err
		}
		if g.Revoked {
			return nil, ErrGrantRevoked
		}
		if !gs.needsRefresh(g, minValid) && !gs.stale(g) {
			return g, nil // the holder refreshed it
		}
	}
	defer func() {
		uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer ucancel()
		if err := gs.store.UnlockGrant(uctx, id, owner); err != nil {
			gs.logger.Warn("unlocking a grant failed; its lease runs out on its own", "grant", id, "error", err)
		}
	}()
	return gs.refresh(ctx, id, minValid)
}

// needsRefresh reports whether g's upstream tokens expire within minValid
// and can be refreshed (without a refresh token the upstream access token
// may still work, and is used as it is).
func (gs *grants) needsRefresh(g *Grant, minValid time.Duration) bool {
	return !g.Expiry.IsZero() && !gs.now().Add(minValid).Before(g.Expiry) && g.RefreshToken != ""
}

// refresh refreshes g's upstream tokens if needed and pushes its expiry
// back if stale; one call per grant at a time (Fresh's singleflight, and
// the grant's lock across servers).
func (gs *grants) refresh(ctx context.Context, id string, minValid time.Duration) (*Grant, error) {
	g, err := gs.store.GetGrant(ctx, id) // re-read: another refresh may just have finished
	if err != nil {
		return nil, err
	}
	if g.Revoked {
		return nil, ErrGrantRevoked
	}
	if gs.stale(g) {
		g.ExpiresAt = gs.now().Add(gs.keep)
		if !gs.needsRefresh(g, minValid) {
			if err := gs.store.PutGrant(ctx, g); err != nil {
				gs.logger.Warn("extending a grant in use failed", "grant", id, "error", err)
			}
			return g, nil
		}
	}
	if !gs.needsRefresh(g, minValid) {
		return g, nil
	}
	p := gs.providers[g.Provider]
	if p == nil {
		return nil, fmt.Errorf("grant %s: unknown provider %q", id, g.Provider)
	}
	used := g.RefreshToken
	tok, err := p.refresh(ctx, g)
	if err != nil {
		if !refused(err) {
			p.refreshes.failed.Add(1)
			return nil, fmt.Errorf("%w %q: refresh: %v", ErrUpstream, p.cfg.Name, err)
		}
		// A refresh token used by another server after all (its lease ran
		// out mid-refresh) is refused by an IdP that rotates them: what
		// that server stored serves, and nothing is revoked.
		if now, rerr := gs.store.GetGrant(ctx, id); rerr == nil && now.RefreshToken != used && !now.Revoked {
			gs.logger.Warn("upstream refused a refresh token another server had already used; using its result", "grant", id)
			return now, nil
		}
		p.refreshes.refused.Add(1)
		gs.logger.Warn("upstream refused a refresh; the user must authorize again", "provider", p.cfg.Name, "grant", id, "error", err)
		return nil, gs.revoke(ctx, g)
	}
	// The IdP may have rotated the refresh token and invalidated the old
	// one: store the new tokens before anything else can fail.
	g.AccessToken, g.TokenType, g.Expiry, g.RefreshToken = tok.AccessToken, tok.TokenType, tok.Expiry, tok.RefreshToken
	g.UpdatedAt = gs.now()
	if err := gs.store.PutGrant(ctx, g); err != nil {
		p.refreshes.failed.Add(1)
		gs.logger.Error("storing refreshed grant: the rotated upstream refresh token may be lost", "grant", id, "error", err)
		return nil, err
	}
	p.refreshes.ok.Add(1)
	l, err := p.identify(ctx, tok, "", g)
	switch {
	case err == nil:
		gs.fill(g, l)
		if err := gs.store.PutGrant(ctx, g); err != nil {
			return nil, fmt.Errorf("storing refreshed claims: %w", err)
		}
	case errors.Is(err, errOtherUser):
		gs.logger.Error("upstream refresh returned another user's identity; revoking the grant", "provider", p.cfg.Name, "grant", id)
		return nil, gs.revoke(ctx, g)
	default:
		// The tokens are fresh but the claims could not be re-verified
		// (userinfo down, say): keep the claims verified last time.
		gs.logger.Warn("re-verifying claims after a refresh failed; keeping the previous claims", "provider", p.cfg.Name, "grant", id, "error", err)
	}
	return g, nil
}

// refused reports whether the IdP answered a refresh with an OAuth error
// (invalid_grant and the like), as opposed to being unreachable or failing.
func refused(err error) bool {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return false
	}
	return re.Response == nil || re.Response.StatusCode < 500
}

func (gs *grants) revoke(ctx context.Context, g *Grant) error {
	g.Revoked, g.UpdatedAt = true, gs.now()
	if err := gs.store.PutGrant(ctx, g); err != nil {
		gs.logger.Error("storing revoked grant", "grant", g.ID, "error", err)
	}
	return ErrGrantRevoked
}

func randomID() string {
	return rand.Text()
}
