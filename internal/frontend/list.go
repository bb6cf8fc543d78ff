package frontend

import (
	"context"
	"encoding/base64"
	"sort"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/authz"
	"github.com/vmcp-dev/vmcp/internal/router"
)

// A cursor is the base64url of the last name on the previous page. Lists are
// sorted by name, so a page starts after that name even if the catalog
// changed in between: no duplicates, no error.
func encodeCursor(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }

func decodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) == 0 {
		return "", &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "invalid cursor"}
	}
	return string(b), nil
}

// startAfter is the index of the first item (sorted by key) after cursor.
func startAfter[T any](items []T, key func(T) string, cursor string) (int, error) {
	if cursor == "" {
		return 0, nil
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return 0, err
	}
	return sort.Search(len(items), func(i int) bool { return key(items[i]) > after }), nil
}

// paginate returns the page of items (sorted by key) after cursor, and the
// cursor of the next page ("" at the end).
func paginate[T any](items []T, key func(T) string, cursor string, size int) ([]T, string, error) {
	start, err := startAfter(items, key, cursor)
	if err != nil {
		return nil, "", err
	}
	end := min(start+size, len(items))
	page := items[start:end]
	next := ""
	if end < len(items) {
		next = encodeCursor(key(items[end-1]))
	}
	return page, next, nil
}

// cacheable is the caching hint on list results: the catalog can change at
// any time, so results are stale at once; with per-caller authorization
// they are private to the caller.
func (g *Gateway) cacheable() mcp.Cacheable {
	if g.opts.Authorizer != nil {
		return mcp.Cacheable{TTLMs: 0, CacheScope: "private"}
	}
	return mcp.Cacheable{TTLMs: 0, CacheScope: "public"}
}

func (g *Gateway) listTools(ctx context.Context, req *mcp.ListToolsRequest) (*mcp.ListToolsResult, error) {
	cursor := ""
	if req.Params != nil {
		cursor = req.Params.Cursor
	}
	g.discover(ctx, req.Session)
	pub := g.pub.Load()
	page, next, err := filter(g, ctx, pub, pub.cat.Tools, func(t *router.Tool) string { return t.Def.Name },
		func(t *router.Tool) *authz.Target { return pub.targets.tools[t.Def.Name] }, authz.CallTool, authz.ListTools, "tools/list", cursor)
	if err != nil {
		return nil, err
	}
	res := &mcp.ListToolsResult{Tools: make([]*mcp.Tool, len(page)), NextCursor: next, Cacheable: g.cacheable()}
	for i, t := range page {
		res.Tools[i] = t.Def
	}
	return res, nil
}

func (g *Gateway) listPrompts(ctx context.Context, req *mcp.ListPromptsRequest) (*mcp.ListPromptsResult, error) {
	cursor := ""
	if req.Params != nil {
		cursor = req.Params.Cursor
	}
	g.discover(ctx, req.Session)
	pub := g.pub.Load()
	page, next, err := filter(g, ctx, pub, pub.cat.Prompts, func(p *router.Prompt) string { return p.Def.Name },
		func(p *router.Prompt) *authz.Target { return pub.targets.prompts[p.Def.Name] }, authz.GetPrompt, authz.ListPrompts, "prompts/list", cursor)
	if err != nil {
		return nil, err
	}
	res := &mcp.ListPromptsResult{Prompts: make([]*mcp.Prompt, len(page)), NextCursor: next, Cacheable: g.cacheable()}
	for i, p := range page {
		res.Prompts[i] = p.Def
	}
	return res, nil
}

func (g *Gateway) listResources(ctx context.Context, req *mcp.ListResourcesRequest) (*mcp.ListResourcesResult, error) {
	cursor := ""
	if req.Params != nil {
		cursor = req.Params.Cursor
	}
	g.discover(ctx, req.Session)
	pub := g.pub.Load()
	page, next, err := filter(g, ctx, pub, pub.cat.Resources, func(r *router.Resource) string { return r.Def.URI },
		func(r *router.Resource) *authz.Target { return pub.targets.resources[r.Def.URI] }, authz.ReadResource, authz.ListResources, "resources/list", cursor)
	if err != nil {
		return nil, err
	}
	res := &mcp.ListResourcesResult{Resources: make([]*mcp.Resource, len(page)), NextCursor: next, Cacheable: g.cacheable()}
	for i, r := range page {
		res.Resources[i] = r.Def
	}
	return res, nil
}

// listTemplates lists resource templates; reading through one is decided
// per URI read, so templates are listed to whoever may list resources.
func (g *Gateway) listTemplates(ctx context.Context, req *mcp.ListResourceTemplatesRequest) (*mcp.ListResourceTemplatesResult, error) {
	cursor := ""
	if req.Params != nil {
		cursor = req.Params.Cursor
	}
	g.discover(ctx, req.Session)
	if g.opts.Authorizer != nil {
		p, err := g.principal(ctx)
		if err != nil {
			return nil, err
		}
		if !g.mayList(ctx, p, authz.ListResources, "resources/templates/list") {
			return &mcp.ListResourceTemplatesResult{ResourceTemplates: []*mcp.ResourceTemplate{}, Cacheable: g.cacheable()}, nil
		}
	}
	page, next, err := paginate(g.Catalog().Templates, func(t *router.Template) string { return t.Def.URITemplate }, cursor, g.opts.PageSize)
	if err != nil {
		return nil, err
	}
	res := &mcp.ListResourceTemplatesResult{ResourceTemplates: make([]*mcp.ResourceTemplate, len(page)), NextCursor: next, Cacheable: g.cacheable()}
	for i, t := range page {
		res.ResourceTemplates[i] = t.Def
	}
	return res, nil
}
