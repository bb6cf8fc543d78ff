package app_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/app"
	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
	"github.com/vmcp-dev/vmcp/internal/testsupport/logbuf"
)

// syncBuffer is a log sink for tests.
type syncBuffer = logbuf.Buffer

func policies(ps ...string) string {
	var b strings.Builder
	b.WriteString("  authzConfig:\n    type: inline\n    inline:\n      policies:\n")
	for _, p := range ps {
		b.WriteString("        - '" + p + "'\n")
	}
	return b.String()
}

// TestDeniedLooksLikeMissing: a tool the caller may not call is absent from
// its list, and calling it gets exactly the error an unknown tool gets.
func TestDeniedLooksLikeMissing(t *testing.T) {
	idp := fakeidp.Start(t, fakeidp.Options{Subject: "alice", Claims: map[string]any{"email": "alice@example.com"}})
	_, base := authGatewayWith(t, idp, policies(
		`permit(principal, action == Vmcp::Action::"list_tools", resource);`,
		`permit(principal, action, resource == Vmcp::Tool::"be_whoami") when { principal.email like "*@corp.example" };`), nil)
	s := connect(t, base+"/mcp", login(t, base))
	res, err := s.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tools) != 0 {
		t.Errorf("tools = %v, want none for alice@example.com", res.Tools)
	}
	_, denied := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "be_whoami"})
	_, missing := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "be_nosuchtool"})
	var d, m *jsonrpc.Error
	if !errors.As(denied, &d) || !errors.As(missing, &m) {
		t.Fatalf("denied: %v; missing: %v; want JSON-RPC errors", denied, missing)
	}
	if d.Code != m.Code || strings.ReplaceAll(d.Message, "be_whoami", "X") != strings.ReplaceAll(m.Message, "be_nosuchtool", "X") {
		t.Errorf("a denied tool (%d %q) does not look like a missing one (%d %q)", d.Code, d.Message, m.Code, m.Message)
	}
}

// TestEvaluationErrorsAreLoud: a policy that fails on every item denies
// them and says so at ERROR, naming claims but never their values.
func TestEvaluationErrorsAreLoud(t *testing.T) {
	idp := fakeidp.Start(t, fakeidp.Options{Subject: "alice", Claims: map[string]any{"email": "alice@example.com"}})
	logs := &syncBuffer{}
	_, base := authGatewayWith(t, idp, policies(
		`permit(principal, action == Vmcp::Action::"list_tools", resource);`,
		`@id("needs-department") permit(principal, action, resource) when { principal.department == "eng" };`),
		&app.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	s := connect(t, base+"/mcp", login(t, base))
	res, err := s.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tools) != 0 {
		t.Errorf("tools = %v, want none (the only permit fails to evaluate)", res.Tools)
	}
	out := logs.String()
	for _, want := range []string{"every item of a list failed policy evaluation", "needs-department", "policy evaluation failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "alice@example.com") {
		t.Errorf("logs contain a claim value:\n%s", out)
	}
}
