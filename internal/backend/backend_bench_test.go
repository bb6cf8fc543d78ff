package backend

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/loadtest/cputime"
	"github.com/vmcp-dev/vmcp/internal/loadtest/echoserver"
)

// benchPeer is a client session that relays nothing.
type benchPeer struct{}

func (benchPeer) ID() string                            { return "bench" }
func (benchPeer) Relays() bool                          { return false }
func (benchPeer) Capabilities() *mcp.ClientCapabilities { return nil }
func (benchPeer) LogLevel() mcp.LoggingLevel            { return "" }
func (benchPeer) Done() <-chan struct{}                 { return nil }
func (benchPeer) Progress(context.Context, *mcp.ProgressNotificationParams) error {
	return nil
}
func (benchPeer) Log(context.Context, *mcp.LoggingMessageParams) error { return nil }
func (benchPeer) CreateMessage(context.Context, *mcp.CreateMessageParams) (*mcp.CreateMessageResult, error) {
	return nil, nil
}
func (benchPeer) Elicit(context.Context, *mcp.ElicitParams) (*mcp.ElicitResult, error) {
	return nil, nil
}

// BenchmarkConnBeginEnd measures the bookkeeping of a call in flight on a
// connection (what lets backend traffic during a call reach its client).
func BenchmarkConnBeginEnd(b *testing.B) {
	ctx := context.Background()
	args := json.RawMessage(`{"text":"hello"}`)
	b.Run("no-peer", func(b *testing.B) {
		c := &Conn{}
		b.ReportAllocs()
		cpu := cputime.Process()
		for b.Loop() {
			c.begin(ctx, nil, &mcp.CallToolParams{Name: "echo", Arguments: args})()
		}
		cputime.Bench(b, cpu)
	})
	b.Run("peer", func(b *testing.B) {
		c := &Conn{}
		b.ReportAllocs()
		cpu := cputime.Process()
		for b.Loop() {
			c.begin(ctx, benchPeer{}, &mcp.CallToolParams{Name: "echo", Arguments: args})()
		}
		cputime.Bench(b, cpu)
	})
	b.Run("peer+progress-token", func(b *testing.B) {
		c := &Conn{}
		b.ReportAllocs()
		cpu := cputime.Process()
		for b.Loop() {
			p := &mcp.CallToolParams{Name: "echo", Arguments: args, Meta: mcp.Meta{"progressToken": "tok-1"}}
			c.begin(ctx, benchPeer{}, p)()
		}
		cputime.Bench(b, cpu)
	})
	b.Run("peer/parallel", func(b *testing.B) {
		c := &Conn{}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.begin(ctx, benchPeer{}, &mcp.CallToolParams{Name: "echo", Arguments: args})()
			}
		})
	})
}

// BenchmarkCallTool measures a tools/call to a backend over loopback HTTP:
// through vmcp's backend layer (shared connection, bookkeeping, error
// classification) and, for reference, with a bare go-sdk client session.
// The echo backend runs in the same process, so its work is included in
// both.
func BenchmarkCallTool(b *testing.B) {
	srv, err := echoserver.Start(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	ctx := context.Background()
	args := json.RawMessage(`{"text":"hello"}`)

	b.Run("go-sdk-session", func(b *testing.B) {
		t := &mcp.StreamableClientTransport{Endpoint: srv.URL, HTTPClient: NewHTTPClient(), MaxRetries: -1}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench"}, nil).Connect(ctx, t, &mcp.ClientSessionOptions{ProtocolVersion: ProtocolVersion})
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		b.ReportAllocs()
		cpu := cputime.Process()
		for b.Loop() {
			if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: args}); err != nil {
				b.Fatal(err)
			}
		}
		cputime.Bench(b, cpu)
	})
	b.Run("backend", func(b *testing.B) {
		be := benchBackend(b, srv.URL)
		b.ReportAllocs()
		cpu := cputime.Process()
		for b.Loop() {
			if _, err := be.CallTool(ctx, benchPeer{}, &mcp.CallToolParams{Name: "echo", Arguments: args}); err != nil {
				b.Fatal(err)
			}
		}
		cputime.Bench(b, cpu)
	})
}

// BenchmarkCallToolRaw measures a raw tools/call (the fast path's backend
// side: one POST on the backend session, the answer read by vmcp) to the
// in-process echo backend over loopback HTTP.
func BenchmarkCallToolRaw(b *testing.B) {
	srv, err := echoserver.Start(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	ctx := context.Background()
	be := benchBackend(b, srv.URL)
	call := RawCall{Name: "echo", Arguments: json.RawMessage(`{"text":"hello"}`)}
	b.ReportAllocs()
	cpu := cputime.Process()
	for b.Loop() {
		res, err := be.CallToolRaw(ctx, benchPeer{}, call)
		if err != nil {
			b.Fatal(err)
		}
		res.Release()
	}
	cputime.Bench(b, cpu)
}

// benchBackend is the echo backend at url, connected, until b ends.
func benchBackend(b *testing.B, url string) *Backend {
	b.Helper()
	set := NewSet([]Spec{{Name: "echo", Transport: StreamableHTTP, URL: url, CallTimeout: time.Minute}}, nil)
	set.Start()
	b.Cleanup(set.Close)
	if err := set.WaitAttempted(context.Background()); err != nil {
		b.Fatal(err)
	}
	be := set.Get("echo")
	if be.Inventory() == nil {
		b.Fatal("backend not ready:", be.Status().Error)
	}
	return be
}
