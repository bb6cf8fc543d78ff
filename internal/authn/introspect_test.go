package authn_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vmcp-dev/vmcp/internal/authn"
	"github.com/vmcp-dev/vmcp/internal/identity"
)

func newIntrospector(t *testing.T, p *fakeIdP, c *clock, mod func(*authn.IntrospectionOptions)) *authn.Introspector {
	t.Helper()
	opts := &authn.IntrospectionOptions{
		Endpoint:   p.URL() + "/introspect",
		HTTPClient: p.srv.Client(),
		Now:        c.Now,
	}
	if mod != nil {
		mod(opts)
	}
	in, err := authn.NewIntrospector(opts)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// activeResponse is an introspection answer for an active token that
// expires at exp.
func activeResponse(iss string, exp time.Time) map[string]any {
	return map[string]any{
		"active":     true,
		"sub":        "user-1",
		"iss":        iss,
		"client_id":  "client-1",
		"scope":      "tools:read tools:call",
		"exp":        exp.Unix(),
		"token_type": "Bearer",
		"gid":        "grant-1",
	}
}

func TestIntrospectorActive(t *testing.T) {
	t.Parallel()
	p := newIdP(t)
	p.mu.Lock()
	p.clientID, p.secret = "vmcp client", "s3cr:et&"
	p.mu.Unlock()
	c := newClock()
	exp := c.Now().Add(time.Hour)
	p.setActive("ory_at_abc.def", activeResponse(p.URL(), exp))
	in := newIntrospector(t, p, c, func(o *authn.IntrospectionOptions) {
		o.ClientID, o.ClientSecret = "vmcp client", "s3cr:et&"
		o.Issuer = p.URL()
		o.Audience = audience
	})
	id, err := in.Authenticate(t.Context(), "ory_at_abc.def")
	if err != nil {
		t.Fatal(err)
	}
	want := &identity.Identity{
		Subject: "user-1",
		Issuer:  p.URL(),
		Claims: map[string]any{
			"active": true, "sub": "user-1", "iss": p.URL(), "client_id": "client-1",
			"scope": "tools:read tools:call", "exp": float64(exp.Unix()), "token_type": "Bearer", "gid": "grant-1",
		},
		Scopes:     []string{"tools:call", "tools:read"},
		Expiry:     exp,
		Credential: "ory_at_abc.def", // no GrantID: only vmcp's own tokens name a grant
	}
	if diff := cmp.Diff(want, id); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
	p.mu.Lock()
	form, header := p.lastForm, p.lastHeader
	p.mu.Unlock()
	if diff := cmp.Diff(map[string][]string{"token": {"ory_at_abc.def"}, "token_type_hint": {"access_token"}}, form); diff != "" {
		t.Errorf("form (-want +got):\n%s", diff)
	}
	// RFC 6749 §2.3.1: form-encoded, then Basic.
	if got, want := header.Get("Authorization"), "Basic dm1jcCtjbGllbnQ6czNjciUzQWV0JTI2"; got != want {
		t.Errorf("Authorization = %q, want %q", got, want)
	}
}

func TestIntrospectorVerdicts(t *testing.T) {
	t.Parallel()
	p := newIdP(t)
	c := newClock()
	now := c.Now()
	resp := func(mod func(m map[string]any)) map[string]any {
		m := activeResponse(p.URL(), now.Add(time.Hour))
		mod(m)
		return m
	}
	in := newIntrospector(t, p, c, func(o *authn.IntrospectionOptions) {
		o.Issuer = p.URL()
		o.Audience = audience
	})
	tests := []struct {
		name string
		resp map[string]any // nil: unknown to the IdP
		ok   bool
	}{
		{name: "active", resp: resp(func(map[string]any) {}), ok: true},
		{name: "unknown", resp: nil},
		{name: "inactive", resp: map[string]any{"active": false}},
		{name: "active as a string", resp: resp(func(m map[string]any) { m["active"] = "true" })},
		{name: "expired", resp: resp(func(m map[string]any) { m["exp"] = now.Add(-time.Minute).Unix() })},
		{name: "no exp", resp: resp(func(m map[string]any) { delete(m, "exp") }), ok: true},
		{name: "nbf in the future", resp: resp(func(m map[string]any) { m["nbf"] = now.Add(time.Minute).Unix() })},
		{name: "no sub", resp: resp(func(m map[string]any) { delete(m, "sub") })},
		{name: "foreign issuer", resp: resp(func(m map[string]any) { m["iss"] = "https://evil.example" })},
		{name: "no issuer", resp: resp(func(m map[string]any) { delete(m, "iss") }), ok: true},
		{name: "matching audience", resp: resp(func(m map[string]any) { m["aud"] = []any{"x", audience} }), ok: true},
		{name: "wrong audience", resp: resp(func(m map[string]any) { m["aud"] = "https://other.example/mcp" })},
		{name: "refresh token", resp: resp(func(m map[string]any) { m["token_use"] = "refresh_token" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			token := "tok-" + tt.name
			if tt.resp != nil {
				p.setActive(token, tt.resp)
			}
			id, err := in.Authenticate(t.Context(), token)
			if tt.ok {
				if err != nil || id.Subject != "user-1" || id.Issuer != p.URL() {
					t.Fatalf("Authenticate = %+v, %v", id, err)
				}
				return
			}
			if !errors.Is(err, authn.ErrInvalidToken) || id != nil {
				t.Fatalf("Authenticate = %v, %v; want ErrInvalidToken", id, err)
			}
		})
	}
}

func TestIntrospectorCache(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	t.Run("active result lives no longer than the token", func(t *testing.T) {
		t.Parallel()
		p := newIdP(t)
		c := newClock()
		in := newIntrospector(t, p, c, nil)
		p.setActive("short", activeResponse(p.URL(), c.Now().Add(20*time.Second)))
		for range 3 {
			if _, err := in.Authenticate(ctx, "short"); err != nil {
				t.Fatal(err)
			}
		}
		if n := p.introspectHits.Load(); n != 1 {
			t.Fatalf("introspected %d times, want 1", n)
		}
		c.Advance(20 * time.Second) // the token's exp, well before MaxCacheTTL
		if _, err := in.Authenticate(ctx, "short"); err != nil {
			t.Fatal(err) // still within the clock skew
		}
		if n := p.introspectHits.Load(); n != 2 {
			t.Errorf("introspected %d times after exp, want 2", n)
		}
	})

	t.Run("active result lives at most MaxCacheTTL", func(t *testing.T) {
		t.Parallel()
		p := newIdP(t)
		c := newClock()
		in := newIntrospector(t, p, c, nil)
		p.setActive("long", activeResponse(p.URL(), c.Now().Add(time.Hour)))
		if _, err := in.Authenticate(ctx, "long"); err != nil {
			t.Fatal(err)
		}
		c.Advance(authn.DefaultMaxCacheTTL - time.Second)
		if _, err := in.Authenticate(ctx, "long"); err != nil {
			t.Fatal(err)
		}
		if n := p.introspectHits.Load(); n != 1 {
			t.Fatalf("introspected %d times, want 1", n)
		}
		// Revoked at the IdP: noticed once the entry has expired.
		p.setActive("long", map[string]any{"active": false})
		c.Advance(time.Second)
		if _, err := in.Authenticate(ctx, "long"); !errors.Is(err, authn.ErrInvalidToken) {
			t.Fatalf("after MaxCacheTTL: %v, want ErrInvalidToken", err)
		}
	})

	t.Run("inactive result lives NegativeCacheTTL", func(t *testing.T) {
		t.Parallel()
		p := newIdP(t)
		c := newClock()
		in := newIntrospector(t, p, c, nil)
		for range 3 {
			if _, err := in.Authenticate(ctx, "nope"); !errors.Is(err, authn.ErrInvalidToken) {
				t.Fatalf("Authenticate: %v", err)
			}
		}
		if n := p.introspectHits.Load(); n != 1 {
			t.Fatalf("introspected %d times, want 1", n)
		}
		p.setActive("nope", activeResponse(p.URL(), c.Now().Add(time.Hour)))
		c.Advance(authn.DefaultNegativeCacheTTL)
		if _, err := in.Authenticate(ctx, "nope"); err != nil {
			t.Fatalf("after NegativeCacheTTL: %v", err)
		}
	})

	t.Run("endpoint down is never valid and never cached", func(t *testing.T) {
		t.Parallel()
		p := newIdP(t)
		c := newClock()
		in := newIntrospector(t, p, c, nil)
		p.setActive("tok", activeResponse(p.URL(), c.Now().Add(time.Hour)))
		p.introspectDown.Store(true)
		for range 2 {
			id, err := in.Authenticate(ctx, "tok")
			if !errors.Is(err, authn.ErrUnavailable) || errors.Is(err, authn.ErrInvalidToken) || id != nil {
				t.Fatalf("Authenticate = %v, %v; want only ErrUnavailable", id, err)
			}
		}
		if n := p.introspectHits.Load(); n != 2 {
			t.Errorf("introspected %d times, want 2 (failures are not cached)", n)
		}
		p.introspectDown.Store(false)
		if _, err := in.Authenticate(ctx, "tok"); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
		p.srv.Close()
		if _, err := in.Authenticate(ctx, "other"); !errors.Is(err, authn.ErrUnavailable) {
			t.Fatalf("unreachable: %v, want ErrUnavailable", err)
		}
	})

	t.Run("wrong client credentials are unavailable, not invalid", func(t *testing.T) {
		t.Parallel()
		p := newIdP(t)
		p.mu.Lock()
		p.clientID, p.secret = "vmcp", "right"
		p.mu.Unlock()
		c := newClock()
		in := newIntrospector(t, p, c, func(o *authn.IntrospectionOptions) { o.ClientID, o.ClientSecret = "vmcp", "wrong" })
		if _, err := in.Authenticate(ctx, "tok"); !errors.Is(err, authn.ErrUnavailable) {
			t.Fatalf("Authenticate: %v, want ErrUnavailable", err)
		}
	})

	t.Run("concurrent lookups collapse", func(t *testing.T) {
		t.Parallel()
		p := newIdP(t)
		p.introspectArrived = make(chan struct{}, 1)
		p.introspectGate = make(chan struct{})
		c := newClock()
		in := newIntrospector(t, p, c, nil)
		p.setActive("tok", activeResponse(p.URL(), c.Now().Add(time.Hour)))
		var wg sync.WaitGroup
		errs := make([]error, 20)
		for i := range errs {
			wg.Go(func() { _, errs[i] = in.Authenticate(ctx, "tok") })
		}
		// Callers that arrive while the request is held join it; later
		// ones find its result cached.
		<-p.introspectArrived
		close(p.introspectGate)
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := p.introspectHits.Load(); n != 1 {
			t.Errorf("introspected %d times, want 1", n)
		}
	})
}

func TestNewIntrospectorOptions(t *testing.T) {
	t.Parallel()
	for _, endpoint := range []string{"", "idp/introspect", "ftp://idp/introspect"} {
		if _, err := authn.NewIntrospector(&authn.IntrospectionOptions{Endpoint: endpoint}); err == nil {
			t.Errorf("NewIntrospector(%q) succeeded", endpoint)
		}
	}
}

func TestChain(t *testing.T) {
	t.Parallel()
	k := rsaKey(0, "k1")
	p := newIdP(t, k)
	c := newClock()
	v := newVerifier(t, p, c, nil)
	jwt := sign(t, k, claimsFor(p.URL(), c.Now()), nil)
	p.setActive("ory_at_opaque.sig", activeResponse(p.URL(), c.Now().Add(time.Hour)))
	p.setActive(jwt, activeResponse(p.URL(), c.Now().Add(time.Hour)))

	tests := []struct {
		name         string
		jwt, opaque  bool
		token        string
		ok           bool
		introspected int32
	}{
		{name: "jwt to the verifier", jwt: true, opaque: true, token: jwt, ok: true},
		{name: "opaque to the introspector", jwt: true, opaque: true, token: "ory_at_opaque.sig", ok: true, introspected: 1},
		{name: "jwt without a verifier", opaque: true, token: jwt, ok: true, introspected: 1},
		{name: "bad jwt is not retried as opaque", jwt: true, opaque: true, token: tamper(jwt, 2)},
		{name: "opaque without an introspector", jwt: true, token: "ory_at_opaque.sig"},
		{name: "three parts, not JSON", jwt: true, opaque: false, token: "a.b.c"},
		{name: "nothing configured", token: jwt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: the subtests count introspections.
			var chain authn.Chain
			if tt.jwt {
				chain.JWT = v
			}
			if tt.opaque {
				chain.Opaque = newIntrospector(t, p, c, nil)
			}
			before := p.introspectHits.Load()
			id, err := chain.Authenticate(t.Context(), tt.token)
			if tt.ok != (err == nil) {
				t.Fatalf("Authenticate = %v, %v; want ok=%v", id, err, tt.ok)
			}
			if err != nil && !errors.Is(err, authn.ErrInvalidToken) {
				t.Errorf("error %v is not ErrInvalidToken", err)
			}
			if n := p.introspectHits.Load() - before; n != tt.introspected {
				t.Errorf("introspected %d times, want %d", n, tt.introspected)
			}
		})
	}
}
