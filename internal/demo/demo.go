// Package demo holds the two small MCP servers behind `vmcp serve` with no
// configuration: "docs" and "notes". Both offer a tool named search, so the
// default prefix strategy has a clash to resolve (docs_search, notes_search).
//
// They run as stdio children of vmcp itself (`vmcp demo-server NAME`), so
// the demo also exercises the stdio transport and its supervision.
package demo

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Names lists the demo servers.
var Names = []string{"docs", "notes"}

// New returns the named demo server, or nil.
func New(name, version string) *mcp.Server {
	switch name {
	case "docs":
		return newDocs(version)
	case "notes":
		return newNotes(version)
	}
	return nil
}

// Run serves the named demo server on stdin/stdout until ctx is done or the
// client hangs up.
func Run(ctx context.Context, name, version string) error {
	s := New(name, version)
	if s == nil {
		return fmt.Errorf("no demo server %q (have %s)", name, strings.Join(Names, ", "))
	}
	return s.Run(ctx, &mcp.StdioTransport{})
}

type searchArgs struct {
	Query string `json:"query" jsonschema:"words to look for"`
}

type hits struct {
	Hits []string `json:"hits"`
}

var docs = map[string]string{
	"aggregation":   "vmcp merges the tools, resources and prompts of many MCP servers behind one endpoint.",
	"conflicts":     "When two backends offer the same tool name, the prefix strategy renames both as {workload}_name.",
	"authorization": "Cedar policies decide per user which tools are listed and callable.",
	"transports":    "Backends can be reached over streamable HTTP, SSE or stdio.",
}

func newDocs(version string) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "vmcp-demo-docs", Version: version}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "search", Description: "Search the vmcp documentation."},
		func(_ context.Context, _ *mcp.CallToolRequest, a searchArgs) (*mcp.CallToolResult, hits, error) {
			var out hits
			for _, topic := range sortedKeys(docs) {
				if strings.Contains(strings.ToLower(docs[topic]+" "+topic), strings.ToLower(a.Query)) {
					out.Hits = append(out.Hits, topic+": "+docs[topic])
				}
			}
			return nil, out, nil
		})
	for _, topic := range sortedKeys(docs) {
		s.AddResource(&mcp.Resource{URI: "docs://vmcp/" + topic, Name: topic, MIMEType: "text/plain"},
			func(_ context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
				return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: r.Params.URI, MIMEType: "text/plain", Text: docs[topic]}}}, nil
			})
	}
	s.AddPrompt(&mcp.Prompt{Name: "explain", Description: "Explain a vmcp topic.",
		Arguments: []*mcp.PromptArgument{{Name: "topic", Required: true}}},
		func(_ context.Context, r *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user",
				Content: &mcp.TextContent{Text: "Explain this vmcp topic: " + r.Params.Arguments["topic"]}}}}, nil
		})
	return s
}

type noteArgs struct {
	Text string `json:"text" jsonschema:"the note"`
}

func newNotes(version string) *mcp.Server {
	var mu sync.Mutex // guards notes
	notes := []string{"Try the docs_search tool: both backends have a tool named search."}
	s := mcp.NewServer(&mcp.Implementation{Name: "vmcp-demo-notes", Version: version}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "search", Description: "Search your notes."},
		func(_ context.Context, _ *mcp.CallToolRequest, a searchArgs) (*mcp.CallToolResult, hits, error) {
			mu.Lock()
			defer mu.Unlock()
			var out hits
			for _, n := range notes {
				if strings.Contains(strings.ToLower(n), strings.ToLower(a.Query)) {
					out.Hits = append(out.Hits, n)
				}
			}
			return nil, out, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "add_note", Description: "Add a note."},
		func(_ context.Context, _ *mcp.CallToolRequest, a noteArgs) (*mcp.CallToolResult, any, error) {
			if strings.TrimSpace(a.Text) == "" {
				return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "text must not be empty"}}}, nil, nil
			}
			mu.Lock()
			notes = append(notes, a.Text)
			n := len(notes)
			mu.Unlock()
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("saved note %d", n)}}}, nil, nil
		})
	return s
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
