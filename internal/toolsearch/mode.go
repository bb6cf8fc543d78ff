package toolsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/identity"
	"github.com/vmcp-dev/vmcp/internal/router"
)

// The two tools a client sees in search mode.
const (
	FindToolName = "find_tool"
	CallToolName = "call_tool"
)

// Limits of find_tool.
const (
	DefaultLimit   = 5
	MaxLimit       = 50
	maxQueryLength = 4096 // bytes
)

// ModeOptions configure a [Mode]. Zero fields mean their documented
// default.
type ModeOptions struct {
	// AlwaysListed are advertised tool names listed beside find_tool and
	// call_tool (to callers who may call them).
	AlwaysListed []string
	// DefaultLimit is the number of tools find_tool returns when the
	// client gives no limit. Default: DefaultLimit (5).
	DefaultLimit int
	// MaxLimit bounds the limit a client may ask for. Default: 20, at
	// most MaxLimit (50).
	MaxLimit int
}

// Mode is search mode as the frontend asks it: which tools a client lists
// and how find_tool and call_tool are answered. Authorization stays with
// the frontend: it says which tools the caller may call (allow), and
// call_tool's inner call goes through the frontend's own call path.
type Mode struct {
	searcher *Searcher
	always   map[string]bool
	def, max int
	tools    []*mcp.Tool // find_tool and call_tool
}

// NewMode returns search mode over s.
func NewMode(s *Searcher, opts *ModeOptions) *Mode {
	var o ModeOptions
	if opts != nil {
		o = *opts
	}
	m := &Mode{searcher: s, always: map[string]bool{}, def: o.DefaultLimit, max: o.MaxLimit}
	if m.max <= 0 {
		m.max = 20
	}
	m.max = min(m.max, MaxLimit)
	if m.def <= 0 {
		m.def = DefaultLimit
	}
	m.def = min(m.def, m.max)
	for _, n := range o.AlwaysListed {
		m.always[n] = true
	}
	m.tools = []*mcp.Tool{m.callTool(), m.findTool()} // sorted by name
	return m
}

// Index indexes the catalog's tools for search (see [Searcher.Index]).
func (m *Mode) Index(tools []*router.Tool) *Index { return m.searcher.Index(tools) }

// Handles reports whether name is find_tool or call_tool (never, on a nil
// Mode: search mode is off).
func (m *Mode) Handles(name string) bool {
	return m != nil && (name == FindToolName || name == CallToolName)
}

// Listed returns the tools a client lists: find_tool, call_tool, and the
// always-listed tools of ix that allow accepts (nil accepts all), sorted
// by name.
func (m *Mode) Listed(ix *Index, allow func(int) bool) []*mcp.Tool {
	out := slices.Clone(m.tools)
	for name := range m.always {
		pos, ok := ix.byName[name]
		if ok && (allow == nil || allow(pos)) && !m.Handles(name) {
			out = append(out, ix.Tool(pos).Def)
		}
	}
	slices.SortFunc(out, func(a, b *mcp.Tool) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// CallFunc is the frontend's call path for one tool: the same routing,
// authorization and relays as a direct tools/call.
type CallFunc func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error)

// AllowFunc returns which tools of the index the caller may call (nil:
// all), or an error when that cannot be known now.
type AllowFunc func(ctx context.Context) (func(int) bool, error)

// Call answers a call of find_tool (a search of ix among the tools allow
// accepts) or call_tool (the inner call, handed to call under the inner
// tool's name, with the inner arguments and the request's _meta). Bad
// arguments get an isError result, so that the model can correct them.
func (m *Mode) Call(ctx context.Context, ix *Index, req *mcp.CallToolRequest, allow AllowFunc, call CallFunc) (*mcp.CallToolResult, error) {
	switch req.Params.Name {
	case FindToolName:
		return m.find(withCaller(ctx, caller(ctx, req)), ix, req.Params.Arguments, allow)
	case CallToolName:
		var in struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if err := decodeArgs(req.Params.Arguments, &in); err != nil || in.Name == "" {
			return toolError(`call_tool needs {"name": "<a tool from find_tool>", "arguments": {...}}`), nil
		}
		args := bytes.TrimSpace(in.Arguments)
		if len(args) > 0 && args[0] != '{' && string(args) != "null" {
			return toolError("call_tool: arguments must be an object"), nil
		}
		if string(args) == "null" {
			args = nil
		}
		inner := &mcp.CallToolRequest{Session: req.Session, Extra: req.Extra, Params: &mcp.CallToolParamsRaw{
			Meta: req.Params.Meta, Name: in.Name, Arguments: json.RawMessage(args)}}
		return call(ctx, inner)
	}
	return nil, fmt.Errorf("toolsearch: %q is not a search mode tool", req.Params.Name)
}

// caller names whose share of the query rate a search spends: the
// principal when authenticated, else the MCP session.
func caller(ctx context.Context, req *mcp.CallToolRequest) string {
	if key := identity.From(ctx).Key(); key != "" {
		return "p\x00" + key
	}
	if req.Session != nil && req.Session.ID() != "" {
		return "s\x00" + req.Session.ID()
	}
	return "" // one bucket for all such callers
}

func (m *Mode) find(ctx context.Context, ix *Index, raw json.RawMessage, allow AllowFunc) (*mcp.CallToolResult, error) {
	var in struct {
		Query string `json:"query"`
		Limit *int   `json:"limit"`
	}
	if err := decodeArgs(raw, &in); err != nil || strings.TrimSpace(in.Query) == "" {
		return toolError(`find_tool needs {"query": "<what you want to do>"}`), nil
	}
	if len(in.Query) > maxQueryLength {
		return toolError(fmt.Sprintf("find_tool: the query is over %d bytes", maxQueryLength)), nil
	}
	limit := m.def
	if in.Limit != nil {
		if *in.Limit < 1 || *in.Limit > m.max {
			return toolError(fmt.Sprintf("find_tool: limit must be between 1 and %d", m.max)), nil
		}
		limit = *in.Limit
	}
	ok, err := allow(ctx)
	if err != nil {
		return nil, err
	}
	hits := m.searcher.Search(ctx, ix, in.Query, limit, ok)
	found := foundTools{Tools: make([]foundTool, len(hits))}
	for i, h := range hits {
		d := ix.Tool(h.Pos).Def
		found.Tools[i] = foundTool{Name: d.Name, Title: d.Title, Description: d.Description, InputSchema: d.InputSchema}
	}
	text, err := json.Marshal(found)
	if err != nil {
		return nil, fmt.Errorf("find_tool: %w", err)
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(text)}}, StructuredContent: json.RawMessage(text)}, nil
}

// foundTools is find_tool's answer, as structured content and as text.
type foundTools struct {
	Tools []foundTool `json:"tools"`
}

type foundTool struct {
	Name        string `json:"name"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	InputSchema any    `json:"inputSchema"`
}

// decodeArgs decodes a tool's arguments (absent means {}).
func decodeArgs(raw json.RawMessage, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	return json.Unmarshal(raw, v)
}

func toolError(msg string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}
}

func (m *Mode) findTool() *mcp.Tool {
	return &mcp.Tool{
		Name: FindToolName,
		Description: "Find tools for a task. This server has many tools that are not listed: search them here, " +
			"then call one with call_tool. Returns the best matches with their input schemas.",
		InputSchema: json.RawMessage(fmt.Sprintf(`{"type":"object","properties":{`+
			`"query":{"type":"string","description":"What you want to do, in a few words"},`+
			`"limit":{"type":"integer","minimum":1,"maximum":%d,"description":"How many tools to return (default %d)"}},`+
			`"required":["query"]}`, m.max, m.def)),
		OutputSchema: json.RawMessage(`{"type":"object","properties":{"tools":{"type":"array","items":{"type":"object",` +
			`"properties":{"name":{"type":"string"},"title":{"type":"string"},"description":{"type":"string"},"inputSchema":{"type":"object"}},` +
			`"required":["name","inputSchema"]}}},"required":["tools"]}`),
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}
}

func (m *Mode) callTool() *mcp.Tool {
	return &mcp.Tool{
		Name:        CallToolName,
		Description: "Call a tool found with find_tool, with arguments that match its input schema.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{` +
			`"name":{"type":"string","description":"The tool's name, as find_tool gave it"},` +
			`"arguments":{"type":"object","description":"The tool's arguments"}},"required":["name"]}`),
	}
}
