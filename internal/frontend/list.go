package frontend

import (
	"context"
	"encoding/base64"
	"sort"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

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

// paginate returns the page of items (sorted by key) after cursor, and the
// cursor of the next page ("" at the end).
func paginate[T any](items []T, key func(T) string, cursor string, size int) ([]T, string, error) {
	start := 0
	if cursor != "" {
		after, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		start = sort.Search(len(items), func(i int) bool { return key(items[i]) > after })
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
// any time, so results are stale at once.
var cacheable = mcp.Cacheable{TTLMs: 0, CacheScope: "public"}

func (g *Gateway) listTools(_ context.Context, req *mcp.ListToolsRequest) (*mcp.ListToolsResult, error) {
	cursor := ""
	if req.Params != nil {
		cursor = req.Params.Cursor
	}
	page, next, err := paginate(g.catalog.Load().Tools, func(t *router.Tool) string { return t.Def.Name }, cursor, g.opts.PageSize)
	if err != nil {
		return nil, err
	}
	res := &mcp.ListToolsResult{Tools: make([]*mcp.Tool, len(page)), NextCursor: next, Cacheable: cacheable}
	for i, t := range page {
		res.Tools[i] = t.Def
	}
	return res, nil
}

func (g *Gateway) listPrompts(_ context.Context, req *mcp.ListPromptsRequest) (*mcp.ListPromptsResult, error) {
	cursor := ""
	if req.Params != nil {
		cursor = req.Params.Cursor
	}
	page, next, err := paginate(g.catalog.Load().Prompts, func(p *router.Prompt) string { return p.Def.Name }, cursor, g.opts.PageSize)
	if err != nil {
		return nil, err
	}
	res := &mcp.ListPromptsResult{Prompts: make([]*mcp.Prompt, len(page)), NextCursor: next, Cacheable: cacheable}
	for i, p := range page {
		res.Prompts[i] = p.Def
	}
	return res, nil
}

func (g *Gateway) listResources(_ context.Context, req *mcp.ListResourcesRequest) (*mcp.ListResourcesResult, error) {
	cursor := ""
	if req.Params != nil {
		cursor = req.Params.Cursor
	}
	page, next, err := paginate(g.catalog.Load().Resources, func(r *router.Resource) string { return r.Def.URI }, cursor, g.opts.PageSize)
	if err != nil {
		return nil, err
	}
	res := &mcp.ListResourcesResult{Resources: make([]*mcp.Resource, len(page)), NextCursor: next, Cacheable: cacheable}
	for i, r := range page {
		res.Resources[i] = r.Def
	}
	return res, nil
}

func (g *Gateway) listTemplates(_ context.Context, req *mcp.ListResourceTemplatesRequest) (*mcp.ListResourceTemplatesResult, error) {
	cursor := ""
	if req.Params != nil {
		cursor = req.Params.Cursor
	}
	page, next, err := paginate(g.catalog.Load().Templates, func(t *router.Template) string { return t.Def.URITemplate }, cursor, g.opts.PageSize)
	if err != nil {
		return nil, err
	}
	res := &mcp.ListResourceTemplatesResult{ResourceTemplates: make([]*mcp.ResourceTemplate, len(page)), NextCursor: next, Cacheable: cacheable}
	for i, t := range page {
		res.ResourceTemplates[i] = t.Def
	}
	return res, nil
}
