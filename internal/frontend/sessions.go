package frontend

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
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

type sessionTable struct {
	mu sync.RWMutex // guards m
	m  map[string]*liveSession
}

func (t *sessionTable) get(id string) *liveSession {
	if id == "" {
		return nil
	}
	t.mu.RLock()
	s := t.m[id]
	t.mu.RUnlock()
	return s
}

func (t *sessionTable) add(ss *mcp.ServerSession, user string) {
	s := &liveSession{ss: ss, user: user, created: time.Now().UnixNano()}
	s.lastUsed.Store(s.created)
	t.mu.Lock()
	if t.m == nil {
		t.m = map[string]*liveSession{}
	}
	t.m[ss.ID()] = s
	t.mu.Unlock()
}

func (t *sessionTable) remove(id string) {
	t.mu.Lock()
	delete(t.m, id)
	t.mu.Unlock()
}

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
			delete(t.m, id)
		case s.active.Load() == 0 && s.lastUsed.Load() < cutoff.UnixNano():
			delete(t.m, id)
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
