package frontend

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/authz"
	"github.com/vmcp-dev/vmcp/internal/identity"
)

// TestPrincipalCacheFull: when the principal cache is full, a new caller
// takes the place of the least recently used one; every other caller keeps
// its prepared principal. (The cache used to be emptied: the 10,001st
// caller made every caller's claims be resolved again at once.)
func TestPrincipalCacheFull(t *testing.T) {
	t.Parallel()
	a, err := authz.New(&authz.Options{Policies: authz.Policies{Inline: []string{`permit(principal, action, resource);`}}})
	if err != nil {
		t.Fatal(err)
	}
	var resolved atomic.Int64
	cache := newPrincipals()
	start := time.Now()
	cache.now = func() time.Time { return start } // entries never expire here: the test is about room, not time
	g := &Gateway{logger: slog.New(slog.DiscardHandler), principals: cache, opts: Options{Authorizer: a,
		Claims: func(_ context.Context, id *identity.Identity) (authz.Claims, error) {
			resolved.Add(1)
			return authz.Resolve(map[string]any{"sub": id.Subject}, nil), nil
		}}}
	const callers = maxPrincipals + 10
	ids := make([]*identity.Identity, callers)
	for i := range ids {
		ids[i] = &identity.Identity{Subject: fmt.Sprint("u", i)}
	}
	principal := func(i int) {
		t.Helper()
		if _, err := g.principal(identity.With(t.Context(), ids[i])); err != nil {
			t.Fatal(err)
		}
	}
	for i := range callers {
		principal(i)
	}
	if n := resolved.Load(); n != callers {
		t.Fatalf("claims resolved %d times for %d callers, want once each", n, callers)
	}
	for _, i := range []int{10, 11, maxPrincipals / 2, callers - 1} {
		principal(i)
		if n := resolved.Load(); n != callers {
			t.Fatalf("caller %d, one of the %d most recent, had its claims resolved again", i, maxPrincipals)
		}
	}
	principal(0)
	if n := resolved.Load(); n != callers+1 {
		t.Errorf("caller 0, the least recently used, was still cached (%d resolutions)", n)
	}
}

// BenchmarkPrincipalCached is the principal lookup of a caller whose
// prepared principal is cached: once per authorized request.
func BenchmarkPrincipalCached(b *testing.B) {
	a, err := authz.New(&authz.Options{Policies: authz.Policies{Inline: []string{`permit(principal, action, resource);`}}})
	if err != nil {
		b.Fatal(err)
	}
	g := &Gateway{logger: slog.New(slog.DiscardHandler), principals: newPrincipals(), opts: Options{Authorizer: a,
		Claims: func(_ context.Context, id *identity.Identity) (authz.Claims, error) {
			return authz.Resolve(map[string]any{"sub": id.Subject}, nil), nil
		}}}
	ctx := identity.With(b.Context(), &identity.Identity{Subject: "u"})
	if _, err := g.principal(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.principal(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
