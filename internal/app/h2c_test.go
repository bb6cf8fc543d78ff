package app_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// TestCleartextHTTP2: clients that speak HTTP/2 without TLS (prior
// knowledge) get sessions, calls and lists over one connection; with
// server.disableH2C they are refused, and HTTP/1.1 works either way.
func TestCleartextHTTP2(t *testing.T) {
	backend := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server {
		s := mcp.NewServer(&mcp.Implementation{Name: "be"}, nil)
		s.AddTool(&mcp.Tool{Name: "echo", InputSchema: map[string]any{"type": "object"}},
			func(_ context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(r.Params.Arguments)}}}, nil
			})
		return s
	}, nil))
	t.Cleanup(backend.Close)
	for _, disabled := range []bool{false, true} {
		t.Run(fmt.Sprintf("disableH2C=%v", disabled), func(t *testing.T) {
			addr := vmcptest.FreeAddr(t)
			vmcptest.Start(t, fmt.Sprintf("backends:\n- {name: be, url: %s}\nserver: {listen: %s, disableH2C: %v}\n", backend.URL, addr, disabled), nil)
			var conns atomic.Int32
			h2 := &http.Transport{Protocols: new(http.Protocols)}
			h2.Protocols.SetUnencryptedHTTP2(true)
			h2.DialContext = countingDial(&conns)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			s, err := mcp.NewClient(&mcp.Implementation{Name: "h2"}, nil).Connect(ctx,
				&mcp.StreamableClientTransport{Endpoint: "http://" + addr + "/mcp", HTTPClient: &http.Client{Transport: h2}, MaxRetries: -1},
				&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
			if disabled {
				if err == nil {
					s.Close()
					t.Fatal("an HTTP/2 client got a session with disableH2C")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				for i := range 5 {
					res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "be_echo", Arguments: map[string]any{"i": i}})
					if err != nil || res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, fmt.Sprintf(`"i":%d`, i)) {
						t.Fatalf("call %d over HTTP/2: %v %+v", i, err, res)
					}
				}
				if _, err := s.ListTools(ctx, nil); err != nil {
					t.Fatal(err)
				}
				if n := conns.Load(); n != 1 {
					t.Errorf("the session used %d connections; want its requests and GET stream on one", n)
				}
			}
			h1 := vmcptest.Connect(t, "http://"+addr+"/mcp", "", nil)
			if _, err := h1.CallTool(ctx, &mcp.CallToolParams{Name: "be_echo", Arguments: map[string]any{}}); err != nil {
				t.Errorf("HTTP/1.1: %v", err)
			}
		})
	}
}

func countingDial(n *atomic.Int32) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		n.Add(1)
		return d.DialContext(ctx, network, addr)
	}
}
