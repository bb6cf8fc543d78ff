package frontend_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/frontend"
	"github.com/vmcp-dev/vmcp/internal/mcpsession"
	"github.com/vmcp-dev/vmcp/internal/store/memory"
	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeclock"
)

// flakyStore is a shared session store that can be taken down.
type flakyStore struct {
	*memory.Store
	down atomic.Bool
}

func (s *flakyStore) GetSession(ctx context.Context, id string) (*mcpsession.Record, error) {
	if s.down.Load() {
		return nil, mcpsession.ErrUnavailable
	}
	return s.Store.GetSession(ctx, id)
}

func (s *flakyStore) PutSession(ctx context.Context, r *mcpsession.Record) error {
	if s.down.Load() {
		return mcpsession.ErrUnavailable
	}
	return s.Store.PutSession(ctx, r)
}

func (s *flakyStore) DeleteSession(ctx context.Context, id string) error {
	if s.down.Load() {
		return mcpsession.ErrUnavailable
	}
	return s.Store.DeleteSession(ctx, id)
}

// replicas are n gateways over one backend and one session store, as n
// replicas of vmcp on one Redis.
func replicas(t *testing.T, w *world, st mcpsession.Store, n int) (gws []*frontend.Gateway, urls []string) {
	t.Helper()
	for range n {
		gw, url := worldGateway(t, w, &frontend.Options{Sessions: st})
		gws, urls = append(gws, gw), append(urls, url)
	}
	return gws, urls
}

func sessionIDOf(h []string) string {
	for _, v := range h {
		if id, ok := strings.CutPrefix(v, "Mcp-Session-Id: "); ok {
			return id
		}
	}
	return ""
}

const echoCall = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"be_echo","arguments":{}}}`

func called(w wire) bool {
	return w.status == http.StatusOK && strings.Contains(w.body, `"text":"echo"`)
}

// TestSessionOnAnyReplica: a session made on one replica is served by the
// others, for its owner only; a session id alone grants nothing on a
// replica that never saw it; an unknown id is 404; a DELETE anywhere ends
// it everywhere.
func TestSessionOnAnyReplica(t *testing.T) {
	t.Parallel()
	w := startWorld(t)
	st := memory.New(nil)
	gws, urls := replicas(t, w, st, 3)
	alice := openSession(t, urls[0], "alice", "{}")
	for i, url := range urls {
		if got := send(t, http.MethodPost, url, echoCall, alice...); !called(got) {
			t.Errorf("alice's call on replica %d: %d %s", i, got.status, got.body)
		}
	}
	// Replica 2 has a copy now; bob is refused there as on replica 0.
	for i, url := range urls {
		if got := send(t, http.MethodPost, url, echoCall, append(alice, "X-User: bob")...); got.status != http.StatusForbidden {
			t.Errorf("bob with alice's session id on replica %d: %d %s; want 403", i, got.status, got.body)
		}
	}

	// A replica that never saw the session: bob's request makes no copy.
	gw3, url3 := worldGateway(t, w, &frontend.Options{Sessions: st})
	if got := send(t, http.MethodPost, url3, echoCall, append(alice, "X-User: bob")...); got.status != http.StatusForbidden {
		t.Errorf("bob with alice's session id on a fresh replica: %d %s; want 403", got.status, got.body)
	}
	if n := gw3.SessionStats().Open; n != 0 {
		t.Errorf("bob's refused request left %d session copies on the fresh replica", n)
	}
	if got := send(t, http.MethodPost, url3, echoCall, append(alice, "Mcp-Session-Id: no-such-session")...); got.status != http.StatusNotFound {
		t.Errorf("an unknown session id: %d %s; want 404", got.status, got.body)
	} else if _, e, ok := got.rpcError(); !ok || e.Code != jsonrpc.CodeInvalidRequest {
		t.Errorf("an unknown session id: body %s; want a JSON-RPC error", got.body)
	}

	// DELETE on one replica ends the session on every replica.
	if got := send(t, http.MethodDelete, urls[1], "", alice...); got.status != http.StatusNoContent {
		t.Fatalf("alice's DELETE on replica 1: %d %s", got.status, got.body)
	}
	for i, url := range append(urls, url3) {
		waitUntil(t, "the session still serves after its DELETE", func() bool {
			return send(t, http.MethodPost, url, echoCall, alice...).status == http.StatusNotFound
		})
		if i < 3 {
			waitUntil(t, "a replica still holds a copy of a deleted session", func() bool { return gws[i].SessionStats().Open == 0 })
		}
	}
}

// waitUntil polls cond every 10ms for at most 10s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSessionStateAcrossReplicas: a subscription and a log level set
// through one replica hold on the others: a GET stream on another replica
// gets the resource's updates.
func TestSessionStateAcrossReplicas(t *testing.T) {
	t.Parallel()
	w := startWorld(t)
	st := memory.New(nil)
	_, urls := replicas(t, w, st, 2)
	alice := openSession(t, urls[0], "alice", "{}")
	// Replica 1 holds a copy before the changes: they must reach it.
	if got := send(t, http.MethodPost, urls[1], echoCall, alice...); !called(got) {
		t.Fatalf("alice's call on replica 1: %d %s", got.status, got.body)
	}
	sub := `{"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{"uri":"file:///public"}}`
	if got := send(t, http.MethodPost, urls[0], sub, alice...); got.status != http.StatusOK || !strings.Contains(got.body, `"result"`) {
		t.Fatalf("alice subscribes on replica 0: %d %s", got.status, got.body)
	}
	level := `{"jsonrpc":"2.0","id":4,"method":"logging/setLevel","params":{"level":"debug"}}`
	if got := send(t, http.MethodPost, urls[0], level, alice...); got.status != http.StatusOK || !strings.Contains(got.body, `"result"`) {
		t.Fatalf("alice sets a log level on replica 0: %d %s", got.status, got.body)
	}
	rec, err := st.GetSession(t.Context(), sessionIDOf(alice))
	if err != nil || rec.LogLevel != "debug" || !cmp.Equal(rec.Subscriptions, []string{"file:///public"}) || !strings.Contains(rec.Owner, "alice") {
		t.Fatalf("the stored session: %+v, %v", rec, err)
	}
	stream := openStream(t, urls[1], alice...)
	if stream.StatusCode != http.StatusOK {
		t.Fatalf("alice's GET on replica 1: %d", stream.StatusCode)
	}
	// Both replicas subscribed at the backend, each on its own connection.
	waitUntil(t, "replica 1 did not subscribe its copy", func() bool {
		return cmp.Equal(w.recorded(), []string{"subscribe file:///public", "subscribe file:///public"})
	})
	if err := w.server.ResourceUpdated(t.Context(), &mcp.ResourceUpdatedNotificationParams{URI: "file:///public"}); err != nil {
		t.Fatal(err)
	}
	readUntil(t, stream.Body, "notifications/resources/updated")
}

// TestSessionStoreDown: a replica that must read a session from a store
// that is down answers 503 with a JSON-RPC error, and so does an
// initialize it cannot store; sessions it holds keep working.
func TestSessionStoreDown(t *testing.T) {
	t.Parallel()
	w := startWorld(t)
	st := &flakyStore{Store: memory.New(nil)}
	_, urls := replicas(t, w, st, 2)
	alice := openSession(t, urls[0], "alice", "{}")
	st.down.Store(true)
	got := send(t, http.MethodPost, urls[1], echoCall, alice...)
	if _, e, ok := got.rpcError(); got.status != http.StatusServiceUnavailable || !ok || e.Code != -32000 {
		t.Errorf("a call on a replica that must read the session from a store that is down: %d %s; want 503 with a JSON-RPC error", got.status, got.body)
	}
	if got := send(t, http.MethodPost, urls[0], echoCall, alice...); !called(got) {
		t.Errorf("a call on the replica that holds the session while the store is down: %d %s", got.status, got.body)
	}
	init := `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	// Every one gets the error: the session is ended after its answer is
	// out, never before (an empty 200 was seen under load).
	for i := range 100 {
		if got := send(t, http.MethodPost, urls[0], init, "X-User: alice", "Authorization: Bearer x"); !strings.Contains(got.body, "session storage unavailable") {
			t.Fatalf("initialize %d while the store is down: %d %s; want an error", i+1, got.status, got.body)
		}
	}
	st.down.Store(false)
	if got := send(t, http.MethodPost, urls[1], echoCall, alice...); !called(got) {
		t.Errorf("a call on replica 1 once the store is back: %d %s", got.status, got.body)
	}
}

// TestSessionExpiresInTheStore: a session idle for longer than the
// timeout is gone from the store, and a replica that does not hold it
// answers 404.
func TestSessionExpiresInTheStore(t *testing.T) {
	t.Parallel()
	w := startWorld(t)
	c := fakeclock.New(time.Now())
	st := memory.New(c.Now)
	_, urls := replicas(t, w, st, 2)
	alice := openSession(t, urls[0], "alice", "{}")
	c.Add(31 * time.Minute) // the default idle timeout is 30m
	if got := send(t, http.MethodPost, urls[1], echoCall, alice...); got.status != http.StatusNotFound {
		t.Errorf("an expired session on another replica: %d %s; want 404", got.status, got.body)
	}
}
