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

	"github.com/vmcp-dev/vmcp/internal/testsupport/conformance"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// TestSamplingRelay: a backend's sampling request reaches a client that
// declared sampling, and is refused cleanly (no hang) for one that did not.
func TestSamplingRelay(t *testing.T) {
	fixture := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return conformance.New(nil) }, nil))
	t.Cleanup(fixture.Close)
	addr := vmcptest.FreeAddr(t)
	vmcptest.Start(t, fmt.Sprintf("backends:\n- {name: fx, url: %s}\nserver: {listen: %s}\n", fixture.URL, addr), nil)
	endpoint := "http://" + addr + "/mcp"
	open := func(opts *mcp.ClientOptions) *mcp.ClientSession { return vmcptest.Connect(t, endpoint, "", opts) }
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

// relayBackend has a tool that waits for cancellation and one that echoes
// _meta.
func relayBackend(t *testing.T, started, cancelled chan<- struct{}) string {
	s := mcp.NewServer(&mcp.Implementation{Name: "relay"}, nil)
	s.AddTool(&mcp.Tool{Name: "block", InputSchema: map[string]any{"type": "object"}},
		func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			started <- struct{}{}
			<-ctx.Done()
			cancelled <- struct{}{}
			return nil, ctx.Err()
		})
	s.AddTool(&mcp.Tool{Name: "meta", InputSchema: map[string]any{"type": "object"}},
		func(_ context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Meta: mcp.Meta{"com.example/seen": r.Params.Meta["com.example/x"], "io.modelcontextprotocol/private": "backend"},
				Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
		})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestCancellationAndMeta: a client's cancellation reaches the backend;
// _meta passes through both ways, except keys of MCP's reserved prefixes.
func TestCancellationAndMeta(t *testing.T) {
	started, cancelled := make(chan struct{}, 1), make(chan struct{}, 1)
	addr := vmcptest.FreeAddr(t)
	vmcptest.Start(t, fmt.Sprintf("backends:\n- {name: be, url: %s}\nserver: {listen: %s}\n", relayBackend(t, started, cancelled), addr), nil)
	s := vmcptest.Connect(t, "http://"+addr+"/mcp", "", nil)

	res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "be_meta", Meta: mcp.Meta{"com.example/x": "from-client"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Meta["com.example/seen"] != "from-client" {
		t.Errorf("_meta did not pass through: %v", res.Meta)
	}
	if _, ok := res.Meta["io.modelcontextprotocol/private"]; ok {
		t.Errorf("a reserved _meta key of the backend's hop reached the client: %v", res.Meta)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "be_block"})
		done <- err
	}()
	<-started
	cancel()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the backend never saw the client's cancellation")
	}
	<-done
}

// TestSSEBackend: a backend reached over the older HTTP+SSE transport is
// aggregated and called like the others.
func TestSSEBackend(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "sse-backend"}, nil)
	s.AddTool(&mcp.Tool{Name: "hello", InputSchema: map[string]any{"type": "object"}},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "hello over sse"}}}, nil
		})
	srv := httptest.NewServer(mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	addr := vmcptest.FreeAddr(t)
	vmcptest.Start(t, fmt.Sprintf("backends:\n- {name: old, url: %s, transport: sse}\nserver: {listen: %s}\n", srv.URL, addr), nil)
	base := "http://" + addr
	c, err := mcp.NewClient(&mcp.Implementation{Name: "t"}, nil).Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: base + "/mcp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.CallTool(t.Context(), &mcp.CallToolParams{Name: "old_hello"})
	if err != nil || res.IsError || res.Content[0].(*mcp.TextContent).Text != "hello over sse" {
		t.Errorf("call through an SSE backend: %v %+v", err, res)
	}
}
