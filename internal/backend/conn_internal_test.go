package backend

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// fakePeer records what is relayed to it.
type fakePeer struct {
	id       string
	relays   bool
	caps     *mcp.ClientCapabilities
	logLevel mcp.LoggingLevel
	onLog    func(context.Context) error // nil: logs are accepted
	mu       sync.Mutex
	progress []*mcp.ProgressNotificationParams
}

func (p *fakePeer) ID() string                            { return p.id }
func (p *fakePeer) Relays() bool                          { return p.relays }
func (p *fakePeer) Capabilities() *mcp.ClientCapabilities { return p.caps }
func (p *fakePeer) LogLevel() mcp.LoggingLevel            { return p.logLevel }
func (p *fakePeer) Done() <-chan struct{}                 { return nil }
func (p *fakePeer) Progress(_ context.Context, pp *mcp.ProgressNotificationParams) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.progress = append(p.progress, pp)
	return nil
}
func (p *fakePeer) Log(ctx context.Context, _ *mcp.LoggingMessageParams) error {
	if p.onLog == nil {
		return nil
	}
	return p.onLog(ctx)
}
func (p *fakePeer) CreateMessage(context.Context, *mcp.CreateMessageParams) (*mcp.CreateMessageResult, error) {
	return &mcp.CreateMessageResult{Model: p.id}, nil
}
func (p *fakePeer) Elicit(context.Context, *mcp.ElicitParams) (*mcp.ElicitResult, error) {
	return &mcp.ElicitResult{Action: "accept"}, nil
}

func testConn(owner Peer) *Conn {
	set := NewSet(nil, nil)
	return &Conn{backend: newBackend(Spec{Name: "b"}, set), owner: owner}
}

// TestProgressTokensAreRewritten: two clients using the same progress
// token on one shared connection each get only their own progress, under
// their own token, and nothing after their call ended.
func TestProgressTokensAreRewritten(t *testing.T) {
	t.Parallel()
	c := testConn(nil)
	alice, bob := &fakePeer{id: "alice"}, &fakePeer{id: "bob"}
	pa := &mcp.CallToolParams{Meta: mcp.Meta{"progressToken": 1}}
	pb := &mcp.CallToolParams{Meta: mcp.Meta{"progressToken": 1}}
	clientMeta := pa.Meta
	endA := c.begin(context.Background(), alice, pa)
	endB := c.begin(context.Background(), bob, pb)
	ta, tb := pa.GetProgressToken(), pb.GetProgressToken()
	if ta == tb || ta == 1 {
		t.Fatalf("backend tokens %v and %v: want distinct, rewritten tokens", ta, tb)
	}
	if clientMeta["progressToken"] != 1 {
		t.Error("the client's own _meta was changed")
	}
	c.progress(context.Background(), &mcp.ProgressNotificationClientRequest{Params: &mcp.ProgressNotificationParams{ProgressToken: tb, Progress: 5}})
	endA()
	endB()
	c.progress(context.Background(), &mcp.ProgressNotificationClientRequest{Params: &mcp.ProgressNotificationParams{ProgressToken: ta, Progress: 9}})
	if len(alice.progress) != 0 {
		t.Errorf("alice got %d notifications (one was bob's, one after her call ended)", len(alice.progress))
	}
	if len(bob.progress) != 1 || bob.progress[0].ProgressToken != 1 || bob.progress[0].Progress != 5 {
		t.Errorf("bob got %+v, want one notification with his own token 1", bob.progress)
	}
}

// TestBackendRequestTarget: a backend's request goes to the only call in
// flight on a shared connection (or nowhere if that is ambiguous), and to
// the owner of an owned connection.
func TestBackendRequestTarget(t *testing.T) {
	t.Parallel()
	sampler := &fakePeer{id: "a", caps: &mcp.ClientCapabilities{Sampling: &mcp.SamplingCapabilities{}}}
	plain := &fakePeer{id: "b", caps: &mcp.ClientCapabilities{}}
	shared := testConn(nil)
	req := &mcp.CreateMessageRequest{Params: &mcp.CreateMessageParams{}}
	if _, err := shared.createMessage(context.Background(), req); err == nil {
		t.Error("a request with no call in flight was relayed")
	}
	end := shared.begin(context.Background(), sampler, &mcp.CallToolParams{})
	if res, err := shared.createMessage(context.Background(), req); err != nil || res.Model != "a" {
		t.Errorf("one call in flight: %v %v, want it relayed to its client", res, err)
	}
	end2 := shared.begin(context.Background(), plain, &mcp.CallToolParams{})
	if _, err := shared.createMessage(context.Background(), req); err == nil {
		t.Error("a request was relayed although two calls are in flight")
	}
	end()
	if _, err := shared.createMessage(context.Background(), req); err == nil {
		t.Error("sampling was relayed to a client that did not declare it")
	}
	end2()
	owned := testConn(sampler)
	if res, err := owned.createMessage(context.Background(), req); err != nil || res.Model != "a" {
		t.Errorf("owned connection: %v %v, want the owner", res, err)
	}
}

type callKey struct{}

// TestLogsStayAheadOfTheAnswer: a log message the backend sent during a
// call goes on the call's stream (its context), and the call does not end
// while it is being relayed, so that the client gets it before the answer
// (the conformance scenario tools-call-with-logging failed once in CI when
// the answer overtook the last message). A message that can no longer go
// on the call's stream goes on the session's; one after the call too.
func TestLogsStayAheadOfTheAnswer(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		events  []string
		entered = make(chan struct{})
		release = make(chan struct{})
	)
	record := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }
	p := &fakePeer{id: "a", logLevel: "debug"}
	p.onLog = func(ctx context.Context) error {
		if ctx.Value(callKey{}) == nil {
			record("log outside the call")
			return nil
		}
		close(entered)
		<-release
		record("log on the call")
		return nil
	}
	c := testConn(p)
	callCtx := context.WithValue(context.Background(), callKey{}, true)
	end := c.begin(callCtx, p, &mcp.CallToolParams{})
	msg := &mcp.LoggingMessageRequest{Params: &mcp.LoggingMessageParams{Level: "info", Data: "x"}}
	logged := make(chan struct{})
	go func() { c.logMessage(context.Background(), msg); close(logged) }()
	<-entered
	ended := make(chan struct{})
	go func() { end(); record("call ended"); close(ended) }()
	time.Sleep(5 * time.Millisecond) // room for a broken end to return first
	close(release)
	<-logged
	<-ended
	c.logMessage(context.Background(), msg)
	want := []string{"log on the call", "call ended", "log outside the call"}
	if !slices.Equal(events, want) {
		t.Errorf("events %q, want %q", events, want)
	}

	// The call's stream is gone (the SDK refuses the write): the session's.
	events = nil
	p.onLog = func(ctx context.Context) error {
		if ctx.Value(callKey{}) != nil {
			return errors.New("write to closed stream")
		}
		record("log outside the call")
		return nil
	}
	end = c.begin(callCtx, p, &mcp.CallToolParams{})
	c.logMessage(context.Background(), msg)
	end()
	if want := []string{"log outside the call"}; !slices.Equal(events, want) {
		t.Errorf("events %q, want %q", events, want)
	}
}
