package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/mcpsession"
)

// named is an in-memory transport whose connection has a session id.
type named struct {
	mcp.Transport
	id string
}

func (n named) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := n.Transport.Connect(ctx)
	return namedConn{c, n.id}, err
}

type namedConn struct {
	mcp.Connection
	id string
}

func (c namedConn) SessionID() string { return c.id }

// serverSessions connects n real server sessions, with ids s0, s1…,
// closed when the test ends.
func serverSessions(t *testing.T, n int) []*mcp.ServerSession {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "test"}, nil)
	var out []*mcp.ServerSession
	for i := range n {
		st, _ := mcp.NewInMemoryTransports()
		ss, err := srv.Connect(context.Background(), named{st, fmt.Sprintf("s%d", i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ss.Close() })
		out = append(out, ss)
	}
	return out
}

func TestLookupChecksTheOwner(t *testing.T) {
	ss := serverSessions(t, 2)
	tab := NewTable(0, 0)
	tab.Create(ss[0], "alice")
	tab.Create(ss[1], "")
	tab.Create(ss[0], "bob") // a second add keeps the first

	for _, c := range []struct {
		id, user string
		want     error
	}{
		{"s0", "alice", nil},
		{"s0", "bob", ErrNotOwner},
		{"s0", "", ErrNotOwner},
		{"s1", "bob", nil}, // an anonymous session is anyone's who has its id
		{"s1", "", nil},
		{"nope", "alice", ErrNotFound},
		{"", "alice", ErrNotFound},
	} {
		s, err := tab.Lookup(c.id, c.user)
		if !errors.Is(err, c.want) || (err == nil) != (s != nil) {
			t.Errorf("Lookup(%q, %q) = %v, %v; want error %v", c.id, c.user, s, err, c.want)
			continue
		}
		if s != nil && s.ID() != c.id {
			t.Errorf("Lookup(%q, %q) found %q", c.id, c.user, s.ID())
		}
	}
	if got := len(tab.List()); got != 2 {
		t.Errorf("List has %d sessions, want 2", got)
	}
	tab.Close("s0")
	if _, err := tab.Lookup("s0", "alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup after Close: %v, want ErrNotFound", err)
	}
	if st := tab.Stats(); st.Open != 1 {
		t.Errorf("Stats after Close = %+v, want 1 open", st)
	}
}

func TestLimits(t *testing.T) {
	ss := serverSessions(t, 4)
	tab := NewTable(3, 2)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// alice: one session and one initialize in flight fill her two places.
	must(tab.Reserve("alice"))
	tab.Create(ss[0], "alice")
	tab.Release("alice")
	must(tab.Reserve("alice"))
	if err := tab.Reserve("alice"); !errors.Is(err, ErrTooManyForUser) {
		t.Fatalf("alice's third place: %v, want ErrTooManyForUser", err)
	}
	// Anonymous callers have no per-user limit, only the total one.
	must(tab.Reserve(""))
	if err := tab.Reserve("bob"); !errors.Is(err, ErrTooMany) {
		t.Fatalf("a fourth place: %v, want ErrTooMany", err)
	}
	if st := tab.Stats(); st != (Stats{Open: 1, RefusedTotal: 1, RefusedPrincipal: 1}) {
		t.Errorf("Stats = %+v", st)
	}
	// Giving places back (and ending a session) frees them.
	tab.Release("alice")
	tab.Release("")
	tab.Close("s0")
	for range 2 {
		must(tab.Reserve("alice"))
	}
	must(tab.Reserve("bob"))
	// A Release with nothing reserved gives nothing back.
	tab.Release("carol")
	if err := tab.Reserve("carol"); !errors.Is(err, ErrTooMany) {
		t.Errorf("after a stray Release: %v, want ErrTooMany", err)
	}
	if len(tab.users) != 2 {
		t.Errorf("the table counts %d users, want 2 (alice, bob)", len(tab.users))
	}
}

// TestLimitsUnderConcurrency: reservations racing never overshoot.
func TestLimitsUnderConcurrency(t *testing.T) {
	tab := NewTable(10, 0)
	var mu sync.Mutex
	got := 0
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if tab.Reserve("") == nil {
				mu.Lock()
				got++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if got != 10 {
		t.Errorf("%d reservations taken, want 10", got)
	}
}

func TestSweep(t *testing.T) {
	ss := serverSessions(t, 4)
	tab := NewTable(0, 0)
	for _, s := range ss {
		tab.Create(s, "")
	}
	busy, _ := tab.Lookup("s1", "")
	busy.Begin()
	fresh, _ := tab.Lookup("s2", "")
	gone, _ := tab.Lookup("s3", "")
	gone.created -= int64(time.Second) // well before Sweep asks the SDK
	cutoff := time.Now().Add(time.Hour)
	fresh.lastUsed.Store(cutoff.Add(time.Minute).UnixNano())                   // used after the cutoff
	live := map[*mcp.ServerSession]bool{ss[0]: true, ss[1]: true, ss[2]: true} // s3 is gone from the SDK

	tab.Sweep(cutoff, func() map[*mcp.ServerSession]bool { return live })

	var kept []string
	for _, id := range []string{"s0", "s1", "s2", "s3"} {
		if _, err := tab.Lookup(id, ""); err == nil {
			kept = append(kept, id)
		}
	}
	if fmt.Sprint(kept) != "[s1 s2]" {
		t.Errorf("after Sweep the table has %v, want [s1 s2] (s0 idle, s3 gone)", kept)
	}
	// The idle session was closed; the busy one was not.
	done := make(chan error, 1)
	go func() { done <- ss[0].Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Error("the idle session was not closed")
	}
	busy.End()
}

func TestCalls(t *testing.T) {
	ss := serverSessions(t, 1)
	tab := NewTable(0, 0)
	tab.Create(ss[0], "")
	s, _ := tab.Lookup("s0", "")
	ctx, cancel := context.WithCancel(context.Background())
	forget := s.Track("7", cancel)
	if !s.HasCalls() || s.Cancel("8") {
		t.Fatal("a tracked call is not seen, or an unknown one was cancelled")
	}
	if !s.Cancel("7") || ctx.Err() == nil {
		t.Fatal("Cancel did not cancel the tracked call")
	}
	forget()
	if s.HasCalls() || s.Cancel("7") {
		t.Error("a forgotten call is still tracked")
	}
}

func TestSweepEvery(t *testing.T) {
	for _, c := range []struct{ in, want time.Duration }{
		{time.Millisecond, 10 * time.Millisecond},
		{time.Second, 100 * time.Millisecond},
		{time.Hour, 30 * time.Second},
	} {
		if got := SweepEvery(c.in); got != c.want {
			t.Errorf("SweepEvery(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestAdoptAndByKey: a keyed table finds sessions by record key, a copy
// adopted twice is kept once (the first), counts towards the owner's
// sessions, and closing forgets the key.
func TestAdoptAndByKey(t *testing.T) {
	ss := serverSessions(t, 2)
	tab := NewTable(0, 1).Keyed()
	tab.Create(ss[0], "alice")
	first, added := tab.Adopt(ss[1], nil, "bob", 7)
	if !added || first.Version.Load() != 7 || first.Owner() != "bob" {
		t.Fatalf("Adopt = %+v, %v", first, added)
	}
	if again, added := tab.Adopt(ss[1], nil, "bob", 9); added || again != first {
		t.Errorf("a second Adopt of one ID: %v, %v; want the first copy and false", again, added)
	}
	if got := tab.ByKey(mcpsession.Key("s1")); got != first {
		t.Errorf("ByKey(s1) = %v, want the adopted copy", got)
	}
	if got := tab.ByKey(mcpsession.Key("s0")); got == nil || got.Owner() != "alice" {
		t.Errorf("ByKey(s0) = %v, want alice's session", got)
	}
	if err := tab.Reserve("bob"); !errors.Is(err, ErrTooManyForUser) {
		t.Errorf("Reserve for bob, who holds an adopted copy and may hold one session: %v", err)
	}
	tab.Close("s1")
	if got := tab.ByKey(mcpsession.Key("s1")); got != nil {
		t.Errorf("ByKey after Close = %v", got)
	}
	if got := NewTable(0, 0).ByKey(mcpsession.Key("s0")); got != nil {
		t.Errorf("an unkeyed table's ByKey = %v", got)
	}
}
