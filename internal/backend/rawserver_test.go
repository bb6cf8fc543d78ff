package backend_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/backend"
)

// rawServer is a hand-written streamable HTTP MCP server whose answers are
// scripted per method (and per tool): what vmcp must cope with from
// servers other than the go-sdk's, which would never send most of them.
type rawServer struct {
	// caps is the capabilities object of the initialize result.
	caps string
	// answers by method, or "tools/call:<tool>" for one tool; a missing
	// method gets -32601, a missing tool a text result "ok".
	answers map[string]func(w http.ResponseWriter, r *http.Request, m *rpcMessage)
	// get serves GET (the event streams); nil: 405.
	get func(w http.ResponseWriter, r *http.Request)

	epoch    atomic.Int32 // sessions of earlier epochs are unknown (404): a restarted backend
	requests atomic.Int32 // POSTs of calls
	mu       sync.Mutex   // guards headers
	headers  []http.Header
}

// rpcMessage is a JSON-RPC message the server received.
type rpcMessage struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params struct {
		Name string                     `json:"name"`
		URI  string                     `json:"uri"`
		Meta map[string]json.RawMessage `json:"_meta"`
	} `json:"params"`
}

func (s *rawServer) session() string { return fmt.Sprintf("epoch-%d", s.epoch.Load()) }

// restart forgets every session, as a backend that restarted.
func (s *rawServer) restart() { s.epoch.Add(1) }

func (s *rawServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.headers = append(s.headers, r.Header.Clone())
	s.mu.Unlock()
	session := s.session() // one epoch per request: a restart meanwhile is seen by the next
	if sid := r.Header.Get("Mcp-Session-Id"); sid != "" && sid != session {
		http.Error(w, "unknown session", http.StatusNotFound)
		return
	}
	switch r.Method {
	case http.MethodGet:
		if s.get == nil {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		s.get(w, r)
		return
	case http.MethodDelete:
		return
	case http.MethodPost:
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	var m rpcMessage
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	w.Header().Set("Mcp-Session-Id", session)
	if m.Method == "" || len(m.ID) == 0 { // a notification, or an answer to a request of ours
		w.WriteHeader(http.StatusAccepted)
		return
	}
	s.requests.Add(1)
	if f := s.answers[m.Method+":"+m.Params.Name]; m.Method == "tools/call" && f != nil {
		f(w, r, &m)
		return
	}
	if f := s.answers[m.Method]; f != nil {
		f(w, r, &m)
		return
	}
	switch m.Method {
	case "initialize":
		caps := s.caps
		if caps == "" {
			caps = `{"tools":{}}`
		}
		writeJSON(w, result(&m, `{"protocolVersion":"2025-11-25","capabilities":`+caps+`,"serverInfo":{"name":"raw","version":"1"}}`))
	case "ping":
		writeJSON(w, result(&m, `{}`))
	case "tools/list":
		writeJSON(w, result(&m, `{"tools":[{"name":"t","inputSchema":{"type":"object"}}]}`))
	case "tools/call":
		writeJSON(w, result(&m, `{"content":[{"type":"text","text":"ok"}]}`))
	default:
		writeJSON(w, `{"jsonrpc":"2.0","id":`+string(m.ID)+`,"error":{"code":-32601,"message":"Method not found"}}`)
	}
}

// result is the answer to m with the result res.
func result(m *rpcMessage, res string) string {
	return `{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":` + res + `}`
}

func writeJSON(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, body)
}

// writeEvents answers with an event stream: its head, then the given
// events (each a whole event, its blank line included), flushed one by one.
func writeEvents(w http.ResponseWriter, events ...string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	for _, e := range events {
		_, _ = io.WriteString(w, e)
		w.(http.Flusher).Flush()
	}
}

// startRaw serves s until the test ends and returns one backend in front
// of it, started, after its first connection attempt.
func startRaw(t *testing.T, s *rawServer, opts *backend.Options, spec backend.Spec) (*backend.Backend, *httptest.Server) {
	t.Helper()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	spec.Name = "raw"
	spec.Transport = backend.StreamableHTTP
	spec.URL = ts.URL + spec.URL // a path or query the test wants
	return startSet(t, opts, spec), ts
}

// startSet starts a set of one backend and waits for its first attempt.
// The befores run when the test ends, before the set is closed.
func startSet(t *testing.T, opts *backend.Options, spec backend.Spec, befores ...func()) *backend.Backend {
	t.Helper()
	if opts == nil {
		opts = &backend.Options{}
	}
	if opts.HealthInterval == 0 {
		opts.HealthInterval = time.Hour
	}
	set := backend.NewSet([]backend.Spec{spec}, opts)
	set.Start()
	t.Cleanup(set.Close)
	for _, f := range befores {
		t.Cleanup(f)
	}
	waitFor(t, 20*time.Second, "the backend's first connection attempt", func() (bool, string) { return set.Attempted(), "" })
	return set.Get(spec.Name)
}

// waitFor polls cond until it holds, failing the test after limit with
// what cond said last.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (%s)", what, limit, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mustReady fails the test unless b is ready.
func mustReady(t *testing.T, b *backend.Backend) {
	t.Helper()
	if st := b.Status(); st.State != backend.StateReady {
		t.Fatalf("backend %s: %s", st.State, st.Error)
	}
}
