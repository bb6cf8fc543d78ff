package authn_test

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/vmcp-dev/vmcp/internal/authn"
)

// TestJWKSKeysVmcpRefuses: keys of the issuer's key set that vmcp does not
// accept verify nothing, even under the kid a token names: RSA keys under
// 2048 bits, encryption keys, and keys for an algorithm vmcp does not
// accept.
func TestJWKSKeysVmcpRefuses(t *testing.T) {
	t.Parallel()
	weakKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	good := rsaKey(0, "good")
	weak := testKey{kid: "weak", alg: jose.RS256, priv: weakKey}
	enc := testKey{kid: "enc", alg: jose.RS256, priv: rsaKeys()[1], use: "enc"}
	rs384 := testKey{kid: "rs384", alg: jose.RS384, priv: rsaKeys()[2]}
	p := newIdP(t, good, weak, enc, rs384)
	c := newClock()
	v := newVerifier(t, p, c, nil)
	if _, err := v.Authenticate(t.Context(), sign(t, good, claimsFor(p.URL(), c.Now()), nil)); err != nil {
		t.Fatalf("a token of the good key: %v", err)
	}
	for _, k := range []testKey{weak, enc, {kid: "rs384", alg: jose.RS256, priv: rsaKeys()[2]}} {
		_, err := v.Authenticate(t.Context(), sign(t, k, claimsFor(p.URL(), c.Now()), nil))
		if !errors.Is(err, authn.ErrInvalidToken) {
			t.Errorf("a token of key %q: %v, want ErrInvalidToken", k.kid, err)
		}
	}
}

// TestJWKSWithdrawnKey: a key the issuer no longer publishes stops
// verifying once the key set is older than KeyCacheTTL, even though no
// token asked for an unknown key (go-oidc's RemoteKeySet alone would keep
// it for the life of the process).
func TestJWKSWithdrawnKey(t *testing.T) {
	t.Parallel()
	old, next := rsaKey(0, "old"), rsaKey(1, "next")
	p := newIdP(t, old)
	c := newClock()
	v := newVerifier(t, p, c, nil)
	if _, err := v.Authenticate(t.Context(), sign(t, old, claimsFor(p.URL(), c.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	p.setKeys(next)
	c.Advance(authn.DefaultKeyCacheTTL)
	if _, err := v.Authenticate(t.Context(), sign(t, old, claimsFor(p.URL(), c.Now()), nil)); !errors.Is(err, authn.ErrInvalidToken) {
		t.Errorf("a token of the withdrawn key after the key set's lifetime: %v, want ErrInvalidToken", err)
	}
	if n := p.jwksHits.Load(); n != 2 {
		t.Errorf("JWKS fetched %d times, want 2", n)
	}
	if _, err := v.Authenticate(t.Context(), sign(t, next, claimsFor(p.URL(), c.Now()), nil)); err != nil {
		t.Errorf("a token of the new key: %v", err)
	}
}

// TestJWKSBadSignatureFlood: tokens that name a known key but whose
// signature does not verify make go-oidc's key set fetch again; vmcp lets
// that happen at most once per MinRefreshInterval.
func TestJWKSBadSignatureFlood(t *testing.T) {
	t.Parallel()
	k := rsaKey(0, "k1")
	p := newIdP(t, k)
	c := newClock()
	v := newVerifier(t, p, c, nil)
	valid := sign(t, k, claimsFor(p.URL(), c.Now()), nil)
	if _, err := v.Authenticate(t.Context(), valid); err != nil {
		t.Fatal(err)
	}
	c.Advance(authn.DefaultMinRefreshInterval)
	forger := testKey{kid: "k1", alg: jose.RS256, priv: rsaKeys()[2]}
	for range 50 {
		_, err := v.Authenticate(t.Context(), sign(t, forger, claimsFor(p.URL(), c.Now()), nil))
		if !errors.Is(err, authn.ErrInvalidToken) {
			t.Fatalf("a forged token: %v, want ErrInvalidToken", err)
		}
		c.Advance(time.Second / 10)
	}
	if n := p.jwksHits.Load(); n != 2 {
		t.Errorf("50 forged tokens over 5s made %d JWKS fetches in all, want 2 (one per %v)", n, authn.DefaultMinRefreshInterval)
	}
}
