// Package session is the gateway's table of initialized 2025-11-25
// sessions, kept beside the go-sdk's own: calls served without the SDK (the
// frontend's fast path) must find the session, check its owner, and keep it
// alive. The table therefore also owns the idle timeout (the SDK's timer
// would not see those calls): a session with no request in flight and none
// for the idle timeout is closed ([Expire]).
//
// The frontend uses a table through [Store], so that a table shared by
// replicas can take the place of the in-memory [Table].
package session

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Store is what the gateway needs of a session table.
type Store interface {
	// Reserve takes a place for an initialize of user ("" for an
	// anonymous caller), or returns [ErrTooMany] or [ErrTooManyForUser].
	// Every nil return is matched by one Release.
	Reserve(user string) error
	// Release gives back the place an initialize of user reserved.
	Release(user string)
	// Create adds an initialized session owned by user; the session holds
	// a place of its own from now on. Adding a session twice keeps the
	// first.
	Create(ss *mcp.ServerSession, user string)
	// Lookup returns the session with the given id if user may use it:
	// [ErrNotFound] if there is none, [ErrNotOwner] if it belongs to
	// another user.
	Lookup(id, user string) (*Session, error)
	// Close forgets the session with the given id (ended by a DELETE, say);
	// the SDK's session is not closed.
	Close(id string)
	// List returns the sessions in the table, in no order.
	List() []*Session
	// Sweep closes the sessions idle since before cutoff and forgets
	// those live no longer reports (closed by the server's shutdown, say).
	Sweep(cutoff time.Time, live func() map[*mcp.ServerSession]bool)
	// Stats returns the counts the session limits act on.
	Stats() Stats

	// With a store shared by replicas (the frontend's shared.go):

	// Adopt adds a copy of another replica's session, restored from the
	// shared store on its own transport t, at record version; if the
	// table holds the session already, it returns that one and false.
	Adopt(ss *mcp.ServerSession, t *mcp.StreamableServerTransport, owner string, version int64) (*Session, bool)
	// ByKey returns the session whose record key (mcpsession.Key of its
	// ID) is k, nil if none.
	ByKey(k string) *Session
}

// Errors of Reserve and Lookup.
var (
	ErrTooMany        = errors.New("the gateway has as many sessions open as it allows (server.maxSessions); try again later")
	ErrTooManyForUser = errors.New("this user has as many sessions open as vmcp allows one user (server.maxSessionsPerPrincipal): end one (DELETE) or try again later")
	ErrNotFound       = errors.New("session not found: it ended or never existed; send initialize to start a new one")
	ErrNotOwner       = errors.New("the session belongs to another user")
)

// Stats are the numbers the session limits act on.
type Stats struct {
	// Open is the number of 2025-11-25 sessions open.
	Open int
	// RefusedTotal and RefusedPrincipal count the initializes refused by
	// server.maxSessions and by server.maxSessionsPerPrincipal.
	RefusedTotal, RefusedPrincipal int64
}

// Session is one initialized session.
type Session struct {
	ss      *mcp.ServerSession
	owner   string // identity.Key of its creator; "" for anonymous
	created int64  // unix nanoseconds

	lastUsed atomic.Int64 // unix nanoseconds when the last POST ended (or the session began)
	active   atomic.Int32 // POSTs in flight

	// With a shared store: t is the transport of a copy restored from the
	// store (nil for a session the SDK's handler created); key is its
	// record's key. Version is the record version the copy reflects;
	// Stale says a change made elsewhere is not applied yet; Touched is
	// the LastUsed the record's expiry was last moved for.
	t       *mcp.StreamableServerTransport
	key     string
	Version atomic.Int64
	Stale   atomic.Bool
	Touched atomic.Int64

	mu    sync.Mutex                    // guards calls
	calls map[string]context.CancelFunc // raw calls in flight, by JSON-RPC id
}

func newSession(ss *mcp.ServerSession, owner string) *Session {
	s := &Session{ss: ss, owner: owner, created: time.Now().UnixNano()}
	s.lastUsed.Store(s.created)
	s.Touched.Store(s.created) // its record was just written or read
	return s
}

// Transport returns the transport of a copy restored from a shared store;
// nil for a session the SDK's handler created.
func (s *Session) Transport() *mcp.StreamableServerTransport { return s.t }

// LastUsed returns when the last POST ended (or the session began), in
// Unix nanoseconds.
func (s *Session) LastUsed() int64 { return s.lastUsed.Load() }

// Server returns the SDK's session.
func (s *Session) Server() *mcp.ServerSession { return s.ss }

// ID returns the session's id (its Mcp-Session-Id).
func (s *Session) ID() string { return s.ss.ID() }

// Owner returns the identity key of the session's creator; "" for an
// anonymous one, whose session anyone holding its id may use.
func (s *Session) Owner() string { return s.owner }

// Begin and End bracket a POST; a session with one in flight is not idle,
// so only its end needs the time.
func (s *Session) Begin() { s.active.Add(1) }

// End: see Begin.
func (s *Session) End() {
	s.lastUsed.Store(time.Now().UnixNano())
	s.active.Add(-1)
}

// idleSince reports whether the session has no POST in flight and none
// ended at or after cutoff.
func (s *Session) idleSince(cutoff int64) bool {
	return s.active.Load() == 0 && s.lastUsed.Load() < cutoff
}

// Track records a raw call in flight under its JSON-RPC id; the returned
// func forgets it.
func (s *Session) Track(id string, cancel context.CancelFunc) func() {
	s.mu.Lock()
	if s.calls == nil {
		s.calls = map[string]context.CancelFunc{}
	}
	s.calls[id] = cancel
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.calls, id)
		s.mu.Unlock()
	}
}

// Cancel cancels the raw call with the given id, reporting whether there
// was one.
func (s *Session) Cancel(id string) bool {
	s.mu.Lock()
	cancel, ok := s.calls[id]
	s.mu.Unlock()
	if ok {
		cancel()
	}
	return ok
}

// HasCalls reports whether a raw call is in flight.
func (s *Session) HasCalls() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls) > 0
}

// SweepEvery is how often idle sessions are looked for: a tenth of the
// timeout, between 10ms and 30s.
func SweepEvery(timeout time.Duration) time.Duration {
	return min(max(timeout/10, 10*time.Millisecond), 30*time.Second)
}

// Expire closes the sessions of s idle for timeout until ctx is done; live
// returns the sessions the SDK still has. before, if not nil, runs at each
// tick before the sweep (a shared store's touch of the sessions used).
func Expire(ctx context.Context, s Store, timeout time.Duration, live func() map[*mcp.ServerSession]bool, before func(context.Context)) {
	tick := time.NewTicker(SweepEvery(timeout))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if before != nil {
				before(ctx)
			}
			s.Sweep(now.Add(-timeout), live)
		}
	}
}
