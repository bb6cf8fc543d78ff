package authserver

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
)

// TestUpstreamAccessTokenVerified: the upstream access token is a claims
// source only when it is a JWT that verifies with the IdP's keys and names
// the IdP as its issuer; anything else yields no claims.
func TestUpstreamAccessTokenVerified(t *testing.T) {
	t.Parallel()

	t.Run("JWT from the IdP", func(t *testing.T) {
		t.Parallel()
		_, idp, _ := newGrants(t, fakeidp.Options{JWTAccessTokens: true, AccessTokenClaims: map[string]any{"roles": []any{"admin"}}})
		l := loginUpstream(t, idp)
		c := l.accessTokenClaims
		if c == nil {
			t.Fatal("no access token claims from a JWT the IdP signed")
		}
		if c["sub"] != "user-1" || c["iss"] != idp.URL() {
			t.Errorf("access token claims sub=%v iss=%v, want user-1 and %s", c["sub"], c["iss"], idp.URL())
		}
		if r, _ := c["roles"].([]any); len(r) != 1 || r[0] != "admin" {
			t.Errorf("access token claim roles = %v, want [admin]", c["roles"])
		}
	})

	t.Run("JWT from another issuer", func(t *testing.T) {
		t.Parallel()
		_, idp, _ := newGrants(t, fakeidp.Options{JWTAccessTokens: true, AccessTokenClaims: map[string]any{"iss": "https://other.example"}})
		l := loginUpstream(t, idp)
		if !isJWT(l.token.AccessToken) {
			t.Fatalf("the IdP did not issue a JWT access token: %q", l.token.AccessToken)
		}
		if l.accessTokenClaims != nil {
			t.Errorf("claims of an access token from another issuer were used: %v", l.accessTokenClaims)
		}
	})

	t.Run("opaque, malformed and forged", func(t *testing.T) {
		t.Parallel()
		gs, idp, _ := newGrants(t, fakeidp.Options{JWTAccessTokens: true})
		p := gs.providers["idp"]
		ctx := context.Background()
		// Sanity: the same provider accepts what the IdP really signed, so
		// the nil results below are about the tokens, not the provider.
		if c := p.accessTokenClaims(ctx, loginUpstream(t, idp).token.AccessToken); c["sub"] != "user-1" {
			t.Fatalf("a genuine access token yields claims %v, want sub user-1", c)
		}
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		// Same key id as the IdP's key, so only the signature gives it away.
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		forged, err := jwt.Signed(signer).Claims(map[string]any{"iss": idp.URL(), "sub": "user-1", "roles": []any{"admin"},
			"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		for name, at := range map[string]string{
			"opaque":                   "opaque_token",
			"malformed three segments": "a.b.c",
			"signed by another key":    forged,
		} {
			if c := p.accessTokenClaims(ctx, at); c != nil {
				t.Errorf("%s: access token claims %v, want none", name, c)
			}
		}
	})
}

func isJWT(s string) bool {
	_, err := jwt.ParseSigned(s, []jose.SignatureAlgorithm{jose.RS256})
	return err == nil
}
