package backend_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/backend"
)

// slowPeer is a client session whose stream takes a while to take each
// progress notification (a busy machine, a slow client).
type slowPeer struct {
	delay    time.Duration
	mu       sync.Mutex
	progress []float64
}

func (p *slowPeer) ID() string                            { return "slow" }
func (p *slowPeer) Relays() bool                          { return false }
func (p *slowPeer) Capabilities() *mcp.ClientCapabilities { return nil }
func (p *slowPeer) LogLevel() mcp.LoggingLevel            { return "" }
func (p *slowPeer) Done() <-chan struct{}                 { return nil }
func (p *slowPeer) Progress(_ context.Context, pp *mcp.ProgressNotificationParams) error {
	time.Sleep(p.delay)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.progress = append(p.progress, pp.Progress)
	return nil
}
func (p *slowPeer) Log(context.Context, *mcp.LoggingMessageParams) error { return nil }
func (p *slowPeer) CreateMessage(context.Context, *mcp.CreateMessageParams) (*mcp.CreateMessageResult, error) {
	return nil, nil
}
func (p *slowPeer) Elicit(context.Context, *mcp.ElicitParams) (*mcp.ElicitResult, error) {
	return nil, nil
}

// TestProgressRelayedBeforeTheAnswer: every progress notification a
// backend sends ahead of its answer is relayed before the call returns
// (after it, the client's stream for the call is gone), however long the
// relay takes; notifications for other tokens are not waited for.
func TestProgressRelayedBeforeTheAnswer(t *testing.T) {
	t.Parallel()
	s := &rawServer{answers: map[string]func(http.ResponseWriter, *http.Request, *rpcMessage){
		"tools/call:progress": func(w http.ResponseWriter, _ *http.Request, m *rpcMessage) {
			tok := string(m.Params.Meta["progressToken"])
			var events []string
			for _, p := range []string{"0", "50", "100"} {
				events = append(events, `data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":`+tok+`,"progress":`+p+`,"total":100}}`+"\n\n")
			}
			// One for a token nobody has: never relayed, never waited for.
			events = append(events, `data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"vmcp-999999","progress":1}}`+"\n\n")
			events = append(events, "data: "+result(m, `{"content":[{"type":"text","text":"done"}]}`)+"\n\n")
			writeEvents(w, events...)
		},
	}}
	b, _ := startRaw(t, s, nil, backend.Spec{})
	mustReady(t, b)
	for range 3 {
		peer := &slowPeer{delay: 150 * time.Millisecond} // three times the grace of relays under way
		start := time.Now()
		res, err := b.CallTool(t.Context(), peer, &mcp.CallToolParams{Name: "progress", Meta: mcp.Meta{"progressToken": "client-token"}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Content[0].(*mcp.TextContent).Text != "done" {
			t.Fatalf("result %+v", res)
		}
		peer.mu.Lock()
		got := append([]float64(nil), peer.progress...)
		peer.mu.Unlock()
		if len(got) != 3 || got[0] != 0 || got[1] != 50 || got[2] != 100 {
			t.Fatalf("relayed before the answer: %v, want [0 50 100]", got)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("the call took %s: a notification for another token was waited for", d)
		}
	}
}
