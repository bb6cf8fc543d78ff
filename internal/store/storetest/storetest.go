// Package storetest is the suite every [authserver.Store] implementation
// must pass: call [Run] from the implementation's tests.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vmcp-dev/vmcp/internal/authserver"
)

// Factory returns a new, empty store whose clock is now.
type Factory func(t *testing.T, now func() time.Time) authserver.Store

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Run runs the suite against stores made by newStore.
func Run(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s authserver.Store, c *clock)
	}{
		{"clients", testClients},
		{"token lifecycle", testTokens},
		{"token families", testFamilies},
		{"token expiry", testTokenExpiry},
		{"grants", testGrants},
		{"pending is single use", testPending},
		{"pending expiry", testPendingExpiry},
		{"concurrent take", testConcurrentTake},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			tc.fn(t, newStore(t, c.now), c)
		})
	}
}

var ctx = context.Background()

func testClients(t *testing.T, s authserver.Store, _ *clock) {
	c := &authserver.Client{ID: "c1", Name: "Client", RedirectURIs: []string{"http://127.0.0.1/cb"},
		GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, AuthMethod: "none",
		Metadata: map[string]any{"client_name": "Client"}, CreatedAt: time.Unix(100, 0).UTC()}
	if err := s.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, c); err == nil {
		t.Error("creating a client twice succeeded")
	}
	got, err := s.GetClient(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, got); diff != "" {
		t.Errorf("client (-want +got):\n%s", diff)
	}
	got.RedirectURIs[0] = "changed"
	again, _ := s.GetClient(ctx, "c1")
	if again.RedirectURIs[0] != "http://127.0.0.1/cb" {
		t.Error("changing a returned client changed the stored one")
	}
	if _, err := s.GetClient(ctx, "nope"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("GetClient(unknown) = %v, want ErrNotFound", err)
	}
}

func record(sig, rid string, exp time.Time) *authserver.TokenRecord {
	return &authserver.TokenRecord{Signature: sig, RequestID: rid, Active: true, ExpiresAt: exp, Request: []byte(`{"id":"` + rid + `"}`)}
}

func testTokens(t *testing.T, s authserver.Store, c *clock) {
	exp := c.now().Add(time.Hour)
	r := record("sig1", "req1", exp)
	if err := s.CreateToken(ctx, authserver.KindCode, r); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetToken(ctx, authserver.KindCode, "sig1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
	if _, err := s.GetToken(ctx, authserver.KindAccess, "sig1"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("kinds are not separate: %v", err)
	}
	if err := s.DeactivateToken(ctx, authserver.KindCode, "sig1"); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetToken(ctx, authserver.KindCode, "sig1")
	if err != nil || got.Active {
		t.Errorf("after DeactivateToken: %+v, %v; want inactive and still readable", got, err)
	}
	if err := s.DeleteToken(ctx, authserver.KindCode, "sig1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetToken(ctx, authserver.KindCode, "sig1"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("after DeleteToken: %v, want ErrNotFound", err)
	}
	if err := s.DeleteToken(ctx, authserver.KindCode, "sig1"); err != nil {
		t.Errorf("deleting twice: %v", err)
	}
}

func testFamilies(t *testing.T, s authserver.Store, c *clock) {
	exp := c.now().Add(time.Hour)
	for _, r := range []*authserver.TokenRecord{record("a1", "fam", exp), record("a2", "fam", exp), record("b1", "other", exp)} {
		if err := s.CreateToken(ctx, authserver.KindRefresh, r); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateToken(ctx, authserver.KindAccess, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeactivateFamily(ctx, authserver.KindRefresh, "fam"); err != nil {
		t.Fatal(err)
	}
	for sig, want := range map[string]bool{"a1": false, "a2": false, "b1": true} {
		got, err := s.GetToken(ctx, authserver.KindRefresh, sig)
		if err != nil || got.Active != want {
			t.Errorf("refresh %s after DeactivateFamily: %+v, %v; want active=%v", sig, got, err, want)
		}
	}
	if err := s.DeleteFamily(ctx, authserver.KindAccess, "fam"); err != nil {
		t.Fatal(err)
	}
	for sig, want := range map[string]bool{"a1": false, "a2": false, "b1": true} {
		_, err := s.GetToken(ctx, authserver.KindAccess, sig)
		if (err == nil) != want {
			t.Errorf("access %s after DeleteFamily: err=%v, want present=%v", sig, err, want)
		}
	}
	// A family gets new members after a revocation, and they are revoked too.
	if err := s.CreateToken(ctx, authserver.KindAccess, record("a3", "fam", exp)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteFamily(ctx, authserver.KindAccess, "fam"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetToken(ctx, authserver.KindAccess, "a3"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("a3 survived DeleteFamily: %v", err)
	}
}

func testTokenExpiry(t *testing.T, s authserver.Store, c *clock) {
	if err := s.CreateToken(ctx, authserver.KindCode, record("x", "r", c.now().Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	c.add(2 * time.Minute)
	if _, err := s.GetToken(ctx, authserver.KindCode, "x"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("expired record: %v, want ErrNotFound", err)
	}
}

func testGrants(t *testing.T, s authserver.Store, c *clock) {
	g := &authserver.Grant{ID: "g1", Provider: "hydra", Subject: "u1", UpstreamIssuer: "https://idp", UpstreamSubject: "alice",
		AccessToken: "at", RefreshToken: "rt", IDToken: "id", Expiry: c.now().Add(time.Hour).UTC(), Scopes: []string{"openid"},
		IDTokenClaims:  map[string]any{"email": "a@example.com", "groups": []any{"eng"}, "act": map[string]any{"sub": "svc"}},
		UserinfoClaims: map[string]any{"name": "Alice"}, UpdatedAt: c.now().UTC()}
	if err := s.PutGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetGrant(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(g, got); diff != "" {
		t.Errorf("grant (-want +got):\n%s", diff)
	}
	if revoked, err := s.GrantRevoked(ctx, "g1"); err != nil || revoked {
		t.Errorf("GrantRevoked of a live grant = %v, %v; want false, nil", revoked, err)
	}
	g2 := *g
	g2.RefreshToken = "rt2"
	if err := s.PutGrant(ctx, &g2); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetGrant(ctx, "g1"); got.RefreshToken != "rt2" {
		t.Errorf("PutGrant did not replace: %q", got.RefreshToken)
	}
	g2.Revoked = true
	if err := s.PutGrant(ctx, &g2); err != nil {
		t.Fatal(err)
	}
	if revoked, err := s.GrantRevoked(ctx, "g1"); err != nil || !revoked {
		t.Errorf("GrantRevoked of a revoked grant = %v, %v; want true, nil", revoked, err)
	}
	if err := s.DeleteGrant(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetGrant(ctx, "g1"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
	if _, err := s.GrantRevoked(ctx, "g1"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("GrantRevoked after delete: %v, want ErrNotFound", err)
	}

	// A grant past its ExpiresAt is gone; extending it keeps it.
	g3 := *g
	g3.ID, g3.ExpiresAt = "g3", c.now().Add(time.Hour).UTC()
	if err := s.PutGrant(ctx, &g3); err != nil {
		t.Fatal(err)
	}
	c.add(50 * time.Minute)
	g3.ExpiresAt = c.now().Add(time.Hour).UTC()
	if err := s.PutGrant(ctx, &g3); err != nil {
		t.Fatal(err)
	}
	c.add(50 * time.Minute)
	if _, err := s.GetGrant(ctx, "g3"); err != nil {
		t.Errorf("an extended grant within its new expiry: %v", err)
	}
	c.add(20 * time.Minute)
	if _, err := s.GetGrant(ctx, "g3"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("an expired grant: %v, want ErrNotFound", err)
	}
	if _, err := s.GrantRevoked(ctx, "g3"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("GrantRevoked of an expired grant: %v, want ErrNotFound", err)
	}
}

func pending() *authserver.Pending {
	return &authserver.Pending{Authorize: url.Values{"client_id": {"c"}, "state": {"a+b~"}}, Provider: "p",
		Nonce: "n", Verifier: "v", CreatedAt: time.Unix(5, 0).UTC()}
}

func testPending(t *testing.T, s authserver.Store, _ *clock) {
	p := pending()
	if err := s.PutPending(ctx, "st", p, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := s.TakePending(ctx, "st")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("pending (-want +got):\n%s", diff)
	}
	if _, err := s.TakePending(ctx, "st"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("second take: %v, want ErrNotFound", err)
	}
}

func testPendingExpiry(t *testing.T, s authserver.Store, c *clock) {
	if err := s.PutPending(ctx, "st", pending(), time.Minute); err != nil {
		t.Fatal(err)
	}
	c.add(2 * time.Minute)
	if _, err := s.TakePending(ctx, "st"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("expired take: %v, want ErrNotFound", err)
	}
}

// testConcurrentTake checks that a pending entry is handed out once even
// when many take it at the same time.
func testConcurrentTake(t *testing.T, s authserver.Store, _ *clock) {
	for i := range 20 {
		state := fmt.Sprint("st", i)
		if err := s.PutPending(ctx, state, pending(), time.Minute); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range 8 {
			wg.Go(func() {
				if _, err := s.TakePending(ctx, state); err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d takers got the same pending entry, want 1", wins)
		}
	}
}
