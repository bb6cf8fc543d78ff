package session

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/mcpsession"
)

// Table is the in-memory [Store] of one process. It bounds the number of
// sessions: in all (max) and per authenticated user (maxPerUser). An
// initialize reserves a place before the SDK creates its session, and gives
// it back when it ends (Release); the session, if one was made, holds a
// place of its own from when it is created. For the moment between the two
// both count, which errs on the side of refusing.
type Table struct {
	max, maxPerUser int // fixed at creation; 0: no limit

	mu      sync.RWMutex // guards the fields below
	m       map[string]*Session
	keys    map[string]*Session   // by record key; nil unless keyed
	users   map[string]*userSlots // by identity.Key ("" for anonymous callers)
	pending int                   // places reserved by initializes in flight, of all users

	refusedTotal, refusedUser atomic.Int64 // initializes refused by each limit
}

var _ Store = (*Table)(nil)

// NewTable returns an empty table that holds at most max sessions, and at
// most maxPerUser of one authenticated user; 0 means no limit.
func NewTable(max, maxPerUser int) *Table {
	return &Table{max: max, maxPerUser: maxPerUser, m: map[string]*Session{}, users: map[string]*userSlots{}}
}

// userSlots counts one user's sessions and reserved places.
type userSlots struct {
	open    int // sessions in the table
	pending int // places reserved by initializes in flight
}

// Lookup implements [Store].
func (t *Table) Lookup(id, user string) (*Session, error) {
	if id == "" {
		return nil, ErrNotFound
	}
	t.mu.RLock()
	s := t.m[id]
	t.mu.RUnlock()
	switch {
	case s == nil:
		return nil, ErrNotFound
	case s.owner != "" && s.owner != user:
		return nil, ErrNotOwner
	}
	return s, nil
}

// slots returns user's counts, creating them; t.mu is held.
func (t *Table) slots(user string) *userSlots {
	u := t.users[user]
	if u == nil {
		u = &userSlots{}
		t.users[user] = u
	}
	return u
}

// forget drops user's counts once they are all zero; t.mu is held.
func (t *Table) forget(user string, u *userSlots) {
	if *u == (userSlots{}) {
		delete(t.users, user)
	}
}

// Reserve implements [Store].
func (t *Table) Reserve(user string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.max > 0 && len(t.m)+t.pending >= t.max {
		t.refusedTotal.Add(1)
		return ErrTooMany
	}
	u := t.slots(user)
	if user != "" && t.maxPerUser > 0 && u.open+u.pending >= t.maxPerUser {
		t.forget(user, u)
		t.refusedUser.Add(1)
		return ErrTooManyForUser
	}
	u.pending++
	t.pending++
	return nil
}

// Release implements [Store].
func (t *Table) Release(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if u := t.users[user]; u != nil && u.pending > 0 {
		u.pending--
		t.pending--
		t.forget(user, u)
	}
}

// Keyed makes the table index its sessions by record key (ByKey), for a
// store shared by replicas. Call it before the table is used.
func (t *Table) Keyed() *Table {
	t.keys = map[string]*Session{}
	return t
}

// Create implements [Store].
func (t *Table) Create(ss *mcp.ServerSession, user string) {
	t.insert(newSession(ss, user))
}

// Adopt implements [Store].
func (t *Table) Adopt(ss *mcp.ServerSession, tr *mcp.StreamableServerTransport, owner string, version int64) (*Session, bool) {
	s := newSession(ss, owner)
	s.t = tr
	s.Version.Store(version)
	return t.insert(s)
}

// insert adds s unless its ID is taken; it returns the session under the
// ID and whether it is s.
func (t *Table) insert(s *Session) (*Session, bool) {
	if t.keys != nil {
		s.key = mcpsession.Key(s.ss.ID())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.m[s.ss.ID()]; ok {
		return old, false
	}
	t.m[s.ss.ID()] = s
	if s.key != "" {
		t.keys[s.key] = s
	}
	t.slots(s.owner).open++
	return s, true
}

// ByKey implements [Store].
func (t *Table) ByKey(k string) *Session {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.keys[k]
}

// Close implements [Store].
func (t *Table) Close(id string) {
	t.mu.Lock()
	t.drop(id)
	t.mu.Unlock()
}

// drop removes a session; t.mu is held.
func (t *Table) drop(id string) {
	s, ok := t.m[id]
	if !ok {
		return
	}
	delete(t.m, id)
	if s.key != "" {
		delete(t.keys, s.key)
	}
	if u := t.users[s.owner]; u != nil {
		u.open--
		t.forget(s.owner, u)
	}
}

// List implements [Store].
func (t *Table) List() []*Session {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*Session, 0, len(t.m))
	for _, s := range t.m {
		out = append(out, s)
	}
	return out
}

// Stats implements [Store].
func (t *Table) Stats() Stats {
	t.mu.RLock()
	open := len(t.m)
	t.mu.RUnlock()
	return Stats{Open: open, RefusedTotal: t.refusedTotal.Load(), RefusedPrincipal: t.refusedUser.Load()}
}

// Sweep implements [Store]. A session created after live was asked is
// kept even if live does not report it.
func (t *Table) Sweep(cutoff time.Time, live func() map[*mcp.ServerSession]bool) {
	asked := time.Now().UnixNano()
	alive := live()
	var idle []*Session
	t.mu.Lock()
	for id, s := range t.m {
		switch {
		case !alive[s.ss] && s.created < asked:
			t.drop(id)
		case s.idleSince(cutoff.UnixNano()):
			t.drop(id)
			idle = append(idle, s)
		}
	}
	t.mu.Unlock()
	for _, s := range idle {
		_ = s.ss.Close()
	}
}
