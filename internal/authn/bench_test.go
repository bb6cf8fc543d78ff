package authn_test

import (
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/authn"
)

// BenchmarkJWTVerifierRS256 verifies one valid RS256 token against a warm
// remote key cache: the cost every authenticated request pays.
func BenchmarkJWTVerifierRS256(b *testing.B) { benchAuthenticate(b, false) }

// BenchmarkJWTVerifierRS256Cold verifies a token that is not in the
// verified-token cache (its entry expired), against a warm remote key set:
// the cost of the first request with a new token.
func BenchmarkJWTVerifierRS256Cold(b *testing.B) { benchAuthenticate(b, true) }

// benchAuthenticate authenticates one RS256 token again and again; cold
// makes each time a verification (the verified-token cache's entry has
// expired), else each is a cache hit.
func benchAuthenticate(b *testing.B, cold bool) {
	k := rsaKey(0, "k1")
	p := newIdP(b, k)
	c := newClock()
	v, err := authn.NewJWTVerifier(&authn.JWTOptions{
		Issuer: p.URL(), Audience: audience, HTTPClient: p.srv.Client(), Now: c.Now,
		KeyCacheTTL: 1 << 62, // the clock moves on in the cold benchmark; the keys stay
	})
	if err != nil {
		b.Fatal(err)
	}
	claims := claimsFor(p.URL(), c.Now())
	claims["exp"] = c.Now().Add(100 * 365 * 24 * time.Hour).Unix()
	tok := sign(b, k, claims, nil)
	ctx := b.Context()
	if _, err := v.Authenticate(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if cold {
			c.Advance(authn.DefaultVerifiedCacheTTL)
		}
		if _, err := v.Authenticate(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
	if n := p.jwksHits.Load(); n != 1 {
		b.Errorf("JWKS fetched %d times, want 1", n)
	}
}
