package authserver

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/store/lease"
	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
)

// memGrants is a GrantStore for white-box tests.
type memGrants struct {
	mu    sync.Mutex
	m     map[string]Grant
	locks lease.Table
}

func (s *memGrants) PutGrant(_ context.Context, g *Grant) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[g.ID].Version != g.Version {
		return ErrConflict
	}
	g.Version++
	s.m[g.ID] = *g
	return nil
}

func (s *memGrants) LockGrant(_ context.Context, id, owner string, ttl time.Duration) (bool, error) {
	return s.locks.Acquire(id, owner, ttl, time.Now()), nil
}

func (s *memGrants) UnlockGrant(_ context.Context, id, owner string) error {
	s.locks.Release(id, owner)
	return nil
}

func (s *memGrants) GetGrant(_ context.Context, id string) (*Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.m[id]
	if !ok {
		return nil, ErrNotFound
	}
	return &g, nil
}

func (s *memGrants) GrantRevoked(_ context.Context, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.m[id]
	if !ok {
		return false, ErrNotFound
	}
	return g.Revoked, nil
}

func (s *memGrants) DeleteGrant(_ context.Context, id string) error {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
	return nil
}

func newGrants(t *testing.T, opts fakeidp.Options) (*grants, *fakeidp.IdP, *memGrants) {
	idp := fakeidp.Start(t, opts)
	p := newProvider(ProviderConfig{Name: "idp", Type: TypeOIDC, IssuerURL: idp.URL(), ClientID: "vmcp", ClientSecret: "secret",
		RedirectURI: "http://127.0.0.1/cb"}, http.DefaultClient, slog.New(slog.DiscardHandler))
	if _, err := p.ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := &memGrants{m: map[string]Grant{}}
	return &grants{store: st, providers: map[string]*provider{"idp": p}, now: time.Now, logger: slog.New(slog.DiscardHandler)}, idp, st
}

// TestConcurrentRefreshesCollapse: many callers needing fresh tokens at once
// cause one upstream refresh.
func TestConcurrentRefreshesCollapse(t *testing.T) {
	t.Parallel()
	gs, idp, st := newGrants(t, fakeidp.Options{RotateRefreshTokens: true})
	rt := loginRefreshToken(t, idp)
	_ = st.PutGrant(context.Background(), &Grant{ID: "g", Provider: "idp", UpstreamIssuer: idp.URL(), UpstreamSubject: "user-1",
		RefreshToken: rt, Expiry: time.Now().Add(-time.Minute)})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := gs.Fresh(context.Background(), "g", time.Minute); err != nil {
				t.Errorf("Fresh: %v", err)
			}
		})
	}
	wg.Wait()
	if n := idp.Refreshes.Load(); n != 1 {
		t.Errorf("%d upstream refreshes, want 1", n)
	}
	g, _ := st.GetGrant(context.Background(), "g")
	if g.RefreshToken == rt || g.RefreshToken == "" {
		t.Errorf("rotated refresh token not stored: %q", g.RefreshToken)
	}
	// The rotated token is the one that works now.
	g.Expiry = time.Now().Add(-time.Minute)
	_ = st.PutGrant(context.Background(), g)
	if _, err := gs.Fresh(context.Background(), "g", time.Minute); err != nil {
		t.Errorf("refresh with the rotated token: %v", err)
	}
}

// TestRefreshKeepsOldRefreshToken: an IdP that returns no new refresh token
// leaves the old one in place.
func TestRefreshKeepsOldRefreshToken(t *testing.T) {
	t.Parallel()
	gs, idp, st := newGrants(t, fakeidp.Options{})
	rt := loginRefreshToken(t, idp)
	_ = st.PutGrant(context.Background(), &Grant{ID: "g", Provider: "idp", UpstreamIssuer: idp.URL(), UpstreamSubject: "user-1",
		RefreshToken: rt, Expiry: time.Now().Add(-time.Minute)})
	g, err := gs.Fresh(context.Background(), "g", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if g.RefreshToken != rt || !g.Expiry.After(time.Now()) {
		t.Errorf("after refresh: refresh token %q (want the old %q), expiry %v", g.RefreshToken, rt, g.Expiry)
	}
}

// loginRefreshToken gets a refresh token from the IdP the way vmcp would.
func loginRefreshToken(t *testing.T, idp *fakeidp.IdP) string {
	t.Helper()
	return loginUpstream(t, idp).token.RefreshToken
}

// loginUpstream logs in at the IdP the way vmcp would and returns what the
// login yields.
func loginUpstream(t *testing.T, idp *fakeidp.IdP) *login {
	t.Helper()
	p := newProvider(ProviderConfig{Name: "idp", Type: TypeOIDC, IssuerURL: idp.URL(), ClientID: "vmcp", ClientSecret: "secret",
		RedirectURI: "http://127.0.0.1/cb"}, http.DefaultClient, slog.New(slog.DiscardHandler))
	u, err := p.authCodeURL(context.Background(), "state", "nonce", "verifier-0123456789-0123456789-0123456789-abc")
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.exchange(context.Background(), idp.AuthorizeCode(t, u), "verifier-0123456789-0123456789-0123456789-abc", "nonce")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestGrantsExpireUnlessUsed: a grant expires keep after its login unless
// used; use pushes the expiry back (written once per half keep, not per
// use); its upstream tokens are not kept for longer than a vmcp token could
// use them.
func TestGrantsExpireUnlessUsed(t *testing.T) {
	t.Parallel()
	gs, idp, st := newGrants(t, fakeidp.Options{})
	var mu sync.Mutex
	now := time.Now()
	gs.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	gs.keep = time.Hour
	l := loginUpstream(t, idp)
	l.token.Expiry = time.Time{} // upstream tokens that never need refreshing: only the expiry changes
	g, err := gs.create(context.Background(), gs.providers["idp"], l)
	if err != nil {
		t.Fatal(err)
	}
	if want := gs.now().Add(time.Hour); !g.ExpiresAt.Equal(want) {
		t.Fatalf("a new grant expires at %v; want login + keep (%v)", g.ExpiresAt, want)
	}
	stored := func() time.Time {
		s, err := st.GetGrant(context.Background(), g.ID)
		if err != nil {
			t.Fatal(err)
		}
		return s.ExpiresAt
	}
	advance(20 * time.Minute)
	if _, err := gs.Fresh(context.Background(), g.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := stored(); !got.Equal(g.ExpiresAt) {
		t.Errorf("used with 40 of 60 minutes left, the grant was rewritten (expiry %v); want it left alone", got)
	}
	advance(20 * time.Minute)
	if _, err := gs.Fresh(context.Background(), g.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, want := stored(), gs.now().Add(time.Hour); !got.Equal(want) {
		t.Errorf("used with 20 of 60 minutes left, the grant expires at %v; want %v", got, want)
	}
}

// TestRefreshesCounted: RefreshStats counts a refresh that succeeded, one
// the IdP refused (the grant is revoked), and one that failed (the IdP is
// down).
func TestRefreshesCounted(t *testing.T) {
	t.Parallel()
	gs, idp, st := newGrants(t, fakeidp.Options{})
	s := &Server{providers: []*provider{gs.providers["idp"]}}
	put := func(id, rt string) {
		_ = st.PutGrant(context.Background(), &Grant{ID: id, Provider: "idp", UpstreamIssuer: idp.URL(), UpstreamSubject: "user-1",
			RefreshToken: rt, Expiry: time.Now().Add(-time.Minute)})
	}
	put("ok", loginRefreshToken(t, idp))
	put("refused", "not-a-refresh-token")
	put("failed", loginRefreshToken(t, idp))
	if _, err := gs.Fresh(context.Background(), "ok", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := gs.Fresh(context.Background(), "refused", time.Minute); err == nil {
		t.Fatal("a bogus refresh token was accepted")
	}
	idp.Close()
	if _, err := gs.Fresh(context.Background(), "failed", time.Minute); err == nil {
		t.Fatal("a refresh at an IdP that is down succeeded")
	}
	want := []RefreshStats{{Provider: "idp", OK: 1, Refused: 1, Failed: 1}}
	if got := s.RefreshStats(); len(got) != 1 || got[0] != want[0] {
		t.Errorf("RefreshStats = %+v, want %+v", got, want)
	}
}
