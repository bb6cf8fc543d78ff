package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// searchBackend is an MCP server with a few tools; more can be added while
// it runs (its clients are told the list changed).
func searchBackend(t *testing.T) (*mcp.Server, string) {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "tracker"}, nil)
	add := func(name, desc string) {
		s.AddTool(&mcp.Tool{Name: name, Description: desc, InputSchema: map[string]any{"type": "object",
			"properties": map[string]any{"title": map[string]any{"type": "string", "description": "a title"}}}},
			func(_ context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name + " " + string(r.Params.Arguments)}}}, nil
			})
	}
	add("create_issue", "Create a new issue in the tracker.")
	add("list_issues", "List the issues of the tracker.")
	add("delete_issue", "Delete an issue from the tracker for good.")
	add("echo", "Echo the title back.")
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	return s, srv.URL
}

// searchGateway runs vmcp in search mode over searchBackend, for
// anonymous callers who may call every tool but trk_delete_issue.
func searchGateway(t *testing.T) (*mcp.Server, string) {
	t.Helper()
	backend, url := searchBackend(t)
	addr := vmcptest.FreeAddr(t)
	vmcptest.Start(t, fmt.Sprintf(`
name: searchtest
config:
  toolSearch:
    enabled: true
    alwaysList: [trk_echo]
incomingAuth:
  type: anonymous
%sbackends:
- {name: trk, url: %s}
server: {listen: %s}
`, policies(
		`permit(principal, action == Vmcp::Action::"list_tools", resource);`,
		`permit(principal, action == Vmcp::Action::"call_tool", resource);`,
		`forbid(principal, action == Vmcp::Action::"call_tool", resource == Vmcp::Tool::"trk_delete_issue");`,
	), url, addr), nil)
	return backend, "http://" + addr + "/mcp"
}

// connectVersion opens a client of protocol revision version (2025-11-25:
// a session; 2026-07-28: stateless requests).
func connectVersion(t *testing.T, endpoint, version string) *mcp.ClientSession {
	t.Helper()
	s, err := mcp.NewClient(&mcp.Implementation{Name: "search-test"}, nil).Connect(t.Context(),
		&mcp.StreamableClientTransport{Endpoint: endpoint}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func find(t *testing.T, s *mcp.ClientSession, query string) []string {
	t.Helper()
	res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "find_tool", Arguments: map[string]any{"query": query}})
	if err != nil || res.IsError {
		t.Fatalf("find_tool %q: %v %+v", query, err, res)
	}
	var found struct {
		Tools []struct {
			Name        string          `json:"name"`
			InputSchema json.RawMessage `json:"inputSchema"`
		} `json:"tools"`
	}
	if err := json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &found); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range found.Tools {
		if len(f.InputSchema) == 0 {
			t.Errorf("find_tool gave %s without its input schema", f.Name)
		}
		names = append(names, f.Name)
	}
	return names
}

// TestToolSearchMode drives search mode with go-sdk clients of both
// protocol revisions: the list, find_tool, call_tool, authorization of the
// inner tool, and a catalog change.
func TestToolSearchMode(t *testing.T) {
	backend, endpoint := searchGateway(t)
	for _, version := range []string{"2025-11-25", "2026-07-28"} {
		t.Run(version, func(t *testing.T) {
			s := connectVersion(t, endpoint, version)
			list, err := s.ListTools(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			var listed []string
			for _, tool := range list.Tools {
				listed = append(listed, tool.Name)
			}
			if diff := cmp.Diff([]string{"call_tool", "find_tool", "trk_echo"}, listed); diff != "" {
				t.Errorf("tools/list in search mode (-want +got):\n%s", diff)
			}

			if got := find(t, s, "create a new issue"); len(got) == 0 || got[0] != "trk_create_issue" {
				t.Errorf("find_tool: %v, want trk_create_issue first", got)
			}
			res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "call_tool",
				Arguments: map[string]any{"name": "trk_create_issue", "arguments": map[string]any{"title": "crash"}}})
			if err != nil || res.IsError || res.Content[0].(*mcp.TextContent).Text != `create_issue {"title":"crash"}` {
				t.Errorf("call_tool: %v %+v", err, res)
			}

			// A denied tool is never found, not even by its exact name.
			for _, q := range []string{"delete an issue", "trk_delete_issue"} {
				if got := find(t, s, q); slices.Contains(got, "trk_delete_issue") {
					t.Errorf("find_tool %q found the denied tool: %v", q, got)
				}
			}
			// Calling it through call_tool answers as for a tool that does
			// not exist, and as a direct call does.
			viaCall := callError(t, s, "call_tool", map[string]any{"name": "trk_delete_issue"})
			unknown := callError(t, s, "call_tool", map[string]any{"name": "trk_no_such_tool"})
			direct := callError(t, s, "trk_delete_issue", nil)
			if viaCall.Code != unknown.Code || strings.ReplaceAll(viaCall.Message, "trk_delete_issue", "X") != strings.ReplaceAll(unknown.Message, "trk_no_such_tool", "X") {
				t.Errorf("denied inner tool (%d %q) and unknown one (%d %q) answer differently", viaCall.Code, viaCall.Message, unknown.Code, unknown.Message)
			}
			if viaCall.Code != direct.Code || viaCall.Message != direct.Message {
				t.Errorf("denied through call_tool: %+v; called directly: %+v", viaCall, direct)
			}
			// find_tool and call_tool themselves are not tools call_tool calls.
			if e := callError(t, s, "call_tool", map[string]any{"name": "find_tool", "arguments": map[string]any{"query": "x"}}); !strings.Contains(e.Message, "unknown tool") {
				t.Errorf("call_tool of find_tool: %+v, want unknown tool", e)
			}
		})
	}

	t.Run("catalog changes reach find_tool", func(t *testing.T) {
		s := connectVersion(t, endpoint, "2025-11-25")
		if got := find(t, s, "weather forecast"); slices.Contains(got, "trk_weather_forecast") {
			t.Fatalf("found a tool that does not exist yet: %v", got)
		}
		backend.AddTool(&mcp.Tool{Name: "weather_forecast", Description: "Get the weather forecast for a city.", InputSchema: map[string]any{"type": "object"}},
			func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "sunny"}}}, nil
			})
		deadline := time.Now().Add(20 * time.Second)
		for !slices.Contains(find(t, s, "weather forecast"), "trk_weather_forecast") {
			if time.Now().After(deadline) {
				t.Fatal("after 20s, find_tool does not find the tool the backend added")
			}
			time.Sleep(20 * time.Millisecond)
		}
		backend.RemoveTools("weather_forecast")
		for slices.Contains(find(t, s, "weather forecast"), "trk_weather_forecast") {
			if time.Now().After(deadline) {
				t.Fatal("after 20s, find_tool still finds the tool the backend removed")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// callError calls a tool and returns the JSON-RPC error it must answer.
func callError(t *testing.T, s *mcp.ClientSession, name string, args map[string]any) *jsonrpc.Error {
	t.Helper()
	res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	var e *jsonrpc.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s %v: %v %+v, want a JSON-RPC error", name, args, err, res)
	}
	return e
}

// TestToolSearchEmbeddings: with an embedding service configured, tool
// embeddings land in the cache file; when the service fails, find_tool
// still answers (lexically), never with an error.
func TestToolSearchEmbeddings(t *testing.T) {
	var down atomic.Bool
	var requests atomic.Int64
	embed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if down.Load() || r.Header.Get("Authorization") != "Bearer k-123" {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		var req struct{ Input []string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		type item struct {
			Index     int       `json:"index"`
			Embedding []float64 `json:"embedding"`
		}
		var out struct {
			Data []item `json:"data"`
		}
		for i, text := range req.Input {
			out.Data = append(out.Data, item{i, []float64{float64(len(text)), float64(strings.Count(text, "issue")), 1}})
		}
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(embed.Close)
	_, url := searchBackend(t)
	addr := vmcptest.FreeAddr(t)
	cache := filepath.Join(t.TempDir(), "embeddings")
	t.Setenv("VMCP_SECRET_EMBED_KEY", "k-123")
	vmcptest.Start(t, fmt.Sprintf(`
name: embedtest
config:
  toolSearch:
    enabled: true
    embedding:
      url: %s/v1/embeddings
      model: test
      headers: [{name: Authorization, valuePrefix: "Bearer ", valueSecretRef: {name: embed, key: key}}]
      cacheFile: %s
backends:
- {name: trk, url: %s}
server: {listen: %s}
`, embed.URL, cache, url, addr), nil)
	s := connectVersion(t, "http://"+addr+"/mcp", "2025-11-25")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if fi, err := os.Stat(cache); err == nil && fi.Size() > 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("after 20s, no tool embedding is in the cache file")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := find(t, s, "create a new issue"); len(got) == 0 {
		t.Error("hybrid find_tool found nothing")
	}
	down.Store(true)
	for _, q := range []string{"list the issues", "echo a title back"} {
		if got := find(t, s, q); len(got) == 0 {
			t.Errorf("with the embedding service down, find_tool %q found nothing", q)
		}
	}
}
