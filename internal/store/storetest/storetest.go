// Package storetest is the suite every [authserver.Store] implementation
// must pass: call [Run] from the implementation's tests.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeclock"
)

// Factory returns a new, empty store whose clock is now.
type Factory func(t *testing.T, now func() time.Time) authserver.Store

// SharedFactory returns two stores over the same, new and empty state, as
// two replicas of vmcp would have (the same store twice for stores that
// live in one process). Their clock is now.
type SharedFactory func(t *testing.T, now func() time.Time) (a, b authserver.Store)

type clock = fakeclock.Clock

// Run runs the suite against stores made by newStore.
func Run(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s authserver.Store, c *clock)
	}{
		{"clients", testClients},
		{"client expiry and use", testClientExpiry},
		{"client cap evicts the oldest never-used", testClientCap},
		{"client cap under concurrency", testClientCapConcurrent},
		{"token lifecycle", testTokens},
		{"token families", testFamilies},
		{"token expiry", testTokenExpiry},
		{"grants", testGrants},
		{"pending is single use", testPending},
		{"pending expiry", testPendingExpiry},
		{"concurrent take", testConcurrentTake},
		{"pending limits", testPendingLimits},
		{"pending limits under concurrency", testPendingLimitsConcurrent},
		{"token active", testTokenActive},
		{"deactivate is atomic", testConcurrentDeactivate},
		{"refresh rotation and reuse", testRotationReuse},
		{"grant versions", testGrantVersions},
		{"concurrent grant updates", testConcurrentGrantPuts},
		{"grant locks", testGrantLocks},
		{"secrets", testSecrets},
		{"sessions", testSessions},
		{"session expiry", testSessionExpiry},
		{"concurrent session updates", testConcurrentSessionUpdates},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := fakeclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			tc.fn(t, newStore(t, c.Now), c)
		})
	}
}

// RunShared runs the checks that need two handles on one store: what one
// replica changes, the other sees (at once, or within a few seconds where
// a replica keeps local copies that changes elsewhere invalidate).
func RunShared(t *testing.T, newStores SharedFactory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b authserver.Store, c *clock)
	}{
		{"revocation reaches the other replica", testSharedRevocation},
		{"grant changes reach the other replica", testSharedGrants},
		{"locks are shared", testSharedLocks},
		{"sessions are shared and changes announced", testSharedSessions},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := fakeclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			a, b := newStores(t, c.Now)
			tc.fn(t, a, b, c)
		})
	}
}

var ctx = context.Background()

func testClients(t *testing.T, s authserver.Store, _ *clock) {
	c := &authserver.Client{ID: "c1", Name: "Client", RedirectURIs: []string{"http://127.0.0.1/cb"},
		GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, AuthMethod: "none",
		Metadata: map[string]any{"client_name": "Client"}, CreatedAt: time.Unix(100, 0).UTC()}
	if err := s.CreateClient(ctx, c, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, c, 0); err == nil {
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

func client(id string, created, expires time.Time) *authserver.Client {
	return &authserver.Client{ID: id, RedirectURIs: []string{"http://127.0.0.1/cb"}, GrantTypes: []string{"authorization_code"},
		ResponseTypes: []string{"code"}, AuthMethod: "none", CreatedAt: created.UTC(), ExpiresAt: expires.UTC()}
}

// testClientExpiry: a registration past its ExpiresAt is gone; a use
// (TouchClient) records UsedAt and pushes ExpiresAt back.
func testClientExpiry(t *testing.T, s authserver.Store, c *clock) {
	if err := s.CreateClient(ctx, client("short", c.Now(), c.Now().Add(time.Hour)), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, client("used", c.Now(), c.Now().Add(time.Hour)), 0); err != nil {
		t.Fatal(err)
	}
	used, exp := c.Now().Add(30*time.Minute).UTC(), c.Now().Add(3*time.Hour).UTC()
	if err := s.TouchClient(ctx, "used", used, exp); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetClient(ctx, "used")
	if err != nil {
		t.Fatal(err)
	}
	if !got.UsedAt.Equal(used) || !got.ExpiresAt.Equal(exp) {
		t.Errorf("after TouchClient: UsedAt %v ExpiresAt %v, want %v and %v", got.UsedAt, got.ExpiresAt, used, exp)
	}
	if err := s.TouchClient(ctx, "nope", used, exp); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("TouchClient(unknown) = %v, want ErrNotFound", err)
	}
	c.Add(2 * time.Hour)
	if _, err := s.GetClient(ctx, "short"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("an expired client: %v, want ErrNotFound", err)
	}
	if err := s.TouchClient(ctx, "short", c.Now(), c.Now().Add(time.Hour)); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("TouchClient of an expired client = %v, want ErrNotFound", err)
	}
	if _, err := s.GetClient(ctx, "used"); err != nil {
		t.Errorf("a client used within its extended expiry: %v", err)
	}
	if err := s.CreateClient(ctx, client("short", c.Now(), c.Now().Add(time.Hour)), 0); err != nil {
		t.Errorf("the ID of an expired client cannot be registered again: %v", err)
	}
	c.Add(2 * time.Hour)
	if _, err := s.GetClient(ctx, "used"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("a client unused past its extended expiry: %v, want ErrNotFound", err)
	}
}

// testClientCap: at the cap, a new registration replaces the never-used
// one registered first; static and used clients are never replaced, and
// with only those the store refuses (ErrLimit). Expired clients do not
// count.
func testClientCap(t *testing.T, s authserver.Store, c *clock) {
	t0 := c.Now()
	create := func(id string, created time.Time, max int) error {
		return s.CreateClient(ctx, client(id, created, t0.Add(24*time.Hour)), max)
	}
	static := client("static", t0.Add(-time.Hour), time.Time{})
	if err := s.CreateClient(ctx, static, 0); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"used", "old", "new"} {
		if err := create(id, t0.Add(time.Duration(i)*time.Minute), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.TouchClient(ctx, "used", t0, t0.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	present := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			if _, err := s.GetClient(ctx, id); err != nil {
				t.Errorf("client %s: %v, want it kept", id, err)
			}
		}
	}
	gone := func(id string) {
		t.Helper()
		if _, err := s.GetClient(ctx, id); !errors.Is(err, authserver.ErrNotFound) {
			t.Errorf("client %s: %v, want it forgotten", id, err)
		}
	}
	if err := create("x1", t0.Add(time.Hour), 4); err != nil {
		t.Fatalf("a registration at the cap with never-used ones stored: %v", err)
	}
	gone("old")
	present("static", "used", "new", "x1")
	if err := create("x2", t0.Add(2*time.Hour), 4); err != nil {
		t.Fatal(err)
	}
	gone("new")
	for _, id := range []string{"x1", "x2"} {
		if err := s.TouchClient(ctx, id, t0, t0.Add(48*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := create("x3", t0.Add(3*time.Hour), 4); !errors.Is(err, authserver.ErrLimit) {
		t.Errorf("a registration at the cap with every client in use: %v, want ErrLimit", err)
	}
	gone("x3")
	present("static", "used", "x1", "x2")
	if err := create("x4", t0.Add(3*time.Hour), 5); err != nil {
		t.Errorf("below a higher cap: %v", err)
	}
	if err := s.TouchClient(ctx, "x4", t0, t0.Add(30*time.Hour)); err != nil {
		t.Fatal(err)
	}
	c.Add(36 * time.Hour) // x4 (used) expired; the others were touched to t0+48h
	if err := s.CreateClient(ctx, client("x5", c.Now(), c.Now().Add(24*time.Hour)), 5); err != nil {
		t.Errorf("an expired client still counts towards the cap: %v", err)
	}
	present("static", "used", "x1", "x2", "x5")
}

// testClientCapConcurrent: concurrent registrations never leave more than
// the cap, and never evict a used client.
func testClientCapConcurrent(t *testing.T, s authserver.Store, c *clock) {
	const max = 5
	for i := range 3 {
		id := fmt.Sprint("used", i)
		if err := s.CreateClient(ctx, client(id, c.Now(), c.Now().Add(time.Hour)), 0); err != nil {
			t.Fatal(err)
		}
		if err := s.TouchClient(ctx, id, c.Now(), c.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			err := s.CreateClient(ctx, client(fmt.Sprint("c", i), c.Now().Add(time.Duration(i)*time.Second), c.Now().Add(time.Hour)), max)
			if err != nil && !errors.Is(err, authserver.ErrLimit) {
				t.Errorf("CreateClient: %v", err)
			}
		})
	}
	wg.Wait()
	live := 0
	for i := range 32 {
		if _, err := s.GetClient(ctx, fmt.Sprint("c", i)); err == nil {
			live++
		}
	}
	for i := range 3 {
		if _, err := s.GetClient(ctx, fmt.Sprint("used", i)); err != nil {
			t.Errorf("used client %d was evicted: %v", i, err)
		}
	}
	if live+3 > max || live == 0 {
		t.Errorf("%d never-used registrations kept beside 3 used ones; want 1..%d", live, max-3)
	}
}

func record(sig, rid string, exp time.Time) *authserver.TokenRecord {
	return &authserver.TokenRecord{Signature: sig, RequestID: rid, Active: true, ExpiresAt: exp, Request: []byte(`{"id":"` + rid + `"}`)}
}

func testTokens(t *testing.T, s authserver.Store, c *clock) {
	exp := c.Now().Add(time.Hour)
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
	exp := c.Now().Add(time.Hour)
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
	if err := s.CreateToken(ctx, authserver.KindCode, record("x", "r", c.Now().Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Minute)
	if _, err := s.GetToken(ctx, authserver.KindCode, "x"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("expired record: %v, want ErrNotFound", err)
	}
}

func testGrants(t *testing.T, s authserver.Store, c *clock) {
	g := &authserver.Grant{ID: "g1", Provider: "hydra", Subject: "u1", UpstreamIssuer: "https://idp", UpstreamSubject: "alice",
		AccessToken: "at", RefreshToken: "rt", IDToken: "id", Expiry: c.Now().Add(time.Hour).UTC(), Scopes: []string{"openid"},
		IDTokenClaims:  map[string]any{"email": "a@example.com", "groups": []any{"eng"}, "act": map[string]any{"sub": "svc"}},
		UserinfoClaims: map[string]any{"name": "Alice"}, UpdatedAt: c.Now().UTC()}
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
	g3.ID, g3.ExpiresAt, g3.Version = "g3", c.Now().Add(time.Hour).UTC(), 0
	if err := s.PutGrant(ctx, &g3); err != nil {
		t.Fatal(err)
	}
	c.Add(50 * time.Minute)
	g3.ExpiresAt = c.Now().Add(time.Hour).UTC()
	if err := s.PutGrant(ctx, &g3); err != nil {
		t.Fatal(err)
	}
	c.Add(50 * time.Minute)
	if _, err := s.GetGrant(ctx, "g3"); err != nil {
		t.Errorf("an extended grant within its new expiry: %v", err)
	}
	c.Add(20 * time.Minute)
	if _, err := s.GetGrant(ctx, "g3"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("an expired grant: %v, want ErrNotFound", err)
	}
	if _, err := s.GrantRevoked(ctx, "g3"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("GrantRevoked of an expired grant: %v, want ErrNotFound", err)
	}
}

func pending() *authserver.Pending {
	return pendingOf("c")
}

func pendingOf(clientID string) *authserver.Pending {
	return &authserver.Pending{Request: authserver.AuthorizeRequest{ClientID: clientID, RedirectURI: "http://127.0.0.1/cb",
		State: "a+b~", Scopes: []string{"mcp"}, Resource: "https://gw.example/mcp", CodeChallenge: "ch", CodeChallengeMethod: "S256"},
		Provider: "p", Nonce: "n", Verifier: "v", Binding: "b", CreatedAt: time.Unix(5, 0).UTC()}
}

var noLimits authserver.PendingLimits

func testPending(t *testing.T, s authserver.Store, _ *clock) {
	p := pending()
	if err := s.PutPending(ctx, "st", p, time.Minute, noLimits); err != nil {
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
	if err := s.PutPending(ctx, "st", pending(), time.Minute, noLimits); err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Minute)
	if _, err := s.TakePending(ctx, "st"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("expired take: %v, want ErrNotFound", err)
	}
}

// testConcurrentTake checks that a pending entry is handed out once even
// when many take it at the same time.
func testConcurrentTake(t *testing.T, s authserver.Store, _ *clock) {
	for i := range 20 {
		state := fmt.Sprint("st", i)
		if err := s.PutPending(ctx, state, pending(), time.Minute, noLimits); err != nil {
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

// testPendingLimits: a store refuses a pending login beyond the total cap
// (ErrLimit) or the client's (ErrClientLimit); taken, expired and
// replaced entries do not count.
func testPendingLimits(t *testing.T, s authserver.Store, c *clock) {
	lim := authserver.PendingLimits{Total: 4, PerClient: 2}
	put := func(state, client string) error { return s.PutPending(ctx, state, pendingOf(client), time.Minute, lim) }
	for _, e := range []struct{ state, client string }{{"a1", "a"}, {"a2", "a"}, {"b1", "b"}} {
		if err := put(e.state, e.client); err != nil {
			t.Fatalf("put %s: %v", e.state, err)
		}
	}
	if err := put("a3", "a"); !errors.Is(err, authserver.ErrClientLimit) {
		t.Errorf("a third pending login of client a: %v, want ErrClientLimit", err)
	}
	if err := put("a1", "a"); err != nil {
		t.Errorf("replacing a pending login of a client at its cap: %v", err)
	}
	if err := put("b2", "b"); err != nil {
		t.Errorf("client b below its cap: %v", err)
	}
	if err := put("c1", "c"); !errors.Is(err, authserver.ErrLimit) {
		t.Errorf("a fifth pending login: %v, want ErrLimit", err)
	}
	if _, err := s.TakePending(ctx, "c1"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("a refused pending login was stored: %v", err)
	}
	if _, err := s.TakePending(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	if err := put("a3", "a"); err != nil {
		t.Errorf("after a take, client a is below its cap: %v", err)
	}
	c.Add(2 * time.Minute)
	for i := range 4 {
		if err := put(fmt.Sprint("d", i), fmt.Sprint("d", i)); err != nil {
			t.Errorf("after every entry expired, put %d: %v", i, err)
		}
	}
}

// testPendingLimitsConcurrent: concurrent puts never exceed the caps.
func testPendingLimitsConcurrent(t *testing.T, s authserver.Store, _ *clock) {
	lim := authserver.PendingLimits{Total: 7, PerClient: 3}
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored := map[string]int{}
	for i := range 40 {
		wg.Go(func() {
			client := fmt.Sprint("c", i%4)
			err := s.PutPending(ctx, fmt.Sprint("st", i), pendingOf(client), time.Minute, lim)
			switch {
			case err == nil:
				mu.Lock()
				stored[client]++
				mu.Unlock()
			case !errors.Is(err, authserver.ErrLimit) && !errors.Is(err, authserver.ErrClientLimit):
				t.Errorf("PutPending: %v", err)
			}
		})
	}
	wg.Wait()
	total := 0
	for client, n := range stored {
		total += n
		if n > lim.PerClient {
			t.Errorf("client %s has %d pending logins, cap %d", client, n, lim.PerClient)
		}
	}
	if total != lim.Total {
		t.Errorf("%d pending logins stored, want exactly the cap %d (4 clients x 3 > 7)", total, lim.Total)
	}
}

func testTokenActive(t *testing.T, s authserver.Store, c *clock) {
	if _, err := s.TokenActive(ctx, authserver.KindAccess, "none"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("TokenActive(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.CreateToken(ctx, authserver.KindAccess, record("t", "r", c.Now().Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if active, err := s.TokenActive(ctx, authserver.KindAccess, "t"); err != nil || !active {
		t.Errorf("TokenActive of a new record = %v, %v; want true", active, err)
	}
	if _, err := s.TokenActive(ctx, authserver.KindRefresh, "t"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("TokenActive of another kind = %v, want ErrNotFound", err)
	}
	if err := s.DeactivateToken(ctx, authserver.KindAccess, "t"); err != nil {
		t.Fatal(err)
	}
	if active, err := s.TokenActive(ctx, authserver.KindAccess, "t"); err != nil || active {
		t.Errorf("TokenActive after DeactivateToken = %v, %v; want false", active, err)
	}
	if err := s.CreateToken(ctx, authserver.KindAccess, record("u", "r", c.Now().Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TokenActive(ctx, authserver.KindAccess, "u"); err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Minute)
	if _, err := s.TokenActive(ctx, authserver.KindAccess, "u"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("TokenActive of an expired record = %v, want ErrNotFound", err)
	}
	if err := s.DeactivateToken(ctx, authserver.KindAccess, "u"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("DeactivateToken of an expired record = %v, want ErrNotFound", err)
	}
}

// testConcurrentDeactivate: of many requests using one code or refresh
// token at once, exactly one wins.
func testConcurrentDeactivate(t *testing.T, s authserver.Store, c *clock) {
	for i := range 10 {
		sig := fmt.Sprint("code", i)
		if err := s.CreateToken(ctx, authserver.KindCode, record(sig, "r", c.Now().Add(time.Minute))); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, inactive := 0, 0
		for range 8 {
			wg.Go(func() {
				err := s.DeactivateToken(ctx, authserver.KindCode, sig)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, authserver.ErrInactive):
					inactive++
				default:
					t.Errorf("DeactivateToken: %v", err)
				}
			})
		}
		wg.Wait()
		if wins != 1 || inactive != 7 {
			t.Fatalf("8 concurrent DeactivateToken: %d won, %d got ErrInactive; want 1 and 7", wins, inactive)
		}
	}
	if err := s.DeactivateToken(ctx, authserver.KindCode, "unknown"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("DeactivateToken(unknown) = %v, want ErrNotFound", err)
	}
}

// testRotationReuse plays fosite's refresh: rotation retires the used
// refresh token and the family's access tokens; presenting the retired
// token again (reuse) revokes the whole family, the new tokens included.
func testRotationReuse(t *testing.T, s authserver.Store, c *clock) {
	exp := c.Now().Add(time.Hour)
	create := func(kind authserver.TokenKind, sig string) {
		t.Helper()
		if err := s.CreateToken(ctx, kind, record(sig, "fam", exp)); err != nil {
			t.Fatal(err)
		}
	}
	active := func(kind authserver.TokenKind, sig string) bool {
		t.Helper()
		a, err := s.TokenActive(ctx, kind, sig)
		if errors.Is(err, authserver.ErrNotFound) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	create(authserver.KindRefresh, "r1")
	create(authserver.KindAccess, "a1")
	// Rotation, raced by several requests with r1: one rotates.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var rotated []int
	for i := range 6 {
		wg.Go(func() {
			if err := s.DeactivateToken(ctx, authserver.KindRefresh, "r1"); err != nil {
				return
			}
			mu.Lock()
			rotated = append(rotated, i)
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(rotated) != 1 {
		t.Fatalf("%d concurrent rotations of one refresh token succeeded, want 1", len(rotated))
	}
	if err := s.DeleteFamily(ctx, authserver.KindAccess, "fam"); err != nil {
		t.Fatal(err)
	}
	create(authserver.KindRefresh, "r2")
	create(authserver.KindAccess, "a2")
	if active(authserver.KindAccess, "a1") || active(authserver.KindRefresh, "r1") {
		t.Error("the rotated refresh token or the old access token is still active")
	}
	if !active(authserver.KindRefresh, "r2") || !active(authserver.KindAccess, "a2") {
		t.Fatal("the new tokens are not active")
	}
	// Reuse of r1: it is found, inactive, and the family goes.
	old, err := s.GetToken(ctx, authserver.KindRefresh, "r1")
	if err != nil || old.Active {
		t.Fatalf("the retired refresh token: %+v, %v; want it inactive and readable", old, err)
	}
	if err := s.DeactivateFamily(ctx, authserver.KindRefresh, old.RequestID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteFamily(ctx, authserver.KindAccess, old.RequestID); err != nil {
		t.Fatal(err)
	}
	if active(authserver.KindRefresh, "r2") || active(authserver.KindAccess, "a2") {
		t.Error("reuse of a retired refresh token left the family's new tokens active")
	}
}

func grant(id string, c *clock) *authserver.Grant {
	return &authserver.Grant{ID: id, Provider: "p", Subject: "s", AccessToken: "at", RefreshToken: "rt",
		UpdatedAt: c.Now().UTC(), ExpiresAt: c.Now().Add(time.Hour).UTC()}
}

func testGrantVersions(t *testing.T, s authserver.Store, c *clock) {
	g := grant("gv", c)
	stale := *g
	stale.Version = 3
	if err := s.PutGrant(ctx, &stale); !errors.Is(err, authserver.ErrConflict) {
		t.Errorf("PutGrant of a version that was never stored = %v, want ErrConflict", err)
	}
	if err := s.PutGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	if g.Version == 0 {
		t.Fatal("PutGrant left Version 0")
	}
	first := *g // as read by someone else
	g.RefreshToken = "rt2"
	if err := s.PutGrant(ctx, g); err != nil {
		t.Fatalf("putting back the version read: %v", err)
	}
	first.RefreshToken = "overwrite"
	if err := s.PutGrant(ctx, &first); !errors.Is(err, authserver.ErrConflict) {
		t.Errorf("putting back an old version = %v, want ErrConflict", err)
	}
	got, err := s.GetGrant(ctx, "gv")
	if err != nil || got.RefreshToken != "rt2" || got.Version != g.Version {
		t.Errorf("stored grant: %+v, %v; want refresh token rt2 at version %d", got, err, g.Version)
	}
	again := *got
	again.ID = "gv-new"
	if err := s.PutGrant(ctx, &again); !errors.Is(err, authserver.ErrConflict) {
		t.Errorf("creating a grant with a non-zero version = %v, want ErrConflict", err)
	}
	// An expired grant is gone: a new one under its ID starts at version 0.
	c.Add(2 * time.Hour)
	fresh := grant("gv", c)
	if err := s.PutGrant(ctx, fresh); err != nil {
		t.Errorf("creating a grant where one expired: %v", err)
	}
	if err := s.DeleteGrant(ctx, "gv"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutGrant(ctx, grant("gv", c)); err != nil {
		t.Errorf("creating a grant where one was deleted: %v", err)
	}
}

// testConcurrentGrantPuts: of writers that read the same version, exactly
// one stores its change.
func testConcurrentGrantPuts(t *testing.T, s authserver.Store, c *clock) {
	g := grant("gc", c)
	if err := s.PutGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var won []string
	for i := range 8 {
		wg.Go(func() {
			mine := *g
			mine.RefreshToken = fmt.Sprint("rt-", i)
			err := s.PutGrant(ctx, &mine)
			switch {
			case err == nil:
				mu.Lock()
				won = append(won, mine.RefreshToken)
				mu.Unlock()
			case !errors.Is(err, authserver.ErrConflict):
				t.Errorf("PutGrant: %v", err)
			}
		})
	}
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d of 8 concurrent updates of one version were stored (%v), want 1", len(won), won)
	}
	got, err := s.GetGrant(ctx, "gc")
	if err != nil || got.RefreshToken != won[0] {
		t.Errorf("stored refresh token %v (%v), want the winner's %s", got, err, won[0])
	}
}

// waitFor polls cond every 10ms until it holds, for at most 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testGrantLocks(t *testing.T, s authserver.Store, c *clock) {
	lock := func(owner string, ttl time.Duration) bool {
		t.Helper()
		ok, err := s.LockGrant(ctx, "g", owner, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !lock("a", time.Minute) {
		t.Fatal("a free lock was refused")
	}
	if lock("b", time.Minute) {
		t.Fatal("a held lock was given to another owner")
	}
	if ok, _ := s.LockGrant(ctx, "other", "b", time.Minute); !ok {
		t.Error("the lock of another grant was refused")
	}
	if err := s.UnlockGrant(ctx, "g", "b"); err != nil {
		t.Fatal(err)
	}
	if lock("b", time.Minute) {
		t.Fatal("unlocking by a non-owner released the lock")
	}
	if err := s.UnlockGrant(ctx, "g", "a"); err != nil {
		t.Fatal(err)
	}
	if !lock("b", 100*time.Millisecond) {
		t.Fatal("the lock was not free after its owner unlocked it")
	}
	// A lease ends on its own (an owner that died): in the store's time.
	c.Add(time.Second)
	waitFor(t, "a lease of 100ms was still held", func() bool { return lock("c", time.Minute) })
}

func testSecrets(t *testing.T, s authserver.Store, _ *clock) {
	if _, err := s.GetSecret(ctx, "k"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("GetSecret(unknown) = %v, want ErrNotFound", err)
	}
	got, err := s.InitSecret(ctx, "k", []byte("first"))
	if err != nil || string(got) != "first" {
		t.Fatalf("InitSecret = %q, %v", got, err)
	}
	results := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			v, err := s.InitSecret(ctx, "k2", fmt.Appendf(nil, "v%d", i))
			if err != nil {
				t.Error(err)
			}
			results[i] = v
		})
	}
	wg.Wait()
	for _, r := range results {
		if string(r) != string(results[0]) {
			t.Fatalf("racing InitSecret calls got different secrets: %q", results)
		}
	}
	if again, err := s.InitSecret(ctx, "k", []byte("second")); err != nil || string(again) != "first" {
		t.Errorf("InitSecret over a stored secret = %q, %v; want the stored %q", again, err, "first")
	}
	if v, err := s.GetSecret(ctx, "k"); err != nil || string(v) != "first" {
		t.Errorf("GetSecret = %q, %v", v, err)
	}
}

func testSharedRevocation(t *testing.T, a, b authserver.Store, c *clock) {
	exp := c.Now().Add(time.Hour)
	for _, sig := range []string{"a1", "a2", "a3"} {
		if err := a.CreateToken(ctx, authserver.KindAccess, record(sig, "fam-"+sig, exp)); err != nil {
			t.Fatal(err)
		}
	}
	for _, sig := range []string{"a1", "a2", "a3"} {
		// b reads (and may keep a copy) before the change.
		if active, err := b.TokenActive(ctx, authserver.KindAccess, sig); err != nil || !active {
			t.Fatalf("b sees %s: %v, %v", sig, active, err)
		}
	}
	if err := a.DeleteFamily(ctx, authserver.KindAccess, "fam-a1"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeactivateFamily(ctx, authserver.KindAccess, "fam-a2"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteToken(ctx, authserver.KindAccess, "a3"); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []string{"a1", "a2", "a3"} {
		waitFor(t, "b still sees "+sig+" active after a revoked it", func() bool {
			active, err := b.TokenActive(ctx, authserver.KindAccess, sig)
			return !active && (err == nil || errors.Is(err, authserver.ErrNotFound))
		})
	}
}

func testSharedGrants(t *testing.T, a, b authserver.Store, c *clock) {
	g := grant("g", c)
	if err := a.PutGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	if revoked, err := b.GrantRevoked(ctx, "g"); err != nil || revoked {
		t.Fatalf("b: GrantRevoked = %v, %v", revoked, err)
	}
	if got, err := b.GetGrant(ctx, "g"); err != nil || got.RefreshToken != "rt" {
		t.Fatalf("b: GetGrant = %+v, %v", got, err)
	}
	g.RefreshToken = "rotated"
	if err := a.PutGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	// After the lock, b reads what a stored last, at once.
	if ok, err := b.LockGrant(ctx, "g", "b", time.Minute); err != nil || !ok {
		t.Fatalf("b: LockGrant = %v, %v", ok, err)
	}
	if got, err := b.GetGrant(ctx, "g"); err != nil || got.RefreshToken != "rotated" || got.Version != g.Version {
		t.Errorf("b after LockGrant: GetGrant = %+v, %v; want the rotated token at version %d", got, err, g.Version)
	}
	_ = b.UnlockGrant(ctx, "g", "b")
	g.Revoked = true
	if err := a.PutGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b does not see the grant revoked by a", func() bool {
		revoked, err := b.GrantRevoked(ctx, "g")
		return err == nil && revoked
	})
	if err := a.DeleteGrant(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b still sees the grant a deleted", func() bool {
		_, err := b.GetGrant(ctx, "g")
		return errors.Is(err, authserver.ErrNotFound)
	})
}

func testSharedLocks(t *testing.T, a, b authserver.Store, _ *clock) {
	if ok, err := a.LockGrant(ctx, "g", "a", time.Minute); err != nil || !ok {
		t.Fatalf("a: LockGrant = %v, %v", ok, err)
	}
	if ok, err := b.LockGrant(ctx, "g", "b", time.Minute); err != nil || ok {
		t.Fatalf("b took a lock a holds: %v, %v", ok, err)
	}
	if err := a.UnlockGrant(ctx, "g", "a"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.LockGrant(ctx, "g", "b", time.Minute); err != nil || !ok {
		t.Fatalf("b: LockGrant after a unlocked = %v, %v", ok, err)
	}
}

// Fill stores one of everything that grants access, through s, and
// returns the values that must not appear in the clear wherever s keeps
// its state (a test greps the raw database for them): token signatures
// (a signature and its stored request could be put together into a valid
// token), the content of stored requests, upstream tokens, the OAuth
// state and PKCE verifier of a pending login, a generated secret, a
// client's secret hash and identity claims.
func Fill(t *testing.T, s authserver.Store) []string {
	t.Helper()
	exp := time.Now().Add(time.Hour)
	v := []string{
		"sig-code-Y2m8Qx", "sig-access-Lp0Zr4", "sig-refresh-Hq7Tn2", "request-session-Kw3Vb9",
		"upstream-access-Rt6Mz1", "upstream-refresh-Xc5Ju8", "upstream-id-Fd2Wq7",
		"state-Ny4Pk6", "verifier-Gs9Lh3", "nonce-Be1Qa5", "generated-secret-Zu8Dm0",
		"$2a$10$secret-hash-Tq2Ov7", "alice-claims-Wm4Ye6@example.com",
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.CreateClient(ctx, &authserver.Client{ID: "client-1", SecretHash: []byte(v[11]), RedirectURIs: []string{"http://127.0.0.1/cb"}}, 0))
	req := []byte(`{"session":"` + v[3] + `"}`)
	for i, kind := range []authserver.TokenKind{authserver.KindCode, authserver.KindAccess, authserver.KindRefresh} {
		must(s.CreateToken(ctx, kind, &authserver.TokenRecord{Signature: v[i], RequestID: "rid", Active: true, ExpiresAt: exp, Request: req}))
	}
	must(s.PutGrant(ctx, &authserver.Grant{ID: "grant-1", Provider: "p", AccessToken: v[4], RefreshToken: v[5], IDToken: v[6],
		IDTokenClaims: map[string]any{"email": v[12]}, ExpiresAt: exp}))
	must(s.PutPending(ctx, v[7], &authserver.Pending{Request: authserver.AuthorizeRequest{ClientID: "client-1", RedirectURI: "http://127.0.0.1/cb"},
		Provider: "p", Verifier: v[8], Nonce: v[9]}, time.Hour, authserver.PendingLimits{}))
	if _, err := s.InitSecret(ctx, "server", []byte(v[10])); err != nil {
		t.Fatal(err)
	}
	return v
}
