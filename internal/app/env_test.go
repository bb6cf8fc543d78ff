package app_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"

	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// TestMain lets this test binary also be a stdio MCP server (for
// TestStdioChildGetsNoSecrets), when started with VMCP_TEST_ENV_SERVER=1.
// Otherwise it runs the tests and fails if any goroutine they started is
// still running when they end.
func TestMain(m *testing.M) {
	if os.Getenv("VMCP_TEST_ENV_SERVER") == "1" {
		s := mcp.NewServer(&mcp.Implementation{Name: "env"}, nil)
		s.AddTool(&mcp.Tool{Name: "getenv", InputSchema: map[string]any{"type": "object"}},
			func(_ context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				var out []string
				for _, k := range []string{"VMCP_SECRET_FOO_BAR", "MY_API_SECRET", "PATH"} {
					out = append(out, fmt.Sprintf("%s=%t", k, os.Getenv(k) != ""))
				}
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Join(out, " ")}}}, nil
			})
		_ = s.Run(context.Background(), &mcp.StdioTransport{})
		return
	}
	goleak.VerifyTestMain(m)
}

// TestStdioChildGetsNoSecrets: a stdio backend inherits vmcp's
// environment, but not the secrets vmcp reads from it.
func TestStdioChildGetsNoSecrets(t *testing.T) {
	t.Setenv("VMCP_SECRET_FOO_BAR", "s1")
	t.Setenv("MY_API_SECRET", "s2")
	addr := vmcptest.FreeAddr(t)
	vmcptest.Start(t, fmt.Sprintf(`
backends:
- name: child
  command: %q
  env: {VMCP_TEST_ENV_SERVER: "1"}
- name: remote
  url: http://127.0.0.1:1/mcp
  outgoingAuth: {type: header_injection, headerInjection: {valueSecretRef: {env: MY_API_SECRET}}}
server: {listen: %s}
`, os.Args[0], addr), nil)
	s := vmcptest.Connect(t, "http://"+addr+"/mcp", "", nil)
	res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "child_getenv"})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Content[0].(*mcp.TextContent).Text; got != "VMCP_SECRET_FOO_BAR=false MY_API_SECRET=false PATH=true" {
		t.Errorf("the child's environment: %s", got)
	}
}
