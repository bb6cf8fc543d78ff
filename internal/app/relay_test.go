package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/app"
	"github.com/vmcp-dev/vmcp/internal/config"
	"github.com/vmcp-dev/vmcp/internal/testfixture/conformance"
)

// TestSamplingRelay: a backend's sampling request reaches a client that
// declared sampling, and is refused cleanly (no hang) for one that did not.
func TestSamplingRelay(t *testing.T) {
	fixture := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return conformance.New(nil) }, nil))
	t.Cleanup(fixture.Close)
	addr := freeAddr(t)
	cfg, err := config.Parse([]byte(fmt.Sprintf("backends:\n- {name: fx, url: %s}\nserver: {listen: %s}\n", fixture.URL, addr)), "relay.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	base := "http://" + addr
	waitReady(t, base)
	open := func(opts *mcp.ClientOptions) *mcp.ClientSession {
		s, err := mcp.NewClient(&mcp.Implementation{Name: "relay-test"}, opts).Connect(t.Context(),
			&mcp.StreamableClientTransport{Endpoint: base + "/mcp"}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	capable := open(&mcp.ClientOptions{CreateMessageHandler: func(_ context.Context, r *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
		prompt := r.Params.Messages[0].Content.(*mcp.TextContent).Text
		return &mcp.CreateMessageResult{Role: "assistant", Model: "test", Content: &mcp.TextContent{Text: "echo: " + prompt}}, nil
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	res, err := capable.CallTool(ctx, &mcp.CallToolParams{Name: "fx_test_sampling", Arguments: map[string]any{"prompt": "hello"}})
	if err != nil || res.IsError || !strings.Contains(fmt.Sprint(res.Content[0].(*mcp.TextContent).Text), "echo: hello") {
		t.Errorf("sampling relayed to a capable client: %v %+v", err, res)
	}
	plain := open(nil)
	res, err = plain.CallTool(ctx, &mcp.CallToolParams{Name: "fx_test_sampling", Arguments: map[string]any{"prompt": "hello"}})
	if err == nil && !res.IsError {
		t.Errorf("a client without sampling got %+v; want the request refused", res)
	}
	if ctx.Err() != nil {
		t.Error("the refused sampling request hung")
	}
}
