package frontend

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/authz"
	"github.com/vmcp-dev/vmcp/internal/router"
	"github.com/vmcp-dev/vmcp/internal/toolsearch"
)

// Search mode (Options.ToolSearch): tools/list shows find_tool, call_tool
// and the always-listed tools; find_tool searches the tools the caller may
// call (the decision a list makes); call_tool's inner call takes callTool,
// the path of a direct call (authorization of the inner tool and its
// arguments, routing, relays). Tools stay callable directly by name.

// listSearchMode answers tools/list in search mode.
func (g *Gateway) listSearchMode(ctx context.Context, req *mcp.ListToolsRequest) (*mcp.ListToolsResult, error) {
	cursor := ""
	if req.Params != nil {
		cursor = req.Params.Cursor
	}
	g.discover(ctx, req.Session)
	pub := g.pub.Load()
	allow, listed, err := g.toolsAllowed(ctx, pub, "tools/list")
	if err != nil {
		return nil, err
	}
	tools := []*mcp.Tool{}
	if listed {
		tools = g.opts.ToolSearch.Listed(pub.search, allow)
	}
	page, next, err := paginate(tools, func(t *mcp.Tool) string { return t.Name }, cursor, g.opts.PageSize)
	if err != nil {
		return nil, err
	}
	return &mcp.ListToolsResult{Tools: page, NextCursor: next, Cacheable: g.cacheable()}, nil
}

// callSearchMode answers a call of find_tool or call_tool.
func (g *Gateway) callSearchMode(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if req.Params.Name == toolsearch.FindToolName {
		g.discover(ctx, req.Session)
	}
	pub := g.pub.Load()
	allow := func(ctx context.Context) (func(int) bool, error) {
		allow, _, err := g.toolsAllowed(ctx, pub, "tools/call "+toolsearch.FindToolName)
		return allow, err
	}
	return g.opts.ToolSearch.Call(ctx, pub.search, req, allow, g.callTool)
}

// toolsAllowed says which tools of pub's catalog (by position) the caller
// may call: nil means all. listed is false when the caller may not list
// tools at all (then none is allowed).
func (g *Gateway) toolsAllowed(ctx context.Context, pub *published, op string) (allow func(int) bool, listed bool, err error) {
	if g.opts.Authorizer == nil {
		return nil, true, nil
	}
	e, err := g.principalEntry(ctx)
	if err != nil {
		return nil, false, err
	}
	if !g.mayList(ctx, e.p, authz.ListTools, op) {
		return func(int) bool { return false }, false, nil
	}
	allowed := allowedItems(g, e, pub, pub.cat.Tools,
		func(t *router.Tool) *authz.Target { return pub.targets.tools[t.Def.Name] }, authz.CallTool, op)
	return func(i int) bool { return allowed[i] }, true, nil
}
