package backend_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/backend"
)

// serveStdioIfAsked runs this test binary as a stdio MCP server (a go-sdk
// server) when VMCP_TEST_STDIO_SERVER is set, and exits: its tool "big"
// answers with a text of the number of bytes it is called with. TestMain
// calls it first.
func serveStdioIfAsked() {
	if os.Getenv("VMCP_TEST_STDIO_SERVER") == "" {
		return
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "stdio-big"}, nil)
	srv.AddTool(&mcp.Tool{Name: "big", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(_ context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var args struct{ Bytes int }
			_ = json.Unmarshal(r.Params.Arguments, &args)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Repeat("x", args.Bytes)}}}, nil
		})
	_ = srv.Run(context.Background(), &mcp.StdioTransport{})
	os.Exit(0)
}

// TestStdioResultLimit: a stdio backend's messages are bounded by the
// result size limit (not the go-sdk's fixed 16 MiB): a larger result than
// that passes; one over the limit fails its call, and since a child's
// stream cannot skip a message, the child is restarted.
func TestStdioResultLimit(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b := startSet(t, &backend.Options{MaxResultBytes: 20 << 20, MinBackoff: 10 * time.Millisecond}, backend.Spec{
		Name: "stdio", Transport: backend.Stdio, Command: self, Env: map[string]string{"VMCP_TEST_STDIO_SERVER": "1"},
		// 17 MiB through a race-instrumented child and parent take ~20 s on
		// an idle 2-core machine and over 80 s on a loaded one: the bound
		// is generous, the test is about sizes, not speed.
		CallTimeout: 5 * time.Minute,
	})
	mustReady(t, b)
	call := func(n int) (*mcp.CallToolResult, error) {
		return b.CallTool(t.Context(), nil, &mcp.CallToolParams{Name: "big", Arguments: map[string]any{"bytes": n}})
	}
	res, err := call(17 << 20)
	if err != nil {
		t.Fatalf("a 17 MiB result under a 20 MiB limit: %v", err)
	}
	if got := len(res.Content[0].(*mcp.TextContent).Text); got != 17<<20 {
		t.Errorf("%d bytes, want %d", got, 17<<20)
	}
	_, err = call(21 << 20)
	var ce *backend.CallError
	if !errors.As(err, &ce) {
		t.Errorf("a result over the limit: %v; want a CallError", err)
	}
	waitFor(t, 2*time.Minute, "the child restarted", func() (bool, string) {
		st := b.Status()
		return st.State == backend.StateReady && st.Restarts == 1, strconv.Itoa(st.Restarts) + " " + string(st.State)
	})
}
