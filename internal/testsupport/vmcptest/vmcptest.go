// Package vmcptest runs a vmcp gateway in the test process and connects MCP
// clients to it, for tests of the whole gateway.
package vmcptest

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/app"
	"github.com/vmcp-dev/vmcp/internal/config"
)

// FreeAddr returns a loopback address nothing listens on (to put in a
// configuration before the gateway binds it).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Start runs a gateway for the configuration document until the test ends
// and waits until it is ready. The document must set server.listen.
func Start(t testing.TB, doc string, opts *app.Options) *app.App {
	t.Helper()
	cfg, err := config.Parse([]byte(doc), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	a.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	WaitReady(t, "http://"+cfg.Server.Listen)
	return a
}

// WaitReady waits until the gateway at base answers /readyz with 200.
func WaitReady(t testing.TB, base string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway at %s did not become ready", base)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bearer adds a bearer token to every request.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// Connect opens a 2025-11-25 session to endpoint, with a bearer token if
// token is not empty, closed when the test ends.
func Connect(t testing.TB, endpoint, token string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	transport := &mcp.StreamableClientTransport{Endpoint: endpoint}
	if token != "" {
		transport.HTTPClient = &http.Client{Transport: bearer{token, http.DefaultTransport}}
	}
	s, err := mcp.NewClient(&mcp.Implementation{Name: "vmcptest"}, opts).Connect(context.Background(), transport,
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
