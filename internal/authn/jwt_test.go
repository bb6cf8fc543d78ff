package authn_test

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vmcp-dev/vmcp/internal/authn"
	"github.com/vmcp-dev/vmcp/internal/identity"
)

// newVerifier returns a verifier of p's tokens on clock c, finding the keys
// by discovery; mod adjusts the options.
func newVerifier(t *testing.T, p *fakeIdP, c *clock, mod func(*authn.JWTOptions)) *authn.JWTVerifier {
	t.Helper()
	opts := &authn.JWTOptions{
		Issuer:     p.URL(),
		Audience:   audience,
		HTTPClient: p.srv.Client(),
		Now:        c.Now,
	}
	if mod != nil {
		mod(opts)
	}
	v, err := authn.NewJWTVerifier(opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// forge assembles a compact JWS from a header, claims and a signature
// function over the signing input.
func forge(t testing.TB, header, claims map[string]any, sig func(input []byte) []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	return input + "." + enc.EncodeToString(sig([]byte(input)))
}

// tamper flips one character in the middle of part i of a compact JWS.
func tamper(tok string, i int) string {
	parts := strings.Split(tok, ".")
	b := []byte(parts[i])
	m := len(b) / 2
	if b[m] == 'A' {
		b[m] = 'B'
	} else {
		b[m] = 'A'
	}
	parts[i] = string(b)
	return strings.Join(parts, ".")
}

func TestJWTVerifier(t *testing.T) {
	t.Parallel()
	rs := rsaKey(0, "rs")
	ps := testKey{kid: "ps", alg: jose.PS256, priv: rsaKeys()[1]}
	es := testKey{kid: "es", alg: jose.ES256, priv: ecKey()}
	ed := testKey{kid: "ed", alg: jose.EdDSA, priv: edKey()}
	unpublished := rsaKey(2, "rs")
	p := newIdP(t, rs, ps, es, ed)
	c := newClock()
	now := c.Now()
	v := newVerifier(t, p, c, nil)
	iss := p.URL()

	with := func(mod func(m map[string]any)) map[string]any {
		m := claimsFor(iss, now)
		mod(m)
		return m
	}
	pubPEM := func() []byte {
		der, err := x509.MarshalPKIXPublicKey(rs.priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}()
	hs256 := func(key []byte) func([]byte) []byte {
		return func(in []byte) []byte {
			m := hmac.New(sha256.New, key)
			m.Write(in)
			return m.Sum(nil)
		}
	}
	attacker := jose.JSONWebKey{Key: rsaKeys()[2].Public(), Algorithm: "RS256"}
	valid := sign(t, rs, claimsFor(iss, now), nil)

	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{name: "RS256", token: valid, ok: true},
		{name: "PS256", token: sign(t, ps, claimsFor(iss, now), nil), ok: true},
		{name: "ES256", token: sign(t, es, claimsFor(iss, now), nil), ok: true},
		{name: "EdDSA", token: sign(t, ed, claimsFor(iss, now), nil), ok: true},
		{name: "no kid", token: sign(t, testKey{alg: jose.RS256, priv: rs.priv}, claimsFor(iss, now), nil), ok: true},
		{name: "aud as a string", token: sign(t, rs, with(func(m map[string]any) { m["aud"] = audience }), nil), ok: true},
		{name: "wrong audience", token: sign(t, rs, with(func(m map[string]any) { m["aud"] = "https://other.example/mcp" }), nil)},
		{name: "audience with trailing slash", token: sign(t, rs, with(func(m map[string]any) { m["aud"] = audience + "/" }), nil)},
		{name: "no audience", token: sign(t, rs, with(func(m map[string]any) { delete(m, "aud") }), nil)},
		{name: "foreign issuer", token: sign(t, rs, with(func(m map[string]any) { m["iss"] = "https://idp.example" }), nil)},
		{name: "issuer with trailing slash", token: sign(t, rs, with(func(m map[string]any) { m["iss"] = iss + "/" }), nil)},
		{name: "expired", token: sign(t, rs, with(func(m map[string]any) { m["exp"] = now.Add(-time.Minute).Unix() }), nil)},
		{name: "expired within skew", token: sign(t, rs, with(func(m map[string]any) { m["exp"] = now.Add(-10 * time.Second).Unix() }), nil), ok: true},
		// go-jose's rule (jwt.Claims.ValidateWithLeeway): a token is valid
		// up to and including exp+skew, and not a second later.
		{name: "expired exactly at skew", token: sign(t, rs, with(func(m map[string]any) { m["exp"] = now.Add(-30 * time.Second).Unix() }), nil), ok: true},
		{name: "expired a second past skew", token: sign(t, rs, with(func(m map[string]any) { m["exp"] = now.Add(-31 * time.Second).Unix() }), nil)},
		{name: "nbf a second past skew", token: sign(t, rs, with(func(m map[string]any) { m["nbf"] = now.Add(31 * time.Second).Unix() }), nil)},
		{name: "aud null", token: sign(t, rs, with(func(m map[string]any) { m["aud"] = nil }), nil)},
		{name: "aud holds a number", token: sign(t, rs, with(func(m map[string]any) { m["aud"] = []any{audience, 7} }), nil)},
		{name: "iss not a string", token: sign(t, rs, with(func(m map[string]any) { m["iss"] = 7 }), nil)},
		{name: "nbf in the future", token: sign(t, rs, with(func(m map[string]any) { m["nbf"] = now.Add(time.Minute).Unix() }), nil)},
		{name: "nbf within skew", token: sign(t, rs, with(func(m map[string]any) { m["nbf"] = now.Add(10 * time.Second).Unix() }), nil), ok: true},
		{name: "iat in the future", token: sign(t, rs, with(func(m map[string]any) { m["iat"] = now.Add(time.Minute).Unix() }), nil)},
		{name: "no exp", token: sign(t, rs, with(func(m map[string]any) { delete(m, "exp") }), nil)},
		{name: "exp as a string", token: sign(t, rs, with(func(m map[string]any) { m["exp"] = fmt.Sprint(now.Add(time.Hour).Unix()) }), nil)},
		{name: "no sub", token: sign(t, rs, with(func(m map[string]any) { delete(m, "sub") }), nil)},
		{name: "tampered signature", token: tamper(valid, 2)},
		{name: "tampered payload", token: tamper(valid, 1)},
		{name: "signed by an unpublished key", token: sign(t, unpublished, claimsFor(iss, now), nil)},
		{name: "RSA key under the EC key's kid", token: sign(t, testKey{kid: "es", alg: jose.RS256, priv: rs.priv}, claimsFor(iss, now), nil)},
		{name: "RS384 is not allowed by default", token: sign(t, testKey{kid: "rs", alg: jose.RS384, priv: rs.priv}, claimsFor(iss, now), nil)},
		{name: "embedded jwk of the attacker", token: sign(t, testKey{alg: jose.RS256, priv: rsaKeys()[2]}, claimsFor(iss, now), map[jose.HeaderKey]any{"jwk": attacker})},
		{
			name: "alg none",
			token: forge(t, map[string]any{"alg": "none", "kid": "rs"}, claimsFor(iss, now),
				func([]byte) []byte { return nil }),
		},
		{
			name: "HS256 with the public key as secret",
			token: forge(t, map[string]any{"alg": "HS256", "kid": "rs", "typ": "JWT"}, claimsFor(iss, now),
				hs256(pubPEM)),
		},
		{name: "JSON serialization", token: `{"payload":"e30","protected":"eyJhbGciOiJSUzI1NiJ9","signature":"AA"}`},
		{name: "not a JWT", token: "opaque-token"},
		{name: "empty", token: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, err := v.Authenticate(t.Context(), tt.token)
			if tt.ok {
				if err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				if id.Subject != "user-1" || id.Issuer != iss {
					t.Errorf("identity = %q@%q, want user-1@%q", id.Subject, id.Issuer, iss)
				}
				return
			}
			if !errors.Is(err, authn.ErrInvalidToken) || errors.Is(err, authn.ErrUnavailable) || id != nil {
				t.Fatalf("Authenticate = %v, %v; want only ErrInvalidToken", id, err)
			}
		})
	}
}

func TestJWTVerifierIdentity(t *testing.T) {
	t.Parallel()
	k := rsaKey(0, "k1")
	p := newIdP(t, k)
	c := newClock()
	v := newVerifier(t, p, c, nil)
	claims := claimsFor(p.URL(), c.Now())
	claims["scp"] = []any{"admin", "tools:read"}
	claims["groups"] = []any{"a", "b"}
	tok := sign(t, k, claims, nil)
	id, err := v.Authenticate(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	var wantClaims map[string]any
	b, _ := json.Marshal(claims)
	_ = json.Unmarshal(b, &wantClaims)
	want := &identity.Identity{
		Subject:    "user-1",
		Issuer:     p.URL(),
		Claims:     wantClaims,
		Scopes:     []string{"admin", "tools:call", "tools:read"},
		Expiry:     c.Now().Add(time.Hour),
		Credential: tok, // no GrantID or Provider: another issuer's gid and idp name nothing of vmcp's
	}
	if diff := cmp.Diff(want, id); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
}

func TestNewJWTVerifierOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts authn.JWTOptions
		ok   bool
	}{
		{name: "discovery", opts: authn.JWTOptions{Issuer: "https://idp.example", Audience: audience}, ok: true},
		{name: "jwks url", opts: authn.JWTOptions{Issuer: "idp", Audience: audience, JWKSURL: "https://idp.example/jwks"}, ok: true},
		{name: "no issuer", opts: authn.JWTOptions{Audience: audience}},
		{name: "no audience", opts: authn.JWTOptions{Issuer: "https://idp.example"}},
		{name: "issuer is no URL for discovery", opts: authn.JWTOptions{Issuer: "idp", Audience: audience}},
		{name: "none", opts: authn.JWTOptions{Issuer: "https://idp.example", Audience: audience, Algorithms: []string{"none"}}},
		{name: "HS256", opts: authn.JWTOptions{Issuer: "https://idp.example", Audience: audience, Algorithms: []string{"RS256", "HS256"}}},
		{name: "ES384", opts: authn.JWTOptions{Issuer: "https://idp.example", Audience: audience, Algorithms: []string{"ES384"}}, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := authn.NewJWTVerifier(&tt.opts)
			if (err == nil) != tt.ok {
				t.Errorf("NewJWTVerifier: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestJWTKeyRotation(t *testing.T) {
	t.Parallel()
	old, next := rsaKey(0, "old"), rsaKey(1, "new")
	p := newIdP(t, old)
	c := newClock()
	v := newVerifier(t, p, c, nil)
	ctx := t.Context()
	if _, err := v.Authenticate(ctx, sign(t, old, claimsFor(p.URL(), c.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	if n := p.jwksHits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}

	// The IdP rotates; the first token under the new kid, a while later,
	// costs one fetch however many arrive at once.
	p.setKeys(old, next)
	c.Advance(time.Minute)
	tok := sign(t, next, claimsFor(p.URL(), c.Now()), nil)
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() { _, errs[i] = v.Authenticate(ctx, tok) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := p.jwksHits.Load(); n != 2 {
		t.Errorf("JWKS fetched %d times, want 2", n)
	}
	if n := p.discoveryHits.Load(); n != 1 {
		t.Errorf("discovery fetched %d times, want 1", n)
	}
	// The old key still works without a fetch.
	if _, err := v.Authenticate(ctx, sign(t, old, claimsFor(p.URL(), c.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	if n := p.jwksHits.Load(); n != 2 {
		t.Errorf("JWKS fetched %d times, want 2", n)
	}
}

func TestJWTKidFlood(t *testing.T) {
	t.Parallel()
	k := rsaKey(0, "k1")
	p := newIdP(t, k)
	c := newClock()
	v := newVerifier(t, p, c, nil)
	ctx := t.Context()
	if _, err := v.Authenticate(ctx, sign(t, k, claimsFor(p.URL(), c.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	c.Advance(authn.DefaultMinRefreshInterval)
	flood := func() {
		t.Helper()
		for i := range 50 {
			forged := testKey{kid: fmt.Sprintf("kid-%d", i), alg: jose.RS256, priv: rsaKeys()[2]}
			_, err := v.Authenticate(ctx, sign(t, forged, claimsFor(p.URL(), c.Now()), nil))
			if !errors.Is(err, authn.ErrInvalidToken) {
				t.Fatalf("forged kid %d: %v, want ErrInvalidToken", i, err)
			}
		}
	}
	flood()
	if n := p.jwksHits.Load(); n != 2 {
		t.Errorf("after a flood of unknown kids, JWKS fetched %d times, want 2", n)
	}
	c.Advance(authn.DefaultMinRefreshInterval)
	flood()
	if n := p.jwksHits.Load(); n != 3 {
		t.Errorf("after a second flood, JWKS fetched %d times, want 3", n)
	}
	// Tokens that would fail anyway (foreign issuer) never cost a fetch.
	c.Advance(authn.DefaultMinRefreshInterval)
	foreign := claimsFor("https://evil.example", c.Now())
	_, err := v.Authenticate(ctx, sign(t, testKey{kid: "x", alg: jose.RS256, priv: rsaKeys()[2]}, foreign, nil))
	if !errors.Is(err, authn.ErrInvalidToken) {
		t.Fatalf("foreign token: %v", err)
	}
	if n := p.jwksHits.Load(); n != 3 {
		t.Errorf("a foreign token caused a JWKS fetch (%d)", n)
	}
}

func TestJWTKeysUnavailable(t *testing.T) {
	t.Parallel()
	k := rsaKey(0, "k1")
	ctx := t.Context()

	t.Run("jwks down", func(t *testing.T) {
		t.Parallel()
		p := newIdP(t, k)
		p.jwksDown.Store(true)
		c := newClock()
		v := newVerifier(t, p, c, nil)
		tok := sign(t, k, claimsFor(p.URL(), c.Now()), nil)
		for range 3 {
			id, err := v.Authenticate(ctx, tok)
			if !errors.Is(err, authn.ErrUnavailable) || errors.Is(err, authn.ErrInvalidToken) || id != nil {
				t.Fatalf("Authenticate = %v, %v; want only ErrUnavailable", id, err)
			}
		}
		if n := p.jwksHits.Load(); n != 1 {
			t.Errorf("JWKS fetched %d times while down, want 1 (rate limited)", n)
		}
		p.jwksDown.Store(false)
		c.Advance(authn.DefaultMinRefreshInterval)
		if _, err := v.Authenticate(ctx, tok); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	})

	t.Run("idp unreachable", func(t *testing.T) {
		t.Parallel()
		p := newIdP(t, k)
		c := newClock()
		v := newVerifier(t, p, c, nil)
		tok := sign(t, k, claimsFor(p.URL(), c.Now()), nil)
		p.srv.Close()
		if _, err := v.Authenticate(ctx, tok); !errors.Is(err, authn.ErrUnavailable) {
			t.Fatalf("Authenticate: %v, want ErrUnavailable", err)
		}
	})

	t.Run("stale keys stay in use", func(t *testing.T) {
		t.Parallel()
		p := newIdP(t, k)
		c := newClock()
		v := newVerifier(t, p, c, nil)
		if _, err := v.Authenticate(ctx, sign(t, k, claimsFor(p.URL(), c.Now()), nil)); err != nil {
			t.Fatal(err)
		}
		p.jwksDown.Store(true)
		c.Advance(authn.DefaultKeyCacheTTL + time.Second)
		if _, err := v.Authenticate(ctx, sign(t, k, claimsFor(p.URL(), c.Now()), nil)); err != nil {
			t.Fatalf("with a stale key set: %v", err)
		}
		if n := p.jwksHits.Load(); n != 2 {
			t.Errorf("JWKS fetched %d times, want 2", n)
		}
		// An unknown kid while the IdP is away cannot be judged.
		c.Advance(authn.DefaultMinRefreshInterval)
		_, err := v.Authenticate(ctx, sign(t, rsaKey(1, "k2"), claimsFor(p.URL(), c.Now()), nil))
		if !errors.Is(err, authn.ErrUnavailable) {
			t.Fatalf("unknown kid while down: %v, want ErrUnavailable", err)
		}
	})

	t.Run("cancelled caller", func(t *testing.T) {
		t.Parallel()
		p := newIdP(t, k)
		c := newClock()
		v := newVerifier(t, p, c, nil)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := v.Authenticate(cctx, sign(t, k, claimsFor(p.URL(), c.Now()), nil))
		if err != nil && !errors.Is(err, authn.ErrUnavailable) {
			t.Fatalf("Authenticate: %v, want success or ErrUnavailable", err)
		}
	})
}

func TestJWTDiscovery(t *testing.T) {
	t.Parallel()
	k := rsaKey(0, "k1")
	tests := []struct {
		name     string
		oidc     bool
		mdIssuer string
		jwksURL  bool
		wantErr  error
	}{
		{name: "openid-configuration", oidc: true},
		{name: "oauth-authorization-server fallback", oidc: false},
		{name: "metadata names another issuer", oidc: true, mdIssuer: "https://evil.example", wantErr: authn.ErrUnavailable},
		{name: "jwks url given", oidc: false, mdIssuer: "https://evil.example", jwksURL: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newIdP(t, k)
			p.mu.Lock()
			p.oidc, p.mdIssuer = tt.oidc, tt.mdIssuer
			p.mu.Unlock()
			c := newClock()
			v := newVerifier(t, p, c, func(o *authn.JWTOptions) {
				if tt.jwksURL {
					o.JWKSURL = p.URL() + "/jwks"
				}
			})
			_, err := v.Authenticate(t.Context(), sign(t, k, claimsFor(p.URL(), c.Now()), nil))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Authenticate: %v, want %v", err, tt.wantErr)
			}
			if tt.jwksURL && p.discoveryHits.Load() != 0 {
				t.Errorf("discovery used despite JWKSURL")
			}
		})
	}
}

func TestJWTLocalKeys(t *testing.T) {
	t.Parallel()
	const iss = "https://gw.example.com"
	k := rsaKey(0, "as-1")
	c := newClock()
	errRevoked := fmt.Errorf("%w: grant revoked", authn.ErrInvalidToken)
	errStore := errors.New("store unreachable")
	var (
		mu      sync.Mutex
		keys    = []authn.PublicKey{k.public()}
		keysErr error
	)
	v, err := authn.NewJWTVerifier(&authn.JWTOptions{
		Issuer:      iss,
		Audience:    audience,
		Now:         c.Now,
		GrantClaims: true,
		Keys: func(context.Context) ([]authn.PublicKey, error) {
			mu.Lock()
			defer mu.Unlock()
			return keys, keysErr
		},
		Check: func(_ context.Context, claims map[string]any, raw string) error {
			if raw == "" {
				return errors.New("no raw token")
			}
			switch claims["gid"] {
			case "revoked":
				return errRevoked
			case "store-down":
				return errStore
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	grant := func(gid string) string {
		m := claimsFor(iss, c.Now())
		m["gid"] = gid
		return sign(t, k, m, nil)
	}
	ctx := t.Context()
	if id, err := v.Authenticate(ctx, grant("g1")); err != nil || id.GrantID != "g1" || id.Provider != "github" {
		t.Fatalf("Authenticate = %+v, %v; want grant g1 of provider github", id, err)
	}
	if _, err := v.Authenticate(ctx, grant("revoked")); !errors.Is(err, authn.ErrInvalidToken) {
		t.Errorf("revoked: %v, want ErrInvalidToken", err)
	}
	if _, err := v.Authenticate(ctx, grant("store-down")); !errors.Is(err, authn.ErrUnavailable) || !errors.Is(err, errStore) {
		t.Errorf("store down: %v, want ErrUnavailable wrapping the store error", err)
	}
	if _, err := v.Authenticate(ctx, sign(t, rsaKey(1, "as-2"), claimsFor(iss, c.Now()), nil)); !errors.Is(err, authn.ErrInvalidToken) {
		t.Errorf("unknown local kid: %v, want ErrInvalidToken", err)
	}
	mu.Lock()
	keysErr = errors.New("keys unavailable")
	mu.Unlock()
	if _, err := v.Authenticate(ctx, grant("g2")); !errors.Is(err, authn.ErrUnavailable) { // a token not verified before
		t.Errorf("key source failing: %v, want ErrUnavailable", err)
	}
}

// TestJWTVerifiedCache checks that a token verified once skips the
// signature check but not the expiry or the Check hook.
func TestJWTVerifiedCache(t *testing.T) {
	t.Parallel()
	k := rsaKey(0, "k1")
	c := newClock()
	revoked := false
	var mu sync.Mutex
	v, err := authn.NewJWTVerifier(&authn.JWTOptions{
		Issuer: "https://as.example", Audience: audience, Now: c.Now,
		Keys: func(context.Context) ([]authn.PublicKey, error) { return []authn.PublicKey{k.public()}, nil },
		Check: func(context.Context, map[string]any, string) error {
			mu.Lock()
			defer mu.Unlock()
			if revoked {
				return fmt.Errorf("%w: revoked", authn.ErrInvalidToken)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, k, claimsFor("https://as.example", c.Now()), nil)
	ctx := t.Context()
	for i := range 2 {
		if _, err := v.Authenticate(ctx, tok); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	mu.Lock()
	revoked = true
	mu.Unlock()
	if _, err := v.Authenticate(ctx, tok); !errors.Is(err, authn.ErrInvalidToken) {
		t.Errorf("revoked after caching: %v, want ErrInvalidToken", err)
	}
	mu.Lock()
	revoked = false
	mu.Unlock()
	c.Advance(2 * time.Hour)
	if _, err := v.Authenticate(ctx, tok); !errors.Is(err, authn.ErrInvalidToken) {
		t.Errorf("expired after caching: %v, want ErrInvalidToken", err)
	}
}

func TestJWTTokenTypes(t *testing.T) {
	t.Parallel()
	k := rsaKey(0, "k1")
	c := newClock()
	v, err := authn.NewJWTVerifier(&authn.JWTOptions{
		Issuer: "https://as.example", Audience: audience, Now: c.Now, TokenTypes: []string{"at+jwt"},
		Keys: func(context.Context) ([]authn.PublicKey, error) { return []authn.PublicKey{k.public()}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		typ string // "" for none
		ok  bool
	}{
		{typ: "at+jwt", ok: true},
		{typ: "application/AT+JWT", ok: true},
		{typ: "JWT"},
		{typ: "refresh+jwt"},
		{typ: ""},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			t.Parallel()
			var extra map[jose.HeaderKey]any
			if tt.typ != "" {
				extra = map[jose.HeaderKey]any{jose.HeaderType: tt.typ}
			}
			tok := sign(t, k, claimsFor("https://as.example", c.Now()), extra)
			if tt.typ == "" {
				tok = forge(t, map[string]any{"alg": "RS256", "kid": "k1"}, claimsFor("https://as.example", c.Now()), func(in []byte) []byte {
					h := sha256.Sum256(in)
					sig, err := k.priv.Sign(nil, h[:], crypto.SHA256)
					if err != nil {
						t.Fatal(err)
					}
					return sig
				})
			}
			_, err := v.Authenticate(t.Context(), tok)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, authn.ErrInvalidToken)) {
				t.Errorf("Authenticate: %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "token type") {
				t.Errorf("Authenticate: %v, want a rejection for the type", err)
			}
		})
	}
}

func TestScopesClaim(t *testing.T) {
	t.Parallel()
	k := rsaKey(0, "k1")
	c := newClock()
	v, err := authn.NewJWTVerifier(&authn.JWTOptions{
		Issuer: "https://as.example", Audience: audience, Now: c.Now,
		Keys: func(context.Context) ([]authn.PublicKey, error) { return []authn.PublicKey{k.public()}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		claim map[string]any
		want  []string
	}{
		{name: "none", claim: map[string]any{}, want: nil},
		{name: "scope string", claim: map[string]any{"scope": " a  b:c "}, want: []string{"a", "b:c"}},
		{name: "scope array", claim: map[string]any{"scope": []any{"a", "b"}}, want: []string{"a", "b"}},
		{name: "scp array", claim: map[string]any{"scp": []any{"x", 3, "y"}}, want: []string{"x", "y"}},
		{name: "scp string", claim: map[string]any{"scp": "x y"}, want: []string{"x", "y"}},
		{name: "both, merged", claim: map[string]any{"scope": "a b", "scp": []any{"b", "c"}}, want: []string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := claimsFor("https://as.example", c.Now())
			delete(m, "scope")
			for n, val := range tt.claim {
				m[n] = val
			}
			id, err := v.Authenticate(t.Context(), sign(t, k, m, nil))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, id.Scopes, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("scopes (-want +got):\n%s", diff)
			}
		})
	}
}
