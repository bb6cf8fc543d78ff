package authserver_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/store/memory"
	"github.com/vmcp-dev/vmcp/internal/store/redis"
	"github.com/vmcp-dev/vmcp/internal/store/seal"
	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
	"github.com/vmcp-dev/vmcp/internal/testsupport/redistest"
)

// sharedStores makes n stores over one state: the same memory store, or
// n clients of one real redis-server (as n replicas would be).
var sharedStores = map[string]func(t *testing.T, n int) []authserver.Store{
	"memory": func(_ *testing.T, n int) []authserver.Store {
		s := memory.New(nil)
		out := make([]authserver.Store, n)
		for i := range out {
			out[i] = s
		}
		return out
	},
	"redis": func(t *testing.T, n int) []authserver.Store {
		srv := redistest.Start(t, nil)
		keys, err := seal.New([][]byte{[]byte("replicas-test-key-0123456789abcdef")})
		if err != nil {
			t.Fatal(err)
		}
		out := make([]authserver.Store, n)
		for i := range out {
			c, err := redis.NewClient(redis.Config{Addr: srv.Addr})
			if err != nil {
				t.Fatal(err)
			}
			s, err := redis.New(redis.Options{Client: c, Keys: keys, Prefix: "replicas:"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			out[i] = s
		}
		return out
	},
}

// replicas are several authorization servers over one store behind one
// URL, each request going to the next one in turn (a round-robin load
// balancer).
type replicas struct {
	*env
	servers []*authserver.Server
	served  []atomic.Int64 // requests per replica
}

func newReplicas(t *testing.T, stores []authserver.Store, idpOpts fakeidp.Options) *replicas {
	t.Helper()
	idp := fakeidp.Start(t, idpOpts)
	var next atomic.Int64
	r := &replicas{served: make([]atomic.Int64, len(stores))}
	muxes := make([]*http.ServeMux, len(stores))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		i := int(next.Add(1)-1) % len(muxes)
		r.served[i].Add(1)
		muxes[i].ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	for i, st := range stores {
		pc := authserver.ProviderConfig{Name: "idp", Type: authserver.TypeOIDC, IssuerURL: idp.URL(), ClientID: "vmcp",
			ClientSecret: "secret", RedirectURI: srv.URL + authserver.PathCallback, Scopes: []string{"openid", "email"}}
		as, err := authserver.New(&authserver.Options{Issuer: srv.URL, Resource: srv.URL + "/mcp", Store: st,
			Providers: []authserver.ProviderConfig{pc}, Scopes: []string{"mcp"}})
		if err != nil {
			t.Fatal(err)
		}
		muxes[i] = http.NewServeMux()
		as.Routes(muxes[i])
		r.servers = append(r.servers, as)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r.env = &env{t: t, idp: idp, as: r.servers[0], srv: srv, browser: browser}
	return r
}

// TestReplicasShareOneLogin: registration, authorization, consent, the
// IdP's callback, the code, refreshes and the access token check each land
// on another replica than the step before, and the login works as on one
// server: the replicas share clients, pending logins, codes, tokens,
// grants, the generated keys and the consent secret.
func TestReplicasShareOneLogin(t *testing.T) {
	for name, stores := range sharedStores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newReplicas(t, stores(t, 3), fakeidp.Options{RotateRefreshTokens: true, AccessTokenTTL: time.Minute})
			client := r.publicClient()
			verifier := "verifier-0123456789-0123456789-0123456789-rep"
			tr := r.exchange(client, r.login(client, verifier).Query().Get("code"), verifier)
			if tr.status != http.StatusOK || tr.RefreshToken == "" {
				t.Fatalf("token: %d %v", tr.status, tr.raw)
			}
			for i := range 4 { // each refresh also refreshes upstream (its token lives a minute)
				next := r.refresh(client, tr.RefreshToken)
				if next.status != http.StatusOK {
					t.Fatalf("refresh %d: %d %v", i, next.status, next.raw)
				}
				tr = next
			}
			claims := r.claims(tr.AccessToken)
			for i, as := range r.servers {
				if err := as.CheckToken(context.Background(), claims, tr.AccessToken); err != nil {
					t.Errorf("replica %d does not accept the access token: %v", i, err)
				}
			}
			for i := range r.served {
				if r.served[i].Load() == 0 {
					t.Errorf("replica %d served no request", i)
				}
			}
			if n := r.idp.Refreshes.Load(); n != 4 {
				t.Errorf("%d upstream refreshes, want 4 (one per client refresh)", n)
			}
		})
	}
}

// TestRefreshRaceAcrossReplicas: replicas that need the same user's fresh
// upstream tokens at the same moment never present one upstream refresh
// token twice. The IdP rotates refresh tokens, refuses a used one and then
// revokes every token of the login (as strict IdPs do); a lost rotation
// would show as a revoked grant (the IdP's invalid_grant) or as a stored
// refresh token the IdP no longer accepts.
func TestRefreshRaceAcrossReplicas(t *testing.T) {
	for name, stores := range sharedStores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newReplicas(t, stores(t, 2), fakeidp.Options{RotateRefreshTokens: true, RevokeOnReuse: true, AccessTokenTTL: time.Hour})
			client := r.publicClient()
			verifier := "verifier-0123456789-0123456789-0123456789-race"
			tr := r.exchange(client, r.login(client, verifier).Query().Get("code"), verifier)
			if tr.status != http.StatusOK {
				t.Fatalf("token: %d %v", tr.status, tr.raw)
			}
			gid, _ := r.claims(tr.AccessToken)["gid"].(string)
			// Asking for tokens valid for 2h makes every call refresh (the
			// IdP's live 1h): each one presents the refresh token the
			// previous one stored.
			const perReplica = 6
			var wg sync.WaitGroup
			var failures atomic.Int64
			for _, as := range r.servers {
				for range perReplica {
					wg.Go(func() {
						if _, err := as.Grant(context.Background(), gid, 2*time.Hour); err != nil {
							failures.Add(1)
							t.Errorf("Grant: %v", err)
						}
					})
				}
			}
			wg.Wait()
			if failures.Load() > 0 {
				t.Fatalf("%d of %d concurrent refreshes failed", failures.Load(), 2*perReplica)
			}
			if n := r.idp.Reuses.Load(); n > 0 {
				t.Errorf("the IdP saw %d refresh tokens presented again", n)
			}
			refreshes := r.idp.Refreshes.Load()
			if refreshes < 2 {
				t.Errorf("%d upstream refreshes; want at least one per replica", refreshes)
			}
			// The stored refresh token is the one the IdP issued last: it
			// still works.
			g, err := r.servers[1].Grant(context.Background(), gid, 2*time.Hour)
			if err != nil || g.Revoked {
				t.Fatalf("a refresh after the race: %v (revoked %v)", err, g != nil && g.Revoked)
			}
			if r.idp.Refreshes.Load() != refreshes+1 {
				t.Errorf("the refresh after the race did not reach the IdP")
			}
			if _, err := r.servers[0].StoredGrant(context.Background(), gid); errors.Is(err, authserver.ErrGrantRevoked) {
				t.Error("the grant was revoked")
			}
		})
	}
}
