package memory

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/authserver"
)

// TestSweepForgetsExpired: entries nobody reads again (expired tokens,
// grants, pending logins, registrations) are forgotten after sweepEvery writes, so the
// maps stay bounded by what is live.
func TestSweepForgetsExpired(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	s := New(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	ctx := context.Background()
	for i := range 100 {
		id := fmt.Sprint(i)
		_ = s.CreateToken(ctx, authserver.KindAccess, &authserver.TokenRecord{Signature: id, RequestID: id, ExpiresAt: now.Add(time.Minute)})
		_ = s.PutGrant(ctx, &authserver.Grant{ID: id, ExpiresAt: now.Add(time.Minute)})
		_ = s.PutPending(ctx, id, &authserver.Pending{}, time.Minute, authserver.PendingLimits{})
		_ = s.CreateClient(ctx, &authserver.Client{ID: id, ExpiresAt: now.Add(time.Minute)}, 0)
	}
	_ = s.CreateClient(ctx, &authserver.Client{ID: "static"}, 0)
	_ = s.PutGrant(ctx, &authserver.Grant{ID: "live", ExpiresAt: now.Add(time.Hour)})
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	for range sweepEvery {
		_ = s.PutPending(ctx, "again", &authserver.Pending{}, time.Minute, authserver.PendingLimits{}) // one live key, rewritten
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.tokens[authserver.KindAccess]) + len(s.families[authserver.KindAccess]); n != 0 {
		t.Errorf("%d expired token records and families left", n)
	}
	if len(s.grants) != 1 || len(s.pending) != 1 || len(s.pendingByExpiry) != 1 || len(s.perClient) != 1 {
		t.Errorf("%d grants and %d pending logins (%d in the expiry heap, %d client counts) left; want the live grant and the live pending login",
			len(s.grants), len(s.pending), len(s.pendingByExpiry), len(s.perClient))
	}
	if len(s.clients) != 1 {
		t.Errorf("%d clients left; want the one that never expires", len(s.clients))
	}
}
