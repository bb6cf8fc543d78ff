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
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/backend"
	"github.com/vmcp-dev/vmcp/internal/identity"
	"github.com/vmcp-dev/vmcp/internal/testsupport/logbuf"
)

// TestResultSizeLimit: an answer over the result size limit fails its
// call on both paths, as JSON and as an event; the backend stays ready and
// smaller answers go through.
func TestResultSizeLimit(t *testing.T) {
	t.Parallel()
	text := func(n int) string { return `{"content":[{"type":"text","text":"` + strings.Repeat("x", n) + `"}]}` }
	s := &rawServer{answers: map[string]func(http.ResponseWriter, *http.Request, *rpcMessage){
		"tools/call:big-json": func(w http.ResponseWriter, _ *http.Request, m *rpcMessage) { writeJSON(w, result(m, text(100<<10))) },
		"tools/call:big-stream": func(w http.ResponseWriter, _ *http.Request, m *rpcMessage) {
			writeEvents(w, "data: "+result(m, text(100<<10))+"\n\n")
		},
		"tools/call:small": func(w http.ResponseWriter, _ *http.Request, m *rpcMessage) {
			writeEvents(w, "data: "+result(m, text(30<<10))+"\n\n")
		},
	}}
	b, _ := startRaw(t, s, &backend.Options{MaxResultBytes: 64 << 10}, backend.Spec{})
	mustReady(t, b)
	calls := map[string]func(tool string) error{
		"raw": func(tool string) error {
			res, err := b.CallToolRaw(t.Context(), nil, backend.RawCall{Name: tool, Arguments: json.RawMessage(`{}`)})
			if err == nil {
				res.Release()
			}
			return err
		},
		"SDK": func(tool string) error {
			_, err := b.CallTool(t.Context(), nil, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}})
			return err
		},
	}
	for path, call := range calls {
		for _, tool := range []string{"big-json", "big-stream"} {
			err := call(tool)
			var ce *backend.CallError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), "larger than the result size limit (65536 bytes)") {
				t.Errorf("%s %s: %v; want a CallError saying the answer is over the limit", path, tool, err)
			}
		}
		if err := call("small"); err != nil {
			t.Errorf("%s: a result under the limit: %v", path, err)
		}
	}
	mustReady(t, b)
	if st := b.Status(); st.Restarts != 0 {
		t.Errorf("the backend restarted %d times", st.Restarts)
	}
}

// perUser is a credential that depends on the caller.
type perUser struct{}

func (perUser) PerUser() bool { return true }
func (perUser) Apply(_ context.Context, id *identity.Identity, h http.Header) error {
	if id != nil {
		h.Set("X-User", id.Subject)
	}
	return nil
}

// TestPerUserConnectionRecoversFromLostSession: a backend that forgot the
// session of a user's own connection (it restarted: HTTP 404) fails that
// user's call in flight, and the next call gets a new connection, on the
// fast path (raw calls) as on the SDK's.
func TestPerUserConnectionRecoversFromLostSession(t *testing.T) {
	t.Parallel()
	s := &rawServer{}
	b, _ := startRaw(t, s, nil, backend.Spec{Auth: perUser{}})
	mustReady(t, b)
	ctx := identity.With(t.Context(), &identity.Identity{Issuer: "https://idp.example", Subject: "alice"})
	calls := map[string]func() error{
		"raw": func() error {
			res, err := b.CallToolRaw(ctx, nil, backend.RawCall{Name: "t", Arguments: json.RawMessage(`{}`)})
			if err == nil {
				res.Release()
			}
			return err
		},
		"SDK": func() error {
			_, err := b.CallTool(ctx, nil, &mcp.CallToolParams{Name: "t", Arguments: map[string]any{}})
			return err
		},
	}
	for _, path := range []string{"raw", "SDK"} {
		call := calls[path]
		if err := call(); err != nil {
			t.Fatalf("%s: first call: %v", path, err)
		}
		s.restart()
		if err := call(); err == nil {
			t.Errorf("%s: a call on a forgotten session succeeded", path)
		}
		for i := range 3 {
			if err := call(); err != nil {
				t.Errorf("%s: call %d after the session was lost: %v; want a new connection", path, i+1, err)
			}
		}
	}
}

// TestReconnectBackoffJitter: backends that fail together do not retry in
// step: each wait is the backoff with jitter, between half of it and all.
func TestReconnectBackoffJitter(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/mcp"
	_ = ln.Close() // nothing listens there
	var specs []backend.Spec
	for i := range 16 {
		specs = append(specs, backend.Spec{Name: fmt.Sprintf("b%d", i), Transport: backend.StreamableHTTP, URL: url})
	}
	const min = 2 * time.Second
	set := backend.NewSet(specs, &backend.Options{MinBackoff: min})
	set.Start()
	t.Cleanup(set.Close)
	waitFor(t, 20*time.Second, "every backend tried", func() (bool, string) { return set.Attempted(), "" })
	waits := map[time.Duration]bool{}
	for _, st := range set.Statuses() {
		w := st.NextTry.Sub(st.Since).Round(time.Millisecond)
		if w < min/2 || w > min {
			t.Errorf("%s waits %s; want between %s and %s", st.Name, w, min/2, min)
		}
		waits[w] = true
	}
	if len(waits) < 2 {
		t.Errorf("16 backends all wait %v: no jitter", waits)
	}
}

// TestSubscriptionRenewalBounded: a backend that never answers the renewal
// of a subscription after a reconnect is not ready (its status says why),
// and closing the set does not wait for it.
func TestSubscriptionRenewalBounded(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var hung atomic.Int32
	s := &rawServer{caps: `{"resources":{"subscribe":true}}`}
	s.answers = map[string]func(http.ResponseWriter, *http.Request, *rpcMessage){
		"resources/list": func(w http.ResponseWriter, _ *http.Request, m *rpcMessage) {
			writeJSON(w, result(m, `{"resources":[{"uri":"file:///a","name":"a"}]}`))
		},
		"resources/templates/list": func(w http.ResponseWriter, _ *http.Request, m *rpcMessage) {
			writeJSON(w, result(m, `{"resourceTemplates":[]}`))
		},
		"resources/subscribe": func(w http.ResponseWriter, r *http.Request, m *rpcMessage) {
			if s.epoch.Load() == 0 {
				writeJSON(w, result(m, `{}`))
				return
			}
			hung.Add(1)
			select { // never answers (until the test ends)
			case <-release:
			case <-r.Context().Done():
			}
		},
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	set := backend.NewSet([]backend.Spec{{Name: "subs", Transport: backend.StreamableHTTP, URL: ts.URL}},
		&backend.Options{ConnectTimeout: 500 * time.Millisecond, MinBackoff: 50 * time.Millisecond, HealthInterval: time.Hour})
	set.Start()
	closed := false
	t.Cleanup(func() {
		if !closed {
			set.Close()
		}
	})
	t.Cleanup(func() { close(release) }) // first: end a renewal that hangs
	b := set.Get("subs")
	waitFor(t, 20*time.Second, "ready", func() (bool, string) { return b.Status().State == backend.StateReady, b.Status().Error })
	if err := b.Subscribe(t.Context(), "file:///a"); err != nil {
		t.Fatal(err)
	}
	s.restart()
	// A call sees the lost session; the supervisor reconnects.
	if res, err := b.CallToolRaw(t.Context(), nil, backend.RawCall{Name: "t"}); err == nil {
		res.Release()
	}
	waitFor(t, 20*time.Second, "the backend down with the renewal's error", func() (bool, string) {
		st := b.Status()
		return hung.Load() > 0 && st.State == backend.StateDown && strings.Contains(st.Error, "subscription"),
			fmt.Sprintf("%d renewals hung; %s: %s", hung.Load(), st.State, st.Error)
	})
	done := make(chan struct{})
	go func() { set.Close(); close(done) }()
	select {
	case <-done:
		closed = true
	case <-time.After(20 * time.Second):
		t.Fatal("closing the set waited for a renewal that never ends")
	}
}

// TestLostSessionRenewedAtOnce: a backend that restarted (it answers
// vmcp's session with 404) is given a new session at once, without going
// down: its tools stay listed, the next calls work without waiting for a
// backoff, and it is never reported lost. One that keeps losing sessions
// gets three such renewals, then the backoff of any failure.
func TestLostSessionRenewedAtOnce(t *testing.T) {
	t.Parallel()
	s := &rawServer{}
	var logs logbuf.Buffer
	// A backoff longer than the test: going down would fail every later
	// call.
	b, _ := startRaw(t, s, &backend.Options{Logger: testLogger(&logs), MinBackoff: time.Hour, MaxBackoff: time.Hour}, backend.Spec{})
	mustReady(t, b)
	call := func() error {
		res, err := b.CallToolRaw(t.Context(), nil, backend.RawCall{Name: "t", Arguments: json.RawMessage(`{}`)})
		if err == nil {
			res.Release()
		}
		return err
	}
	for i := range 3 {
		s.restart()
		if err := call(); err == nil {
			t.Fatalf("restart %d: a call on the forgotten session succeeded", i+1)
		}
		waitFor(t, 20*time.Second, "a call succeeds on a new session", func() (bool, string) {
			err := call()
			return err == nil, fmt.Sprint(err)
		})
		if st := b.Status(); st.State != backend.StateReady || st.Restarts != 0 {
			t.Fatalf("restart %d: %s, %d restarts (%s); want ready all along", i+1, st.State, st.Restarts, st.Error)
		}
		if n := len(b.Inventory().Tools); n != 1 {
			t.Errorf("restart %d: %d tools listed", i+1, n)
		}
	}
	if strings.Contains(logs.String(), `msg="backend lost`) {
		t.Errorf("a renewed session was logged as a lost backend:\n%s", logs.String())
	}
	if n := strings.Count(logs.String(), "making a new one"); n != 3 {
		t.Errorf("%d renewals logged, want 3:\n%s", n, logs.String())
	}

	// The fourth loss in a row is a failure like any other.
	s.restart()
	_ = call()
	waitFor(t, 20*time.Second, "down after the fourth loss", func() (bool, string) {
		st := b.Status()
		return st.State == backend.StateDown, string(st.State)
	})
}
