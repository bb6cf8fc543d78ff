package frontend

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/mcpsession"
)

// The gateway keeps its own table of 2025-11-25 sessions, beside the SDK's:
// calls served without the SDK (fastcall.go) must find the session, check
// its user, and keep it alive. The table therefore also owns the idle
// timeout (the SDK's timer would not see those calls): a session with no
// request in flight and none for SessionIdleTimeout is closed.

// liveSession is one initialized session.
type liveSession struct {
	ss      *mcp.ServerSession
	user    string // identity.Key of its creator; "" for anonymous
	created int64  // unix nanoseconds

	// With a shared store (shared.go): t is the transport of a copy
	// restored from the store (nil for a session the SDK's handler
	// created); key is the record's key; version the record version this
	// copy reflects; stale says a change elsewhere is not applied yet;
	// touched is the lastUsed the record's expiry was last moved for.
	t       *mcp.StreamableServerTransport
	key     string
	version atomic.Int64
	stale   atomic.Bool
	touched atomic.Int64

	lastUsed atomic.Int64 // unix nanoseconds when the last POST ended (or the session began)
	active   atomic.Int32 // POSTs in flight

	mu    sync.Mutex                    // guards calls
	calls map[string]context.CancelFunc // raw calls in flight, by JSON-RPC id
}

// begin and end bracket a POST; a session with one in flight is not idle,
// so only its end needs the time.
func (s *liveSession) begin() { s.active.Add(1) }

func (s *liveSession) end() {
	s.lastUsed.Store(time.Now().UnixNano())
	s.active.Add(-1)
}

// track records a raw call in flight; the returned func forgets it.
func (s *liveSession) track(id string, cancel context.CancelFunc) func() {
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

// cancelCall cancels the raw call with the given id, reporting whether
// there was one.
func (s *liveSession) cancelCall(id string) bool {
	s.mu.Lock()
	cancel, ok := s.calls[id]
	s.mu.Unlock()
	if ok {
		cancel()
	}
	return ok
}

func (s *liveSession) hasCalls() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls) > 0
}

// sessionTable holds the initialized sessions and bounds their number:
// in all (max) and per authenticated user (maxPerUser). An initialize
// reserves a place at the edge before the SDK creates its session, and
// gives it back when it ends (settle); the session, if one was made, holds
// a place of its own from when it is added. For the moment between the two
// both count, which errs on the side of refusing.
type sessionTable struct {
	max, maxPerUser int  // fixed at creation; 0: no limit
	shared          bool // sessions are also in a shared store: index them by record key

	mu      sync.RWMutex // guards the fields below
	m       map[string]*liveSession
	keys    map[string]*liveSession // by mcpsession.Key, with a shared store (shared.go)
	users   map[string]*userSlots   // by identity.Key ("" for anonymous callers)
	pending int                     // places reserved by initializes in flight, of all users

	refusedTotal, refusedUser atomic.Int64 // initializes refused by each limit
}

// userSlots counts one user's sessions and reserved places.
type userSlots struct {
	open    int // sessions in the table
	pending int // places reserved by initializes in flight
}

// Errors of a refused initialize.
var (
	errTooManySessions     = errors.New("the gateway has as many sessions open as it allows (server.maxSessions); try again later")
	errTooManyUserSessions = errors.New("this user has as many sessions open as vmcp allows one user (server.maxSessionsPerPrincipal): end one (DELETE) or try again later")
)

func (t *sessionTable) get(id string) *liveSession {
	if id == "" {
		return nil
	}
	t.mu.RLock()
	s := t.m[id]
	t.mu.RUnlock()
	return s
}

// slots returns user's counts, creating them; t.mu is held.
func (t *sessionTable) slots(user string) *userSlots {
	u := t.users[user]
	if u == nil {
		if t.users == nil {
			t.users = map[string]*userSlots{}
		}
		u = &userSlots{}
		t.users[user] = u
	}
	return u
}

// forget drops user's counts once they are all zero; t.mu is held.
func (t *sessionTable) forget(user string, u *userSlots) {
	if *u == (userSlots{}) {
		delete(t.users, user)
	}
}

// reserve takes a place for an initialize of user, or says which limit
// refuses it.
func (t *sessionTable) reserve(user string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.max > 0 && len(t.m)+t.pending >= t.max {
		t.refusedTotal.Add(1)
		return errTooManySessions
	}
	u := t.slots(user)
	if user != "" && t.maxPerUser > 0 && u.open+u.pending >= t.maxPerUser {
		t.forget(user, u)
		t.refusedUser.Add(1)
		return errTooManyUserSessions
	}
	u.pending++
	t.pending++
	return nil
}

// settle gives back the place an initialize of user reserved.
func (t *sessionTable) settle(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if u := t.users[user]; u != nil && u.pending > 0 {
		u.pending--
		t.pending--
		t.forget(user, u)
	}
}

func (t *sessionTable) add(ss *mcp.ServerSession, user string) {
	t.insert(&liveSession{ss: ss, user: user})
}

// addCopy adds a copy of a session restored from the store (shared.go); if
// the table holds the session already, it returns that one and false.
func (t *sessionTable) addCopy(ss *mcp.ServerSession, tr *mcp.StreamableServerTransport, user string, version int64) (*liveSession, bool) {
	s := &liveSession{ss: ss, user: user, t: tr}
	s.version.Store(version)
	return t.insert(s)
}

// insert adds s unless its ID is taken; it returns the session under the
// ID and whether it is s.
func (t *sessionTable) insert(s *liveSession) (*liveSession, bool) {
	s.created = time.Now().UnixNano()
	s.lastUsed.Store(s.created)
	s.touched.Store(s.created) // the record was just written or read: it expires a timeout from now at the earliest
	if t.shared {
		s.key = mcpsession.Key(s.ss.ID())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*liveSession{}
		t.keys = map[string]*liveSession{}
	}
	if old, ok := t.m[s.ss.ID()]; ok {
		return old, false
	}
	t.m[s.ss.ID()] = s
	if s.key != "" {
		t.keys[s.key] = s
	}
	t.slots(s.user).open++
	return s, true
}

// byKey returns the session whose record key is k.
func (t *sessionTable) byKey(k string) *liveSession {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.keys[k]
}

// each calls f with every session; f must not use the table.
func (t *sessionTable) each(f func(*liveSession)) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, s := range t.m {
		f(s)
	}
}

func (t *sessionTable) remove(id string) {
	t.mu.Lock()
	t.drop(id)
	t.mu.Unlock()
}

// drop removes a session; t.mu is held.
func (t *sessionTable) drop(id string) {
	s, ok := t.m[id]
	if !ok {
		return
	}
	delete(t.m, id)
	if s.key != "" {
		delete(t.keys, s.key)
	}
	if u := t.users[s.user]; u != nil {
		u.open--
		t.forget(s.user, u)
	}
}

// SessionStats are the numbers the session limits act on.
type SessionStats struct {
	// Open is the number of 2025-11-25 sessions open.
	Open int
	// RefusedTotal and RefusedPrincipal count the initializes refused by
	// server.maxSessions and by server.maxSessionsPerPrincipal.
	RefusedTotal, RefusedPrincipal int64
}

// SessionStats returns the session counts, for metrics.
func (g *Gateway) SessionStats() SessionStats {
	t := &g.sessions
	t.mu.RLock()
	open := len(t.m)
	t.mu.RUnlock()
	return SessionStats{Open: open, RefusedTotal: t.refusedTotal.Load(), RefusedPrincipal: t.refusedUser.Load()}
}

// refuseSession answers an initialize refused by a session limit.
func (g *Gateway) refuseSession(w http.ResponseWriter, req *request, err error) {
	status := http.StatusServiceUnavailable
	if errors.Is(err, errTooManyUserSessions) {
		status = http.StatusTooManyRequests
	}
	if now := time.Now().Unix(); g.sessionWarned.Load() <= now-60 {
		g.sessionWarned.Store(now)
		g.logger.Warn("session limit reached: initialize refused (logged once a minute; counted in vmcp_sessions_refused_total)", "error", err)
	}
	w.Header().Set("Retry-After", "60")
	writeError(w, status, codeServerError, req.id, "vmcp: "+err.Error())
}

// codeServerError is JSON-RPC's generic implementation-defined server
// error, for refusals that are no fault of the request.
const codeServerError = -32000

// sweep closes the sessions idle since before cutoff and forgets those the
// SDK no longer has (closed by the server's shutdown, say).
func (t *sessionTable) sweep(cutoff time.Time, live func() map[*mcp.ServerSession]bool) {
	asked := time.Now().UnixNano()
	alive := live()
	var idle []*liveSession
	t.mu.Lock()
	for id, s := range t.m {
		switch {
		case !alive[s.ss] && s.created < asked:
			t.drop(id)
		case s.active.Load() == 0 && s.lastUsed.Load() < cutoff.UnixNano():
			t.drop(id)
			idle = append(idle, s)
		}
	}
	t.mu.Unlock()
	for _, s := range idle {
		_ = s.ss.Close()
	}
}

// sweepEvery is how often idle sessions are looked for: a tenth of the
// timeout, between 10ms and 30s.
func sweepEvery(timeout time.Duration) time.Duration {
	return min(max(timeout/10, 10*time.Millisecond), 30*time.Second)
}

// expireSessions closes idle sessions until ctx is done.
func (g *Gateway) expireSessions(ctx context.Context) {
	tick := time.NewTicker(sweepEvery(g.opts.SessionIdleTimeout))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			g.touch(ctx)
			g.sessions.sweep(now.Add(-g.opts.SessionIdleTimeout), func() map[*mcp.ServerSession]bool {
				m := map[*mcp.ServerSession]bool{}
				for ss := range g.server.Sessions() {
					m[ss] = true
				}
				return m
			})
		}
	}
}

// statusRecorder notes the status of a response.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
