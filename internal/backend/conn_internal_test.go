package backend

import (
	"context"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// fakePeer records what is relayed to it.
type fakePeer struct {
	id       string
	relays   bool
	caps     *mcp.ClientCapabilities
	mu       sync.Mutex
	progress []*mcp.ProgressNotificationParams
}

func (p *fakePeer) ID() string                            { return p.id }
func (p *fakePeer) Relays() bool                          { return p.relays }
func (p *fakePeer) Capabilities() *mcp.ClientCapabilities { return p.caps }
func (p *fakePeer) LogLevel() mcp.LoggingLevel            { return "" }
func (p *fakePeer) Done() <-chan struct{}                 { return nil }
func (p *fakePeer) Progress(_ context.Context, pp *mcp.ProgressNotificationParams) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.progress = append(p.progress, pp)
	return nil
}
func (p *fakePeer) Log(context.Context, *mcp.LoggingMessageParams) error { return nil }
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
