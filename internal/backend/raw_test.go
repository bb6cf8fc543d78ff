package backend_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/backend"
)

// swappable serves the current handler; swapping it loses the sessions.
type swappable struct {
	h   atomic.Pointer[http.Handler]
	srv *mcp.Server // the current one; fresh is called by the test's goroutine only
}

func (s *swappable) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*s.h.Load()).ServeHTTP(w, r) }

// fresh replaces the backend by a new one that knows no session; the old
// one's sessions end, as they would with its process.
func (s *swappable) fresh() {
	if s.srv != nil {
		for ss := range s.srv.Sessions() {
			_ = ss.Close()
		}
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "echo"}, nil)
	s.srv = srv
	srv.AddTool(&mcp.Tool{Name: "echo", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(_ context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(r.Params.Arguments)}}}, nil
		})
	var h http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	s.h.Store(&h)
}

// TestRawCallSessionLost: a backend that restarted (and forgot vmcp's
// session) fails the raw call in flight with a clear error, and the
// backend is reconnected for the next ones.
func TestRawCallSessionLost(t *testing.T) {
	sw := &swappable{}
	sw.fresh()
	srv := httptest.NewServer(sw)
	t.Cleanup(srv.Close)
	set := backend.NewSet([]backend.Spec{{Name: "be", Transport: backend.StreamableHTTP, URL: srv.URL}},
		&backend.Options{MinBackoff: 10 * time.Millisecond, HealthInterval: time.Hour})
	set.Start()
	t.Cleanup(set.Close)
	if err := set.WaitAttempted(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := set.Get("be")
	call := backend.RawCall{Name: "echo", Arguments: json.RawMessage(`{"n":1}`)}
	res, err := b.CallToolRaw(t.Context(), nil, call)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res.Result), `{\"n\":1}`) {
		t.Errorf("result %s", res.Result)
	}
	res.Release()

	sw.fresh()
	_, err = b.CallToolRaw(t.Context(), nil, call)
	var ce *backend.CallError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "no longer knows") {
		t.Fatalf("a call on a forgotten session: %v; want a CallError saying the session is gone", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := b.CallToolRaw(t.Context(), nil, call)
		if err == nil {
			res.Release()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not reconnected: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// oneShot sends each POST's answer, its end included, when the handler
// returns (no flushes): a backend whose streams end together with the
// answer, so that when the connection is reusable does not depend on
// timing.
type oneShot struct {
	h    http.Handler
	gets atomic.Int32
}

type unflushed struct{ http.ResponseWriter }

func (unflushed) Flush() {}

func (o *oneShot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		o.gets.Add(1)
		o.h.ServeHTTP(w, r)
		return
	}
	o.h.ServeHTTP(unflushed{w}, r)
}

// TestRawCallsReuseConnections: a raw call reads its answer's stream to the
// end, so the HTTP connection goes back to the pool (closing an unread
// body closes the connection).
func TestRawCallsReuseConnections(t *testing.T) {
	sw := &swappable{}
	sw.fresh()
	h := &oneShot{h: sw}
	srv := httptest.NewUnstartedServer(h)
	var conns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	set := backend.NewSet([]backend.Spec{{Name: "be", Transport: backend.StreamableHTTP, URL: srv.URL}}, nil)
	set.Start()
	t.Cleanup(set.Close)
	if err := set.WaitAttempted(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The GET stream is opened in the background: count after it.
	waitFor(t, 20*time.Second, "the backend's GET stream opened", func() (bool, string) { return h.gets.Load() > 0, "" })
	b := set.Get("be")
	before := conns.Load()
	for range 200 {
		res, err := b.CallToolRaw(t.Context(), nil, backend.RawCall{Name: "echo", Arguments: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		res.Release()
	}
	if n := conns.Load() - before; n > 1 {
		t.Errorf("200 sequential calls opened %d new connections; want the pooled one reused", n)
	}
}

// TestRawCallStreamEndingLate: a backend that ends a call's stream only
// some time after the answer (a busy machine, a server that finishes its
// work first) gets the answer to the caller at once, and its connection is
// drained in the background and kept, not closed: the backend does not
// see the client leave, and the connection goes idle once the stream ends.
func TestRawCallStreamEndingLate(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	left := make(chan struct{}) // closed if the client closed the connection
	var mu sync.Mutex
	var slowConn net.Conn
	states := map[net.Conn][]http.ConnState{}
	s := &rawServer{answers: map[string]func(http.ResponseWriter, *http.Request, *rpcMessage){
		"tools/call:slow-end": func(w http.ResponseWriter, r *http.Request, m *rpcMessage) {
			mu.Lock()
			slowConn = r.Context().Value(connKey{}).(net.Conn)
			mu.Unlock()
			writeEvents(w, "data: "+result(m, `{"content":[]}`)+"\n\n")
			select { // the end of the stream comes later
			case <-release:
			case <-r.Context().Done():
				close(left)
			}
		},
	}}
	ts := httptest.NewUnstartedServer(s)
	ts.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) }
	ts.Config.ConnState = func(c net.Conn, st http.ConnState) {
		mu.Lock()
		states[c] = append(states[c], st)
		mu.Unlock()
	}
	ts.Start()
	t.Cleanup(ts.Close)
	var once sync.Once
	end := func() { once.Do(func() { close(release) }) }
	t.Cleanup(end)
	b := startSet(t, nil, backend.Spec{Name: "late", Transport: backend.StreamableHTTP, URL: ts.URL})
	mustReady(t, b)
	done := make(chan error, 1)
	go func() {
		res, err := b.CallToolRaw(t.Context(), nil, backend.RawCall{Name: "slow-end", Arguments: json.RawMessage(`{}`)})
		if err == nil {
			res.Release()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the call waited for the end of its stream")
	}
	// The stream's end comes a second after the answer; a client that
	// gave up on it has closed the connection by then.
	select {
	case <-left:
		t.Fatal("vmcp closed the connection of a stream that had not ended yet")
	case <-time.After(time.Second):
	}
	end()
	waitFor(t, 20*time.Second, "the call's connection idle once its stream ended", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		st := states[slowConn]
		return st[len(st)-1] == http.StateIdle, fmt.Sprint(st)
	})
}

type connKey struct{}

// scripted is a hand-written streamable HTTP MCP server whose tools/call
// answers are scripted per tool: what raw calls must cope with from
// servers other than the go-sdk's.
type scripted struct {
	replies atomic.Int32 // answers vmcp posted to the server's own requests
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	w.Header().Set("Mcp-Session-Id", "s1")
	jsonAnswer := func(body string) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}
	events := func(data ...string) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, d := range data {
			_, _ = w.Write([]byte("event: message\ndata: " + d + "\n\n"))
		}
	}
	result := `{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":{"content":[{"type":"text","text":"ok"}]}}`
	switch {
	case m.Method == "initialize":
		jsonAnswer(`{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"scripted","version":"1"}}}`)
	case m.Method == "tools/list":
		jsonAnswer(`{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":{"tools":[{"name":"t","inputSchema":{"type":"object"}}]}}`)
	case m.Method == "ping":
		jsonAnswer(`{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":{}}`)
	case m.Method == "" && len(m.ID) > 0: // vmcp's answer to a request of ours
		s.replies.Add(1)
		w.WriteHeader(http.StatusAccepted)
	case m.Method != "tools/call":
		w.WriteHeader(http.StatusAccepted)
	case m.Params.Name == "json":
		jsonAnswer(result)
	case m.Params.Name == "chatty": // a request and a notification on the call's stream, then the answer, multi-line
		events(`{"jsonrpc":"2.0","id":"srv-1","method":"ping"}`,
			`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}`,
			strings.Replace(result, `,"result"`, ",\ndata: \"result\"", 1))
	case m.Params.Name == "wrong-id":
		jsonAnswer(`{"jsonrpc":"2.0","id":"someone-else","result":{}}`)
	case m.Params.Name == "no-answer":
		events(`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}`)
	case m.Params.Name == "error-page":
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("token=secret-value"))
	case m.Params.Name == "not-json":
		jsonAnswer(`{"jsonrpc":"2.0",`)
	}
}

// TestRawCallAnswers: answers as JSON or as event streams (with the
// server's own requests and notifications before the answer, and data
// split over lines), and the failures: an answer to something else, a
// stream that ends without an answer, an error page (not quoted: it may
// echo credentials), a body that is not JSON.
func TestRawCallAnswers(t *testing.T) {
	srv := &scripted{}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	set := backend.NewSet([]backend.Spec{{Name: "be", Transport: backend.StreamableHTTP, URL: ts.URL}}, &backend.Options{HealthInterval: time.Hour})
	set.Start()
	t.Cleanup(set.Close)
	if err := set.WaitAttempted(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := set.Get("be")
	for _, tc := range []struct{ tool, wantErr string }{
		{"json", ""},
		{"chatty", ""},
		{"wrong-id", "not the response to the call"},
		{"no-answer", "ended without an answer"},
		{"error-page", "HTTP 500"},
		{"not-json", "invalid JSON-RPC message"},
	} {
		res, err := b.CallToolRaw(t.Context(), nil, backend.RawCall{Name: tc.tool, Arguments: json.RawMessage(`{}`)})
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.tool, err)
				continue
			}
			if string(res.Result) != `{"content":[{"type":"text","text":"ok"}]}` {
				t.Errorf("%s: result %s", tc.tool, res.Result)
			}
			res.Release()
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error %v; want one saying %q (and no body)", tc.tool, err, tc.wantErr)
		}
	}
	if n := srv.replies.Load(); n != 1 {
		t.Errorf("vmcp answered %d requests of the server; want its ping answered once", n)
	}
}
