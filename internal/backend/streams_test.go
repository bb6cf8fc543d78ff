package backend_test

import (
	"encoding/json"
	"fmt"
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

// pollServer answers the tool "poll" as a SEP-1699 server that closes the
// call's stream to make the client poll: a priming event (an ID and a
// retry time) and the end of the stream; a GET with Last-Event-ID e1 gets
// another ID and the end again; one with e2 gets the answer.
func pollServer() (*rawServer, *sync.Map) {
	var calls sync.Map // Last-Event-ID → times asked
	var pending atomic.Value
	s := &rawServer{}
	s.answers = map[string]func(http.ResponseWriter, *http.Request, *rpcMessage){
		"tools/call:poll": func(w http.ResponseWriter, _ *http.Request, m *rpcMessage) {
			pending.Store(string(m.ID))
			writeEvents(w, "id: e1\nretry: 20\ndata: \n\n")
		},
	}
	s.get = func(w http.ResponseWriter, r *http.Request) {
		last := r.Header.Get("Last-Event-ID")
		n, _ := calls.LoadOrStore(last, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		switch last {
		case "e1":
			writeEvents(w, "id: e2\n\n")
		case "e2":
			id, _ := pending.Load().(string)
			writeEvents(w, "id: e3\ndata: "+`{"jsonrpc":"2.0","id":`+id+`,"result":{"content":[{"type":"text","text":"polled"}]}}`+"\n\n")
		default: // the standalone stream: open and idle
			writeEvents(w)
			<-r.Context().Done()
		}
	}
	return s, &calls
}

// TestStreamsResumedAfterPolling: a call whose stream the backend closes
// before the answer (SEP-1699 polling) is resumed with GET and
// Last-Event-ID, after the backend's retry time, until the answer; on the
// fast path (raw calls) and on the SDK's.
func TestStreamsResumedAfterPolling(t *testing.T) {
	t.Parallel()
	s, asked := pollServer()
	b, _ := startRaw(t, s, nil, backend.Spec{CallTimeout: 20 * time.Second})
	mustReady(t, b)
	t.Run("raw", func(t *testing.T) {
		res, err := b.CallToolRaw(t.Context(), nil, backend.RawCall{Name: "poll", Arguments: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		defer res.Release()
		if !strings.Contains(string(res.Result), "polled") {
			t.Errorf("result %s", res.Result)
		}
	})
	t.Run("SDK", func(t *testing.T) {
		res, err := b.CallTool(t.Context(), nil, &mcp.CallToolParams{Name: "poll", Arguments: map[string]any{}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != "polled" {
			t.Errorf("result %+v", res)
		}
	})
	for _, id := range []string{"e1", "e2"} {
		if n, ok := asked.Load(id); !ok || n.(*atomic.Int32).Load() != 2 {
			t.Errorf("GETs with Last-Event-ID %s: %v; want one per call", id, n)
		}
	}
	mustReady(t, b)
}

// growingServer lists the tool "t", and "new" too once extra is set.
func growingServer(extra *atomic.Bool) *rawServer {
	s := &rawServer{caps: `{"tools":{"listChanged":true}}`}
	s.answers = map[string]func(http.ResponseWriter, *http.Request, *rpcMessage){
		"tools/list": func(w http.ResponseWriter, _ *http.Request, m *rpcMessage) {
			tools := `{"name":"t","inputSchema":{"type":"object"}}`
			if extra.Load() {
				tools += `,{"name":"new","inputSchema":{"type":"object"}}`
			}
			writeJSON(w, result(m, `{"tools":[`+tools+`]}`))
		},
	}
	return s
}

// TestStandaloneStreamResumed: a backend (or a proxy's read timeout, a
// load balancer's idle timeout) that keeps closing the standalone GET
// stream does not lose the backend: the stream is reopened with
// Last-Event-ID after the backend's retry time, what comes on it arrives
// (a list change), the backend stays ready on its first connection, and
// clients are not told of changes that did not happen.
func TestStandaloneStreamResumed(t *testing.T) {
	t.Parallel()
	var gets atomic.Int32
	var mu sync.Mutex
	var lastIDs []string
	var extra atomic.Bool
	s := growingServer(&extra)
	s.get = func(w http.ResponseWriter, r *http.Request) {
		n := gets.Add(1)
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		mu.Unlock()
		if n == 4 { // a change, told on a resumed stream
			extra.Store(true)
			writeEvents(w, fmt.Sprintf("id: g%d\nretry: 10\ndata: %s\n\n", n, `{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`))
			return
		}
		writeEvents(w, fmt.Sprintf("id: g%d\nretry: 10\n\n", n)) // then closed at once
	}
	var changes atomic.Int32
	b, _ := startRaw(t, s, &backend.Options{OnChange: func() { changes.Add(1) }}, backend.Spec{})
	mustReady(t, b)
	waitFor(t, 20*time.Second, "the new tool listed after a change told on a resumed stream", func() (bool, string) {
		inv := b.Inventory()
		return inv != nil && len(inv.Tools) == 2 && gets.Load() >= 6, fmt.Sprintf("%d GETs, status %+v", gets.Load(), b.Status())
	})
	mustReady(t, b)
	if st := b.Status(); st.Restarts != 0 {
		t.Errorf("the backend restarted %d times; want its connection kept", st.Restarts)
	}
	if n := changes.Load(); n != 2 {
		t.Errorf("%d changes reported; want 2 (ready, then the list change)", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < 5; i++ {
		if want := fmt.Sprintf("g%d", i); lastIDs[i] != want {
			t.Errorf("GET %d had Last-Event-ID %q, want %q", i+1, lastIDs[i], want)
		}
	}
}

// holdHeaders is a proxy in front of h that holds back the response head
// of GET event streams until the first byte of the body (as a plain Node
// http proxy does).
func holdHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w = &heldWriter{ResponseWriter: w}
		}
		h.ServeHTTP(w, r)
	})
}

type heldWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (h *heldWriter) WriteHeader(status int) { h.status = status }

func (h *heldWriter) Write(p []byte) (int, error) {
	if !h.wrote {
		h.wrote = true
		h.ResponseWriter.WriteHeader(max(h.status, http.StatusOK))
	}
	return h.ResponseWriter.Write(p)
}

func (h *heldWriter) Flush() {
	if h.wrote {
		h.ResponseWriter.(http.Flusher).Flush()
	}
}

// TestConnectBehindHeaderHoldingProxy: a backend that sends nothing on its
// GET stream until there is something to say (as the TypeScript SDK's
// server does), behind a proxy that holds back response headers until the
// first byte of the body (as a plain Node http proxy does), is connected
// within the connect timeout, and what comes later on that stream arrives.
func TestConnectBehindHeaderHoldingProxy(t *testing.T) {
	t.Parallel()
	var extra atomic.Bool
	notify := make(chan struct{})
	s := growingServer(&extra)
	var stopping atomic.Bool
	s.get = func(w http.ResponseWriter, r *http.Request) {
		if stopping.Load() {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		writeEvents(w) // the head, flushed: held by the proxy
		select {
		case <-notify:
			extra.Store(true)
			writeEvents(w, "data: "+`{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`+"\n\n")
			<-r.Context().Done()
		case <-r.Context().Done():
		}
	}
	ts := httptest.NewServer(holdHeaders(s))
	t.Cleanup(ts.Close)
	stop := func() { // let a connect that hangs end (before the set is closed)
		stopping.Store(true)
		ts.CloseClientConnections()
	}
	b := startSet(t, &backend.Options{ConnectTimeout: 5 * time.Second, OnChange: func() {}}, backend.Spec{Name: "held", Transport: backend.StreamableHTTP, URL: ts.URL}, stop)
	mustReady(t, b)
	close(notify)
	waitFor(t, 20*time.Second, "the tool added later listed", func() (bool, string) {
		inv := b.Inventory()
		return inv != nil && len(inv.Tools) == 2, fmt.Sprintf("%+v", b.Status())
	})
}
