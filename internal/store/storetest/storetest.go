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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := fakeclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			tc.fn(t, newStore(t, c.Now), c)
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
	g3.ID, g3.ExpiresAt = "g3", c.Now().Add(time.Hour).UTC()
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
