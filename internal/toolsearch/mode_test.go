package toolsearch

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/router"
)

func modeFixture(t *testing.T, always ...string) (*Mode, *Index) {
	t.Helper()
	m := NewMode(New(nil), &ModeOptions{AlwaysListed: always})
	tools := []*router.Tool{
		testTool("github", "create_issue", "Create a new issue in a GitHub repository.", "title:issue title", "body:issue text"),
		testTool("github", "list_issues", "List issues in a GitHub repository."),
		testTool("notes", "search", "Search the notes."),
	}
	return m, m.Index(tools)
}

func callReq(name, args string) *mcp.CallToolRequest {
	return &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Name: name, Arguments: json.RawMessage(args), Meta: mcp.Meta{"progressToken": "p1"}}}
}

func allowAll(context.Context) (func(int) bool, error) { return nil, nil }

func noCall(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return nil, errors.New("unexpected call")
}

func TestModeListed(t *testing.T) {
	t.Parallel()
	m, ix := modeFixture(t, "notes_search", "github_list_issues", "not_a_tool")
	toolNames := func(ts []*mcp.Tool) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.Name)
		}
		return out
	}
	if diff := cmp.Diff([]string{"call_tool", "find_tool", "github_list_issues", "notes_search"}, toolNames(m.Listed(ix, nil))); diff != "" {
		t.Errorf("listed (-want +got):\n%s", diff)
	}
	notes := ix.byName["notes_search"]
	onlyNotes := func(i int) bool { return i == notes }
	if diff := cmp.Diff([]string{"call_tool", "find_tool", "notes_search"}, toolNames(m.Listed(ix, onlyNotes))); diff != "" {
		t.Errorf("an always-listed tool the caller may not call is listed (-want +got):\n%s", diff)
	}
}

func TestModeFind(t *testing.T) {
	t.Parallel()
	m, ix := modeFixture(t)
	res, err := m.Call(context.Background(), ix, callReq(FindToolName, `{"query":"create an issue","limit":1}`), allowAll, noCall)
	if err != nil || res.IsError {
		t.Fatalf("find_tool: %v %+v", err, res)
	}
	var got foundTools
	if err := json.Unmarshal(res.StructuredContent.(json.RawMessage), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Tools) != 1 || got.Tools[0].Name != "github_create_issue" || !strings.Contains(string(mustJSON(t, got.Tools[0].InputSchema)), `"title"`) {
		t.Errorf("find_tool answered %+v, want github_create_issue with its schema", got)
	}
	if text := res.Content[0].(*mcp.TextContent).Text; text != string(res.StructuredContent.(json.RawMessage)) {
		t.Errorf("the text content %s differs from the structured content", text)
	}

	denyAll := func(context.Context) (func(int) bool, error) { return func(int) bool { return false }, nil }
	res, _ = m.Call(context.Background(), ix, callReq(FindToolName, `{"query":"github_create_issue"}`), denyAll, noCall)
	if s := string(res.StructuredContent.(json.RawMessage)); s != `{"tools":[]}` {
		t.Errorf("a caller who may call nothing found %s", s)
	}

	unavailable := errors.New("authorization unavailable")
	if _, err := m.Call(context.Background(), ix, callReq(FindToolName, `{"query":"issues"}`),
		func(context.Context) (func(int) bool, error) { return nil, unavailable }, noCall); !errors.Is(err, unavailable) {
		t.Errorf("when the caller's permissions cannot be known: %v, want the error", err)
	}
}

func TestModeBadArguments(t *testing.T) {
	t.Parallel()
	m, ix := modeFixture(t)
	for _, tc := range []struct{ name, tool, args string }{
		{"no query", FindToolName, `{}`},
		{"empty query", FindToolName, `{"query":"  "}`},
		{"query not a string", FindToolName, `{"query":3}`},
		{"limit zero", FindToolName, `{"query":"x","limit":0}`},
		{"limit too large", FindToolName, `{"query":"x","limit":1000}`},
		{"query too long", FindToolName, `{"query":"` + strings.Repeat("a", maxQueryLength+1) + `"}`},
		{"no name", CallToolName, `{"arguments":{}}`},
		{"arguments not an object", CallToolName, `{"name":"notes_search","arguments":[1]}`},
		{"not JSON", CallToolName, `{`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := m.Call(context.Background(), ix, callReq(tc.tool, tc.args), allowAll, noCall)
			if err != nil || !res.IsError {
				t.Errorf("%s %s: %v %+v, want an isError result", tc.tool, tc.args, err, res)
			}
		})
	}
}

// TestModeCall: call_tool hands the inner call to the frontend's call path
// under the inner name, with the inner arguments and the request's _meta.
func TestModeCall(t *testing.T) {
	t.Parallel()
	m, ix := modeFixture(t)
	var got *mcp.CallToolRequest
	call := func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		got = req
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil
	}
	res, err := m.Call(context.Background(), ix, callReq(CallToolName, `{"name":"github_create_issue","arguments":{"title":"t"}}`), allowAll, call)
	if err != nil || res.Content[0].(*mcp.TextContent).Text != "done" {
		t.Fatalf("call_tool: %v %+v", err, res)
	}
	if got.Params.Name != "github_create_issue" || string(got.Params.Arguments) != `{"title":"t"}` || got.Params.Meta["progressToken"] != "p1" {
		t.Errorf("inner request %+v", got.Params)
	}
	if _, err := m.Call(context.Background(), ix, callReq(CallToolName, `{"name":"notes_search"}`), allowAll, call); err != nil || got.Params.Arguments != nil {
		t.Errorf("without arguments: %v, arguments %s", err, got.Params.Arguments)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
