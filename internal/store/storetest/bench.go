package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/authserver"
)

// Bench measures the calls of the per-request path (TokenActive,
// GrantRevoked: every MCP request with a vmcp token makes both) and of a
// refresh (CreateToken, DeactivateToken, PutGrant) on a store made by s.
func Bench(b *testing.B, s authserver.Store) {
	exp := time.Now().Add(time.Hour)
	if err := s.CreateToken(ctx, authserver.KindAccess, &authserver.TokenRecord{Signature: "bench-sig", RequestID: "r", Active: true, ExpiresAt: exp, Request: make([]byte, 1024)}); err != nil {
		b.Fatal(err)
	}
	g := &authserver.Grant{ID: "bench-grant", AccessToken: "at", RefreshToken: "rt", ExpiresAt: exp,
		IDTokenClaims: map[string]any{"email": "a@example.com", "groups": []any{"a", "b"}}}
	if err := s.PutGrant(ctx, g); err != nil {
		b.Fatal(err)
	}
	b.Run("per-request check", func(b *testing.B) {
		for b.Loop() {
			if active, err := s.TokenActive(ctx, authserver.KindAccess, "bench-sig"); err != nil || !active {
				b.Fatal(active, err)
			}
			if revoked, err := s.GrantRevoked(ctx, "bench-grant"); err != nil || revoked {
				b.Fatal(revoked, err)
			}
		}
	})
	b.Run("refresh writes", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			sig := fmt.Sprint("bench-", i)
			if err := s.CreateToken(ctx, authserver.KindRefresh, &authserver.TokenRecord{Signature: sig, RequestID: "r", Active: true, ExpiresAt: exp, Request: make([]byte, 1024)}); err != nil {
				b.Fatal(err)
			}
			if err := s.DeactivateToken(ctx, authserver.KindRefresh, sig); err != nil {
				b.Fatal(err)
			}
			if err := s.PutGrant(ctx, g); err != nil {
				b.Fatal(err)
			}
		}
	})
}
