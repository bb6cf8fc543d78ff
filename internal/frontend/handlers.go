package frontend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/authz"
	"github.com/vmcp-dev/vmcp/internal/identity"
	"github.com/vmcp-dev/vmcp/internal/router"
)

// middleware answers the list methods from the catalog, tracks calls in
// flight for a graceful shutdown, and records log levels.
func (g *Gateway) middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		ctx = identity.With(ctx, identityOf(req))
		switch method {
		case "tools/list":
			if g.opts.ToolSearch != nil {
				return g.listSearchMode(ctx, req.(*mcp.ListToolsRequest))
			}
			return g.listTools(ctx, req.(*mcp.ListToolsRequest))
		case "prompts/list":
			return g.listPrompts(ctx, req.(*mcp.ListPromptsRequest))
		case "resources/list":
			return g.listResources(ctx, req.(*mcp.ListResourcesRequest))
		case "resources/templates/list":
			return g.listTemplates(ctx, req.(*mcp.ListResourceTemplatesRequest))
		case "initialize":
			res, err := next(ctx, method, req)
			if ss := req.GetSession().(*mcp.ServerSession); err == nil && ss.ID() != "" {
				g.sessions.add(ss, identity.From(ctx).Key())
			}
			return res, err
		case "logging/setLevel":
			r := req.(*mcp.ServerRequest[*mcp.SetLoggingLevelParams])
			res, err := next(ctx, method, req)
			if err == nil && r.Session.ID() != "" {
				g.keepPeer(r.Session, func(p *peer) { p.logLevel = r.Params.Level })
			}
			return res, err
		case "tools/call", "resources/read", "prompts/get", "completion/complete":
			if r, ok := req.(*mcp.CallToolRequest); ok {
				// A tool of a backend that is down is no longer registered;
				// say which backend is down rather than "unknown tool".
				if pub := g.pub.Load(); pub.cat.Tool(r.Params.Name) == nil {
					if _, offline := pub.offline[r.Params.Name]; offline {
						return g.callOffline(ctx, pub, r)
					}
				}
			}
			if !g.calls.start() {
				return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "vmcp is shutting down"}
			}
			defer g.calls.end()
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			defer context.AfterFunc(g.stopCtx, cancel)()
			if r, ok := req.(*mcp.CallToolRequest); ok && g.opts.ToolSearch.Handles(r.Params.Name) {
				return g.callSearchMode(ctx, r)
			}
			return next(ctx, method, req)
		}
		return next(ctx, method, req)
	}
}

// callTracker counts calls in flight; once draining, it refuses new ones.
type callTracker struct {
	mu       sync.Mutex // guards the fields below
	n        int
	draining bool
	idle     chan struct{} // closed when n drops to 0 while draining
}

func (t *callTracker) start() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.draining {
		return false
	}
	t.n++
	return true
}

func (t *callTracker) end() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
}

// drain refuses new calls and returns a channel closed when none is left.
func (t *callTracker) drain() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.draining = true
	if t.n == 0 {
		return closed
	}
	if t.idle == nil {
		t.idle = make(chan struct{})
	}
	return t.idle
}

func unknown(kind, name string) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown %s %q", kind, name)}
}

// callTool routes a tools/call to its backend under the backend's name.
// Failures to reach the backend become an isError result naming it, so the
// model sees what happened; the backend's own answers pass through as they
// are.
func (g *Gateway) callTool(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	pub := g.pub.Load()
	t := pub.cat.Tool(req.Params.Name)
	if t == nil {
		return g.callOffline(ctx, pub, req)
	}
	if g.opts.Authorizer != nil {
		if err := g.authorize(ctx, pub.targets.tools[t.Def.Name], authz.CallTool, "Tool", t.Def.Name,
			authz.ArgumentsOf(req.Params.Arguments), "tools/call"); err != nil {
			return nil, err
		}
	}
	b := g.backends.Get(t.Backend)
	params := &mcp.CallToolParams{Meta: ownMeta(req.Params.Meta), Name: t.Original}
	if len(req.Params.Arguments) > 0 {
		params.Arguments = req.Params.Arguments
	}
	res, err := b.CallTool(ctx, g.peerFor(req.Session), params)
	if err != nil {
		var rpcErr *jsonrpc.Error
		if errors.As(err, &rpcErr) {
			return nil, rpcErr
		}
		g.logger.Warn("tool call failed", "tool", req.Params.Name, "backend", t.Backend, "error", err)
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: err.Error()}}}, nil
	}
	res.Meta = ownMeta(res.Meta)
	return res, nil
}

// callOffline answers a call to a tool whose backend is down with an
// error naming the backend (to callers who may call it; to others the tool
// is unknown).
func (g *Gateway) callOffline(ctx context.Context, pub *published, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	name := req.Params.Name
	backendName, ok := pub.offline[name]
	if !ok {
		return nil, unknown("tool", name)
	}
	if a := g.opts.Authorizer; a != nil {
		if err := g.authorize(ctx, a.Tool(name, backendName, nil), authz.CallTool, "Tool", name,
			authz.ArgumentsOf(req.Params.Arguments), "tools/call"); err != nil {
			return nil, err
		}
	}
	err := g.backends.Get(backendName).Unavailable()
	if err == nil {
		err = fmt.Errorf("backend %q was unavailable a moment ago; try again", backendName)
	}
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: err.Error()}}}, nil
}

// backendError turns a failure to reach a backend into a JSON-RPC error that
// names it, for methods without an isError result.
func (g *Gateway) backendError(method, backendName string, err error) error {
	var rpcErr *jsonrpc.Error
	if errors.As(err, &rpcErr) {
		return rpcErr
	}
	g.logger.Warn("backend request failed", "method", method, "backend", backendName, "error", err)
	return &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: err.Error(), Data: fmt.Appendf(nil, `{"backend":%q}`, backendName)}
}

func (g *Gateway) getPrompt(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	pub := g.pub.Load()
	p := pub.cat.Prompt(req.Params.Name)
	if p == nil {
		return nil, unknown("prompt", req.Params.Name)
	}
	if g.opts.Authorizer != nil {
		if err := g.authorize(ctx, pub.targets.prompts[p.Def.Name], authz.GetPrompt, "Prompt", p.Def.Name, nil, "prompts/get"); err != nil {
			return nil, err
		}
	}
	params := &mcp.GetPromptParams{Meta: ownMeta(req.Params.Meta), Name: p.Original, Arguments: req.Params.Arguments}
	res, err := g.backends.Get(p.Backend).GetPrompt(ctx, g.peerFor(req.Session), params)
	if err != nil {
		return nil, g.backendError("prompts/get", p.Backend, err)
	}
	res.Meta = ownMeta(res.Meta)
	return res, nil
}

// readResource serves a listed resource.
func (g *Gateway) readResource(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	r := g.Catalog().Resource(req.Params.URI)
	if r == nil {
		return nil, mcp.ResourceNotFoundError(req.Params.URI)
	}
	return g.read(ctx, req, r.Backend, r.Original)
}

// readTemplate returns the handler of a resource template of backendName.
func (g *Gateway) readTemplate(backendName string) mcp.ResourceHandler {
	return func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return g.read(ctx, req, backendName, req.Params.URI)
	}
}

func (g *Gateway) read(ctx context.Context, req *mcp.ReadResourceRequest, backendName, uri string) (*mcp.ReadResourceResult, error) {
	if err := g.mayRead(ctx, req.Params.URI, backendName, "resources/read"); err != nil {
		return nil, err
	}
	params := &mcp.ReadResourceParams{Meta: ownMeta(req.Params.Meta), URI: uri}
	res, err := g.backends.Get(backendName).ReadResource(ctx, g.peerFor(req.Session), params)
	if err != nil {
		return nil, g.backendError("resources/read", backendName, err)
	}
	res.Meta = ownMeta(res.Meta)
	if uri != req.Params.URI { // a namespaced URI: show the client the name it asked for
		for _, c := range res.Contents {
			if c.URI == uri {
				c.URI = req.Params.URI
			}
		}
	}
	return res, nil
}

// mayRead decides read_resource on an advertised URI.
func (g *Gateway) mayRead(ctx context.Context, uri, backendName, op string) error {
	a := g.opts.Authorizer
	if a == nil {
		return nil
	}
	t := g.pub.Load().targets.resources[uri]
	if t == nil { // read through a template, or a completion reference
		t = a.Resource(uri, backendName)
	}
	return g.authorize(ctx, t, authz.ReadResource, "Resource", uri, nil, op)
}

// resourceOwner finds the backend and backend URI of an advertised URI: a
// listed resource, or a URI matching a template.
func (g *Gateway) resourceOwner(uri string) (backendName, original string, ok bool) {
	c := g.Catalog()
	if r := c.Resource(uri); r != nil {
		return r.Backend, r.Original, true
	}
	for _, t := range c.Templates {
		if t.Matches(uri) {
			return t.Backend, uri, true
		}
	}
	return "", "", false
}

func (g *Gateway) complete(ctx context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	ref := *req.Params.Ref
	var backendName string
	pub := g.pub.Load()
	c := pub.cat
	switch ref.Type {
	case "ref/prompt":
		p := c.Prompt(ref.Name)
		if p == nil {
			return nil, unknown("prompt", ref.Name)
		}
		if g.opts.Authorizer != nil {
			if err := g.authorize(ctx, pub.targets.prompts[p.Def.Name], authz.GetPrompt, "Prompt", p.Def.Name, nil, "completion/complete"); err != nil {
				return nil, err
			}
		}
		backendName, ref.Name = p.Backend, p.Original
	case "ref/resource":
		t := findTemplate(c, ref.URI)
		if t == nil {
			return nil, unknown("resource template", ref.URI)
		}
		if err := g.mayRead(ctx, ref.URI, t.Backend, "completion/complete"); err != nil {
			return nil, err
		}
		backendName = t.Backend
	default:
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown reference type %q", ref.Type)}
	}
	params := *req.Params
	params.Ref = &ref
	params.Meta = ownMeta(params.Meta)
	res, err := g.backends.Get(backendName).Complete(ctx, g.peerFor(req.Session), &params)
	if err != nil {
		return nil, g.backendError("completion/complete", backendName, err)
	}
	res.Meta = ownMeta(res.Meta)
	return res, nil
}

func findTemplate(c *router.Catalog, uriTemplate string) *router.Template {
	for _, t := range c.Templates {
		if t.Def.URITemplate == uriTemplate {
			return t
		}
	}
	return nil
}

func (g *Gateway) subscribe(ctx context.Context, req *mcp.SubscribeRequest) error {
	name, uri, ok := g.resourceOwner(req.Params.URI)
	if !ok {
		return mcp.ResourceNotFoundError(req.Params.URI)
	}
	if err := g.mayRead(ctx, req.Params.URI, name, "resources/subscribe"); err != nil {
		return err
	}
	if err := g.backends.Get(name).Subscribe(ctx, uri); err != nil {
		return g.backendError("resources/subscribe", name, err)
	}
	return nil
}

func (g *Gateway) unsubscribe(ctx context.Context, req *mcp.UnsubscribeRequest) error {
	name, uri, ok := g.resourceOwner(req.Params.URI)
	if !ok {
		return mcp.ResourceNotFoundError(req.Params.URI)
	}
	if err := g.backends.Get(name).Unsubscribe(ctx, uri); err != nil {
		return g.backendError("resources/unsubscribe", name, err)
	}
	return nil
}

// ResourceUpdated relays a backend's resource update to subscribed clients,
// under the URI they know. Pass it as [backend.Options.OnResourceUpdated].
func (g *Gateway) ResourceUpdated(ctx context.Context, backendName string, p *mcp.ResourceUpdatedNotificationParams) {
	uri := p.URI
	for _, r := range g.Catalog().Resources {
		if r.Backend == backendName && r.Original == p.URI {
			uri = r.Def.URI
			break
		}
	}
	if err := g.server.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{Meta: p.Meta, URI: uri}); err != nil {
		g.logger.Debug("relaying resource update", "uri", uri, "error", err)
	}
}

// ownMeta drops the _meta keys with reserved MCP prefixes (for example
// io.modelcontextprotocol/serverInfo) from a backend's answer, and from a
// client's request before it goes to a backend (a 2026-07-28 request carries
// io.modelcontextprotocol/protocolVersion, which a 2025-11-25 backend session
// rejects): they describe one hop, and each hop adds its own. Other keys pass
// through.
func ownMeta(m mcp.Meta) mcp.Meta {
	own, _ := withoutReserved(m)
	return own
}

// withoutReserved returns m without the keys with reserved MCP prefixes,
// and whether it had any; m itself is not changed (a copy is made only
// then).
func withoutReserved[M ~map[string]V, V any](m M) (M, bool) {
	for k := range m {
		if reservedMetaKey(k) {
			out := make(M, len(m))
			for k2, v := range m {
				if !reservedMetaKey(k2) {
					out[k2] = v
				}
			}
			return out, true
		}
	}
	return m, false
}

// reservedMetaKey reports whether a _meta key has a prefix whose second
// label is "modelcontextprotocol" or "mcp" (MCP basic spec, _meta).
func reservedMetaKey(k string) bool {
	prefix, _, ok := strings.Cut(k, "/")
	if !ok {
		return false
	}
	labels := strings.Split(prefix, ".")
	return len(labels) > 1 && (labels[1] == "modelcontextprotocol" || labels[1] == "mcp")
}
