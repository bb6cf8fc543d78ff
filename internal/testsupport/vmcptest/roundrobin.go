package vmcptest

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// RoundRobin is a load balancer in front of vmcp replicas, as a
// Kubernetes Service or an ingress would be: each request goes to the next
// live replica, except MCP requests of a 2025-11-25 session, which stay
// with the replica that created the session unless Spread is set. It
// records which replica served which path, and which served each session.
type RoundRobin struct {
	// Spread sends a session's requests round robin too, as a balancer
	// without sticky sessions does. Set it before serving.
	Spread bool

	mu       sync.Mutex // guards all fields below
	targets  []*httputil.ReverseProxy
	down     map[int]bool
	next     int
	sessions map[string]int   // Mcp-Session-Id -> replica
	served   map[string][]int // path -> replicas, in order
	bySess   map[string][]int // Mcp-Session-Id -> replicas, in order
}

// NewRoundRobin returns a balancer over the replicas at bases
// (http://host:port), numbered from 0 in that order.
func NewRoundRobin(bases ...string) *RoundRobin {
	rr := &RoundRobin{down: map[int]bool{}, sessions: map[string]int{}, served: map[string][]int{}, bySess: map[string][]int{}}
	for _, b := range bases {
		rr.Add(b)
	}
	return rr
}

// Add puts the replica at base in rotation and returns its number.
func (rr *RoundRobin) Add(base string) int {
	u, err := url.Parse(base)
	if err != nil {
		panic(err) // a test's own address
	}
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.targets = append(rr.targets, httputil.NewSingleHostReverseProxy(u))
	return len(rr.targets) - 1
}

// Remove takes replica i out of rotation (its endpoint is gone).
func (rr *RoundRobin) Remove(i int) {
	rr.mu.Lock()
	rr.down[i] = true
	rr.mu.Unlock()
}

// pick chooses the replica of a request of session sid (may be ""), and
// records it as serving path; -1 if none is live.
func (rr *RoundRobin) pick(sid, path string) int {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	i, ok := rr.sessions[sid]
	if !ok || sid == "" || rr.down[i] || rr.Spread {
		i = -1
		for range rr.targets {
			n := rr.next % len(rr.targets)
			rr.next++
			if !rr.down[n] {
				i = n
				break
			}
		}
	}
	if i >= 0 {
		rr.served[path] = append(rr.served[path], i)
		if sid != "" {
			rr.bySess[sid] = append(rr.bySess[sid], i)
		}
	}
	return i
}

// ServedSession returns the replicas that served the requests carrying
// session sid, in order.
func (rr *RoundRobin) ServedSession(sid string) []int {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return append([]int(nil), rr.bySess[sid]...)
}

// ServeHTTP sends the request to a replica.
func (rr *RoundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := rr.pick(r.Header.Get("Mcp-Session-Id"), r.URL.Path)
	if i < 0 {
		http.Error(w, "no replica", http.StatusServiceUnavailable)
		return
	}
	rr.mu.Lock()
	proxy := rr.targets[i]
	rr.mu.Unlock()
	proxy.ServeHTTP(&sessionRecorder{ResponseWriter: w, rr: rr, replica: i}, r)
}

// ServedBy returns the replicas that served path, in order.
func (rr *RoundRobin) ServedBy(path string) []int {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return append([]int(nil), rr.served[path]...)
}

// Serve serves the balancer on addr (host:port) until the test ends.
func (rr *RoundRobin) Serve(t testing.TB, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rr}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
}

// sessionRecorder notes the session a replica creates.
type sessionRecorder struct {
	http.ResponseWriter
	rr      *RoundRobin
	replica int
}

func (s *sessionRecorder) WriteHeader(code int) {
	if sid := s.Header().Get("Mcp-Session-Id"); sid != "" {
		s.rr.mu.Lock()
		s.rr.sessions[sid] = s.replica
		s.rr.mu.Unlock()
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *sessionRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
