package backend_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/backend"
)

// swappable serves the current handler; swapping it loses the sessions.
type swappable struct{ h atomic.Pointer[http.Handler] }

func (s *swappable) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*s.h.Load()).ServeHTTP(w, r) }

func (s *swappable) fresh() {
	srv := mcp.NewServer(&mcp.Implementation{Name: "echo"}, nil)
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

// TestRawCallsReuseConnections: a raw call reads its answer's stream to the
// end, so the HTTP connection goes back to the pool (closing an unread
// body closes the connection).
func TestRawCallsReuseConnections(t *testing.T) {
	sw := &swappable{}
	sw.fresh()
	srv := httptest.NewUnstartedServer(sw)
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
