package backendauth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vmcp-dev/vmcp/internal/backendauth"
	"github.com/vmcp-dev/vmcp/internal/identity"
)

// sts is an independent RFC 8693 token service for tests: it answers
// "exchanged-<subject token>-<n>" and counts exchanges.
type sts struct {
	srv      *httptest.Server
	n        atomic.Int64
	ttl      int
	fail     atomic.Bool
	lastForm sync.Map
}

func newSTS(t *testing.T, ttl int) *sts {
	s := &sts{ttl: ttl}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.fail.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_target","error_description":"no such audience"}`)
			return
		}
		id, secret, _ := r.BasicAuth()
		if id != "vmcp" || secret != "s3cret" || r.FormValue("grant_type") != backendauth.GrantTypeTokenExchange ||
			r.FormValue("subject_token_type") != backendauth.TokenTypeAccessToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		for _, k := range []string{"audience", "scope", "subject_token"} {
			s.lastForm.Store(k, r.FormValue(k))
		}
		n := s.n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"exchanged-%s-%d","issued_token_type":"%s","token_type":"Bearer","expires_in":%d}`,
			r.FormValue("subject_token"), n, backendauth.TokenTypeAccessToken, s.ttl)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

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

func user(sub, token string) *identity.Identity {
	return &identity.Identity{Subject: sub, Issuer: "https://gw", Credential: token}
}

func authz(t *testing.T, s backendauth.Strategy, id *identity.Identity) (string, error) {
	t.Helper()
	h := http.Header{}
	err := s.Apply(context.Background(), id, h)
	return h.Get("Authorization"), err
}

func TestTokenExchangeCaching(t *testing.T) {
	t.Parallel()
	st := newSTS(t, 120)
	c := &clock{t: time.Unix(1000, 0)}
	x := &backendauth.TokenExchange{TokenURL: st.srv.URL, ClientID: "vmcp", ClientSecret: "s3cret",
		Audience: "https://backend", Scopes: []string{"read"}, Now: c.now}
	alice, bob := user("alice", "tok-a"), user("bob", "tok-b")
	a1, err := authz(t, x, alice)
	if err != nil || a1 != "Bearer exchanged-tok-a-1" {
		t.Fatalf("first exchange: %q, %v", a1, err)
	}
	if aud, _ := st.lastForm.Load("audience"); aud != "https://backend" {
		t.Errorf("audience sent = %v", aud)
	}
	if a2, _ := authz(t, x, alice); a2 != a1 {
		t.Errorf("second call = %q, want the cached %q", a2, a1)
	}
	if b1, _ := authz(t, x, bob); b1 != "Bearer exchanged-tok-b-2" {
		t.Errorf("bob = %q: users must not share tokens", b1)
	}
	c.add(91 * time.Second) // within 30s of expiry: exchanged again
	if a3, _ := authz(t, x, alice); a3 != "Bearer exchanged-tok-a-3" {
		t.Errorf("near expiry = %q, want a new exchange", a3)
	}
	if hits, ex, fails := x.Counts(); hits != 1 || ex != 3 || fails != 0 {
		t.Errorf("counts = %d hits, %d exchanges, %d fails", hits, ex, fails)
	}
	// A user whose token changed (a refresh) gets a fresh exchange.
	if a4, _ := authz(t, x, user("alice", "tok-a2")); a4 != "Bearer exchanged-tok-a2-4" {
		t.Errorf("new subject token = %q", a4)
	}
}

func TestTokenExchangeCollapses(t *testing.T) {
	t.Parallel()
	st := newSTS(t, 300)
	x := &backendauth.TokenExchange{TokenURL: st.srv.URL, ClientID: "vmcp", ClientSecret: "s3cret", Audience: "a"}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := authz(t, x, user("alice", "tok-a")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := st.n.Load(); n != 1 {
		t.Errorf("%d exchanges for 20 concurrent calls of one user, want 1", n)
	}
}

func TestTokenExchangeErrors(t *testing.T) {
	t.Parallel()
	st := newSTS(t, 300)
	st.fail.Store(true)
	x := &backendauth.TokenExchange{TokenURL: st.srv.URL, ClientID: "vmcp", ClientSecret: "s3cret", Audience: "a"}
	if _, err := authz(t, x, user("alice", "tok")); err == nil || !strings.Contains(err.Error(), "invalid_target") {
		t.Errorf("refused exchange: %v, want the STS's error code", err)
	}
	down := &backendauth.TokenExchange{TokenURL: "http://127.0.0.1:1/token", ClientID: "vmcp", ClientSecret: "s", Audience: "a"}
	start := time.Now()
	if _, err := authz(t, down, user("alice", "tok")); err == nil || !strings.Contains(err.Error(), "cannot be reached") {
		t.Errorf("STS down: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Error("STS down took too long")
	}
	if h, err := authz(t, x, nil); h != "" || err != nil {
		t.Errorf("vmcp's own traffic got %q, %v; want no credentials", h, err)
	}
}

func TestTokenExchangeUpstreamSubject(t *testing.T) {
	t.Parallel()
	st := newSTS(t, 300)
	x := &backendauth.TokenExchange{TokenURL: st.srv.URL, ClientID: "vmcp", ClientSecret: "s3cret", Audience: "a", SubjectProvider: "google",
		Upstream: func(_ context.Context, id *identity.Identity, _ time.Duration) (*backendauth.UpstreamToken, error) {
			return &backendauth.UpstreamToken{Provider: "google", AccessToken: "ya29." + id.Subject}, nil
		}}
	if h, err := authz(t, x, user("alice", "client-token")); err != nil || h != "Bearer exchanged-ya29.alice-1" {
		t.Errorf("upstream subject: %q, %v", h, err)
	}
	if v, _ := st.lastForm.Load("subject_token"); v != "ya29.alice" {
		t.Errorf("subject token sent = %v, want the upstream token (never the client's)", v)
	}
}

func TestUpstreamInject(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	up := func(_ context.Context, id *identity.Identity, minValid time.Duration) (*backendauth.UpstreamToken, error) {
		calls.Add(1)
		if id.Subject == "revoked" {
			return nil, fmt.Errorf("%w: refresh refused", backendauth.ErrReauthorize)
		}
		if minValid <= 0 {
			t.Errorf("minValid = %v, want a margin", minValid)
		}
		return &backendauth.UpstreamToken{Provider: "google", AccessToken: "ya29." + id.Subject}, nil
	}
	s := backendauth.UpstreamInject{Provider: "google", Upstream: up}
	if h, err := authz(t, s, user("alice", "client")); err != nil || h != "Bearer ya29.alice" {
		t.Errorf("alice: %q, %v", h, err)
	}
	if _, err := authz(t, s, user("revoked", "client")); !errors.Is(err, backendauth.ErrReauthorize) {
		t.Errorf("revoked: %v, want ErrReauthorize", err)
	}
	other := backendauth.UpstreamInject{Provider: "github", Upstream: up}
	if _, err := authz(t, other, user("alice", "client")); !errors.Is(err, backendauth.ErrReauthorize) {
		t.Errorf("other provider: %v, want ErrReauthorize", err)
	}
	if h, _ := authz(t, s, nil); h != "" {
		t.Errorf("vmcp's own traffic got %q", h)
	}
}

func TestStaticAndPassthrough(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	if err := (backendauth.Header{Name: "X-Api-Key", Value: "k"}).Apply(context.Background(), nil, h); err != nil || h.Get("X-Api-Key") != "k" {
		t.Errorf("header: %v %v", h, err)
	}
	if got, _ := authz(t, backendauth.None{}, user("alice", "client")); got != "" {
		t.Errorf("none sent %q", got)
	}
	if got, _ := authz(t, backendauth.Passthrough{}, user("alice", "client")); got != "Bearer client" {
		t.Errorf("passthrough sent %q", got)
	}
	if (backendauth.None{}).PerUser() || (backendauth.Header{}).PerUser() || !(backendauth.Passthrough{}).PerUser() {
		t.Error("PerUser is wrong")
	}
}

// BenchmarkTokenExchangeCached is the cost per backend request of a user
// whose exchanged token is cached.
func BenchmarkTokenExchangeCached(b *testing.B) {
	st := &sts{ttl: 3600}
	st.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"x","issued_token_type":"%s","token_type":"Bearer","expires_in":3600}`, backendauth.TokenTypeAccessToken)
	}))
	b.Cleanup(st.srv.Close)
	x := &backendauth.TokenExchange{TokenURL: st.srv.URL, ClientID: "vmcp", ClientSecret: "s3cret", Audience: "a"}
	id := user("alice", "tok-a")
	h := http.Header{}
	ctx := b.Context()
	if err := x.Apply(ctx, id, h); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := x.Apply(ctx, id, h); err != nil {
			b.Fatal(err)
		}
	}
}

// handlerTransport serves requests with a handler, in process: for tests
// that make thousands of exchanges.
type handlerTransport struct{ h http.Handler }

func (ht handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	ht.h.ServeHTTP(w, r)
	return w.Result(), nil
}

// TestTokenExchangeCacheFull: when the cache is full, a new user's token
// takes the place of the least recently used one; every other user keeps
// theirs. (The cache used to be emptied: the 10,001st user made every user
// exchange again at once.)
func TestTokenExchangeCacheFull(t *testing.T) {
	t.Parallel()
	st := newSTS(t, 300)
	x := &backendauth.TokenExchange{TokenURL: st.srv.URL, ClientID: "vmcp", ClientSecret: "s3cret", Audience: "a",
		HTTPClient: &http.Client{Transport: handlerTransport{st.srv.Config.Handler}}}
	u := func(i int) *identity.Identity { return user(fmt.Sprint("u", i), fmt.Sprint("tok-", i)) }
	const users = backendauth.MaxCachedTokens + 10
	for i := range users {
		if _, err := authz(t, x, u(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.n.Load(); n != users {
		t.Fatalf("%d exchanges for %d users, want one each", n, users)
	}
	for _, i := range []int{10, 11, backendauth.MaxCachedTokens / 2, users - 1} {
		if _, err := authz(t, x, u(i)); err != nil {
			t.Fatal(err)
		}
		if n := st.n.Load(); n != users {
			t.Fatalf("user %d, one of the %d most recent, had to exchange again", i, backendauth.MaxCachedTokens)
		}
	}
	if _, err := authz(t, x, u(0)); err != nil {
		t.Fatal(err)
	}
	if n := st.n.Load(); n != users+1 {
		t.Errorf("user 0, the least recently used, was still cached (%d exchanges)", n)
	}
}

// TestTokenExchangeRequest checks the request on the wire, whatever builds
// it: one form POST with the RFC 8693 parameters, the client
// authenticated with HTTP Basic (both parts form-encoded, RFC 6749
// §2.3.1), and an answer's body never in an error.
func TestTokenExchangeRequest(t *testing.T) {
	t.Parallel()
	var form atomic.Pointer[map[string][]string]
	var status atomic.Int64
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, _ := r.BasicAuth()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" ||
			id != "vmcp%3Agw" || secret != "s%3Acr%2Ft+x" {
			http.Error(w, "bad client authentication or request", http.StatusUnauthorized)
			return
		}
		_ = r.ParseForm()
		f := map[string][]string(r.PostForm)
		form.Store(&f)
		if s := int(status.Load()); s != http.StatusOK {
			http.Error(w, "upstream trouble with subject_token "+r.PostForm.Get("subject_token"), s)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"new","issued_token_type":"%s","token_type":"N_A","expires_in":600}`, backendauth.TokenTypeAccessToken)
	}))
	t.Cleanup(srv.Close)
	x := &backendauth.TokenExchange{TokenURL: srv.URL, ClientID: "vmcp:gw", ClientSecret: "s:cr/t x",
		Audience: "https://backend.example", Resource: "https://backend.example/mcp", Scopes: []string{"a", "b"}}
	if h, err := authz(t, x, user("alice", "tok-a")); err != nil || h != "Bearer new" {
		t.Fatalf("exchange: %q, %v", h, err)
	}
	want := map[string][]string{
		"grant_type":           {backendauth.GrantTypeTokenExchange},
		"subject_token":        {"tok-a"},
		"subject_token_type":   {backendauth.TokenTypeAccessToken},
		"requested_token_type": {backendauth.TokenTypeAccessToken},
		"audience":             {"https://backend.example"},
		"resource":             {"https://backend.example/mcp"},
		"scope":                {"a b"},
		"code":                 {""}, // x/oauth2 sends it empty; RFC 6749 §3.2: ignored
	}
	if diff := cmp.Diff(want, *form.Load()); diff != "" {
		t.Errorf("form (-want +got):\n%s", diff)
	}
	status.Store(http.StatusBadGateway)
	_, err := authz(t, x, user("bob", "tok-secret-b"))
	if err == nil || !strings.Contains(err.Error(), "502") || strings.Contains(err.Error(), "tok-secret-b") {
		t.Errorf("a failed exchange: %v; want the status, never the answer's body (it echoes the subject token)", err)
	}
}
