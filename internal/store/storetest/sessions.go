package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/mcpsession"
)

// sessions returns s as a session store; every store must be one.
func sessions(t *testing.T, s authserver.Store) mcpsession.Store {
	t.Helper()
	ss, ok := s.(mcpsession.Store)
	if !ok {
		t.Fatalf("%T does not keep MCP sessions (mcpsession.Store)", s)
	}
	return ss
}

func sessionRecord(id string, c *clock) *mcpsession.Record {
	return &mcpsession.Record{ID: id, Owner: "oidc|https://idp|alice", ProtocolVersion: "2025-11-25",
		Initialize: json.RawMessage(`{"capabilities":{"sampling":{}},"clientInfo":{"name":"c","version":"1"}}`),
		Created:    c.Now(), ExpiresAt: c.Now().Add(30 * time.Minute)}
}

func testSessions(t *testing.T, st authserver.Store, c *clock) {
	s := sessions(t, st)
	r := sessionRecord("sess-1", c)
	if err := s.PutSession(ctx, r); err != nil || r.Version != 1 {
		t.Fatalf("PutSession = %v, version %d; want version 1", err, r.Version)
	}
	got, err := s.GetSession(ctx, "sess-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got, cmpopts.EquateApproxTime(time.Millisecond)); diff != "" {
		t.Errorf("GetSession (-put +got):\n%s", diff)
	}
	if _, err := s.GetSession(ctx, "sess-2"); !errors.Is(err, mcpsession.ErrNotFound) {
		t.Errorf("GetSession of an unknown ID: %v; want ErrNotFound", err)
	}
	again := sessionRecord("sess-1", c)
	if err := s.PutSession(ctx, again); !errors.Is(err, mcpsession.ErrConflict) {
		t.Errorf("PutSession of a new record under a taken ID: %v; want ErrConflict", err)
	}
	got.LogLevel, got.Subscriptions = "debug", []string{"file:///a"}
	if err := s.PutSession(ctx, got); err != nil || got.Version != r.Version+1 {
		t.Fatalf("PutSession from the stored version = %v (version %d → %d)", err, r.Version, got.Version)
	}
	r.LogLevel = "error"
	if err := s.PutSession(ctx, r); !errors.Is(err, mcpsession.ErrConflict) {
		t.Errorf("PutSession from a stale version: %v; want ErrConflict", err)
	}
	if now, err := s.GetSession(ctx, "sess-1"); err != nil || now.LogLevel != "debug" || !slices.Equal(now.Subscriptions, []string{"file:///a"}) {
		t.Errorf("after a refused put: %+v, %v; want the earlier change", now, err)
	}
	if err := s.DeleteSession(ctx, "sess-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, "sess-1"); !errors.Is(err, mcpsession.ErrNotFound) {
		t.Errorf("GetSession after DeleteSession: %v; want ErrNotFound", err)
	}
	if err := s.DeleteSession(ctx, "sess-1"); err != nil {
		t.Errorf("DeleteSession of a gone record: %v", err)
	}
	if err := s.TouchSession(ctx, "sess-1", c.Now().Add(time.Hour)); !errors.Is(err, mcpsession.ErrNotFound) {
		t.Errorf("TouchSession of a gone record: %v; want ErrNotFound", err)
	}
}

func testSessionExpiry(t *testing.T, st authserver.Store, c *clock) {
	s := sessions(t, st)
	r := sessionRecord("idle", c)
	r.ExpiresAt = c.Now().Add(time.Minute)
	if err := s.PutSession(ctx, r); err != nil {
		t.Fatal(err)
	}
	c.Add(50 * time.Second)
	if err := s.TouchSession(ctx, "idle", c.Now().Add(time.Minute)); err != nil {
		t.Fatalf("TouchSession of a live record: %v", err)
	}
	c.Add(50 * time.Second) // past the first expiry, before the touched one
	got, err := s.GetSession(ctx, "idle")
	if err != nil {
		t.Fatalf("GetSession after a touch: %v", err)
	}
	if got.Version != r.Version {
		t.Errorf("a touch changed the version %d → %d; it is not a change", r.Version, got.Version)
	}
	c.Add(11 * time.Second)
	if _, err := s.GetSession(ctx, "idle"); !errors.Is(err, mcpsession.ErrNotFound) {
		t.Errorf("GetSession of an expired record: %v; want ErrNotFound", err)
	}
	if err := s.TouchSession(ctx, "idle", c.Now().Add(time.Minute)); !errors.Is(err, mcpsession.ErrNotFound) {
		t.Errorf("TouchSession of an expired record: %v; want ErrNotFound", err)
	}
	if err := s.PutSession(ctx, got); !errors.Is(err, mcpsession.ErrConflict) {
		t.Errorf("PutSession of an expired record's version: %v; want ErrConflict", err)
	}
}

// testConcurrentSessionUpdates: replicas subscribing one session to
// different resources at once lose none of them.
func testConcurrentSessionUpdates(t *testing.T, st authserver.Store, c *clock) {
	s := sessions(t, st)
	if err := s.PutSession(ctx, sessionRecord("busy", c)); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			uri := fmt.Sprintf("file:///%d", i)
			if _, err := mcpsession.Update(ctx, s, "busy", func(r *mcpsession.Record) {
				r.Subscriptions = append(r.Subscriptions, uri)
			}); err != nil {
				t.Errorf("Update: %v", err)
			}
		})
	}
	wg.Wait()
	got, err := s.GetSession(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Subscriptions) != n {
		t.Errorf("subscriptions after %d concurrent updates: %v", n, got.Subscriptions)
	}
}

// testSharedSessions: a session stored through one handle is read through
// the other, and every change (delete included) is announced to the
// watchers of both.
func testSharedSessions(t *testing.T, sa, sb authserver.Store, c *clock) {
	a, b := sessions(t, sa), sessions(t, sb)
	var mu sync.Mutex
	var seenA, seenB []mcpsession.Change
	stopA := a.WatchSessions(func(ch mcpsession.Change) { mu.Lock(); seenA = append(seenA, ch); mu.Unlock() })
	defer stopA()
	stopB := b.WatchSessions(func(ch mcpsession.Change) { mu.Lock(); seenB = append(seenB, ch); mu.Unlock() })
	defer stopB()
	saw := func(seen *[]mcpsession.Change, want mcpsession.Change) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return slices.Contains(*seen, want)
		}
	}
	var r *mcpsession.Record
	// A watcher may start receiving a moment after it is added (a
	// subscription on its way): put until the other handle hears of it.
	waitFor(t, "b's watcher never heard of a session a stored", func() bool {
		r = sessionRecord(fmt.Sprint("shared-", time.Now().UnixNano()), c)
		if err := a.PutSession(ctx, r); err != nil {
			t.Fatal(err)
		}
		return saw(&seenB, mcpsession.Change{Key: mcpsession.Key(r.ID), Version: r.Version})()
	})
	waitFor(t, "a's watcher did not hear of its own change", saw(&seenA, mcpsession.Change{Key: mcpsession.Key(r.ID), Version: r.Version}))
	got, err := b.GetSession(ctx, r.ID)
	if err != nil || got.Owner != r.Owner || got.Version != r.Version {
		t.Fatalf("b: GetSession = %+v, %v", got, err)
	}
	got.LogLevel = "info"
	if err := b.PutSession(ctx, got); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a's watcher did not hear of b's change", saw(&seenA, mcpsession.Change{Key: mcpsession.Key(r.ID), Version: got.Version}))
	if err := b.DeleteSession(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a's watcher did not hear of b's delete", saw(&seenA, mcpsession.Change{Key: mcpsession.Key(r.ID)}))
	if _, err := a.GetSession(ctx, r.ID); !errors.Is(err, mcpsession.ErrNotFound) {
		t.Errorf("a: GetSession after b deleted it: %v", err)
	}
}
