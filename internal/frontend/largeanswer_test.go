package frontend_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/frontend"
)

// countedAnswers is a frontend.LargeAnswers whose answers the backend's
// tool counts.
type countedAnswers struct{ answers, served atomic.Uint64 }

func (c *countedAnswers) Answers() uint64 { return c.answers.Load() }
func (c *countedAnswers) Served()         { c.served.Add(1) }

// TestLargeAnswerServed: a request during which a large answer came in
// reports its end (so that the memory is handed back then, however slow
// the client), and only such a request.
func TestLargeAnswerServed(t *testing.T) {
	t.Parallel()
	la := &countedAnswers{}
	s := mcp.NewServer(&mcp.Implementation{Name: "large"}, nil)
	obj := json.RawMessage(`{"type":"object"}`)
	for _, name := range []string{"small", "large"} {
		s.AddTool(&mcp.Tool{Name: name, InputSchema: obj}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if name == "large" {
				la.answers.Add(1) // as backend.Options.OnLargeAnswer would
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name}}}, nil
		})
	}
	be := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(be.Close)
	gw := fastGateway(t, be.URL, &frontend.Options{LargeAnswers: la})
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c"}, nil).Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: srv.URL + "/mcp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	for _, tc := range []struct {
		tool   string
		served uint64
	}{{"small", 0}, {"large", 1}, {"small", 1}, {"large", 2}} {
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "be_" + tc.tool})
		if err != nil || res.IsError {
			t.Fatalf("calling be_%s: %+v, %v", tc.tool, res, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for la.served.Load() != tc.served && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := la.served.Load(); got != tc.served {
			t.Fatalf("after a call of %s: %d requests reported served, want %d", tc.tool, got, tc.served)
		}
	}
}
