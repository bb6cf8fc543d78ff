package frontend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/authz"
	"github.com/vmcp-dev/vmcp/internal/identity"
	"github.com/vmcp-dev/vmcp/internal/mcpsession"
	"github.com/vmcp-dev/vmcp/internal/router"
)

// middleware answers the list methods from the catalog, tracks calls in
// flight for a graceful shutdown, records log levels, and gives errors the
// codes of the session's revision.
func (g *Gateway) middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		var res mcp.Result
		var err error
		if g.observed() {
			res, err = g.observeSDK(ctx, method, req, next)
		} else {
			res, err = g.handle(ctx, method, req, next)
		}
		if err != nil {
			ss, _ := req.GetSession().(*mcp.ServerSession)
			err = inRevision(ss, err)
		}
		return res, err
	}
}

func (g *Gateway) handle(ctx context.Context, method string, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
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
			g.sessions.Create(ss, identity.From(ctx).Key())
			if err := g.share(ctx, ss, identity.From(ctx).Key(), res); err != nil {
				return nil, err
			}
		}
		return res, err
	case "logging/setLevel":
		r := req.(*mcp.ServerRequest[*mcp.SetLoggingLevelParams])
		res, err := next(ctx, method, req)
		if err == nil && r.Session.ID() != "" {
			g.keepPeer(r.Session, func(p *peer) { p.logLevel = r.Params.Level })
			err = g.storeChange(ctx, req, func(rec *mcpsession.Record) { rec.LogLevel = string(r.Params.Level) })
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

// notFoundMessage is the go-sdk's message for a resource that is not there.
var notFoundMessage = mcp.ResourceNotFoundError("").(*jsonrpc.Error).Message

// codeResourceNotFound is the error code of a resource that is not there in
// the 2025-11-25 revision and earlier; the 2026-07-28 revision uses -32602
// (SEP-2164), as the go-sdk does.
const codeResourceNotFound = -32002

// inRevision gives a resource-not-found error the code of the revision of
// the session it answers: a session of the 2025-11-25 revision (one with an
// id) gets -32002, a stateless request -32602.
func inRevision(ss *mcp.ServerSession, err error) error {
	var e *jsonrpc.Error
	if !errors.As(err, &e) || e.Message != notFoundMessage || e.Code != jsonrpc.CodeInvalidParams && e.Code != codeResourceNotFound {
		return err
	}
	c := *e
	c.Code = jsonrpc.CodeInvalidParams
	if ss != nil && ss.ID() != "" {
		c.Code = codeResourceNotFound
	}
	return &c
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
			req.Params.Arguments, "tools/call"); err != nil {
			return nil, err
		}
	}
	b := g.backends.Get(t.Backend)
	params := &mcp.CallToolParams{Meta: ownMeta(req.Params.Meta), Name: t.Original}
	if len(req.Params.Arguments) > 0 {
		params.Arguments = req.Params.Arguments
	}
	ctx, call := g.startCall(ctx, t.Backend, "tools/call", t.Def.Name, t.Original, authz.CallTool, "Tool", t.Def.Name)
	res, err := b.CallTool(ctx, g.peerFor(req.Session), params)
	call.end(ctx, err, err == nil && res.IsError, req.Params.Arguments)
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

// callOffline answers a call to a tool that is not in the catalog.
func (g *Gateway) callOffline(ctx context.Context, pub *published, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return g.missingTool(ctx, pub, req.Params.Name, req.Params.Arguments)
}

// missingTool answers a call to a tool that is not in the catalog: if its
// backend is down, an error result naming the backend (to callers who may
// call it); otherwise, and to others, the unknown-tool error, which is also
// what a caller gets for a tool it may not call.
func (g *Gateway) missingTool(ctx context.Context, pub *published, name string, args json.RawMessage) (*mcp.CallToolResult, error) {
	backendName, ok := pub.offline[name]
	if !ok {
		return nil, unknown("tool", name)
	}
	if a := g.opts.Authorizer; a != nil {
		if err := g.authorize(ctx, a.Tool(name, backendName, nil), authz.CallTool, "Tool", name, args, "tools/call"); err != nil {
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
	ctx, call := g.startCall(ctx, p.Backend, "prompts/get", "", p.Original, authz.GetPrompt, "Prompt", p.Def.Name)
	res, err := g.backends.Get(p.Backend).GetPrompt(ctx, g.peerFor(req.Session), params)
	call.end(ctx, err, false, nil)
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
	ctx, call := g.startCall(ctx, backendName, "resources/read", "", uri, authz.ReadResource, "Resource", req.Params.URI)
	res, err := g.backends.Get(backendName).ReadResource(ctx, g.peerFor(req.Session), params)
	call.end(ctx, err, false, nil)
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
			if errors.Is(err, errAuthzUnavailable) {
				return nil, err
			}
			return nil, unknown("resource template", ref.URI) // as for a template that is not there
		}
		backendName = t.Backend
	default:
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown reference type %q", ref.Type)}
	}
	params := *req.Params
	params.Ref = &ref
	params.Meta = ownMeta(params.Meta)
	kind, name := "Prompt", req.Params.Ref.Name
	if ref.Type == "ref/resource" {
		kind, name = "Resource", ref.URI
	}
	ctx, call := g.startCall(ctx, backendName, "completion/complete", "", ref.Name+ref.URI, "completion/complete", kind, name)
	res, err := g.backends.Get(backendName).Complete(ctx, g.peerFor(req.Session), &params)
	call.end(ctx, err, false, nil)
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
	uri := req.Params.URI
	name, original, ok := g.resourceOwner(uri)
	if !ok {
		return mcp.ResourceNotFoundError(uri)
	}
	if err := g.mayRead(ctx, uri, name, "resources/subscribe"); err != nil {
		return err
	}
	first, release := g.subs.add(req.Session, uri, subscription{backend: name, original: original})
	if !first {
		return nil // the session is subscribed already
	}
	if err := g.backends.Get(name).Subscribe(ctx, original); err != nil {
		release()
		return g.backendError("resources/subscribe", name, err)
	}
	g.watchSubscriptions(req.Session)
	return g.storeChange(ctx, req, func(r *mcpsession.Record) {
		if !slices.Contains(r.Subscriptions, uri) {
			r.Subscriptions = append(r.Subscriptions, uri)
		}
	})
}

// unsubscribe ends a subscription of the calling session: only the session
// that subscribed can end it, and only if it may still read the resource
// (to others an unknown resource and a forbidden one look alike).
func (g *Gateway) unsubscribe(ctx context.Context, req *mcp.UnsubscribeRequest) error {
	uri := req.Params.URI
	sub, subscribed := g.subs.get(req.Session, uri)
	name, _, known := g.resourceOwner(uri)
	switch {
	case known:
		if err := g.mayRead(ctx, uri, name, "resources/unsubscribe"); err != nil {
			return err
		}
	case !subscribed:
		return mcp.ResourceNotFoundError(uri)
	}
	if !subscribed || !g.subs.remove(req.Session, uri) {
		return nil // nothing of this session's to end
	}
	if err := g.backends.Get(sub.backend).Unsubscribe(ctx, sub.original); err != nil {
		return g.backendError("resources/unsubscribe", sub.backend, err)
	}
	return g.storeChange(ctx, req, func(r *mcpsession.Record) {
		r.Subscriptions = slices.DeleteFunc(r.Subscriptions, func(u string) bool { return u == uri })
	})
}

// subscription is a session's subscription to a resource: its backend and
// the backend's URI.
type subscription struct{ backend, original string }

// subscriptions are the resource subscriptions of each session, by the
// URI the session knows. The backends count subscribers per resource; each
// session counts once per resource, and its subscriptions end with it.
type subscriptions struct {
	mu      sync.Mutex // guards the fields below
	m       map[*mcp.ServerSession]map[string]subscription
	watched map[*mcp.ServerSession]bool // sessions with a watcher (watchSubscriptions)
}

// add records a subscription; first is false if the session had it
// already. release forgets a first one again.
func (s *subscriptions) add(ss *mcp.ServerSession, uri string, sub subscription) (first bool, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[*mcp.ServerSession]map[string]subscription{}
	}
	own := s.m[ss]
	if _, ok := own[uri]; ok {
		return false, nil
	}
	if own == nil {
		own = map[string]subscription{}
		s.m[ss] = own
	}
	own[uri] = sub
	return true, func() { s.remove(ss, uri) }
}

func (s *subscriptions) get(ss *mcp.ServerSession, uri string) (subscription, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, ok := s.m[ss][uri]
	return sub, ok
}

// uris returns the URIs ss is subscribed to.
func (s *subscriptions) uris(ss *mcp.ServerSession) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.m[ss]))
	for uri := range s.m[ss] {
		out = append(out, uri)
	}
	return out
}

// remove forgets a subscription, reporting whether there was one.
func (s *subscriptions) remove(ss *mcp.ServerSession, uri string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[ss][uri]; !ok {
		return false
	}
	delete(s.m[ss], uri)
	return true
}

// watchSubscriptions ends the subscriptions of ss at the backends when ss
// ends; one watcher per session that has subscriptions.
func (g *Gateway) watchSubscriptions(ss *mcp.ServerSession) {
	g.subs.mu.Lock()
	if g.subs.watched == nil {
		g.subs.watched = map[*mcp.ServerSession]bool{}
	}
	watched := g.subs.watched[ss]
	g.subs.watched[ss] = true
	g.subs.mu.Unlock()
	if watched {
		return
	}
	go func() {
		_ = ss.Wait()
		g.subs.mu.Lock()
		own := g.subs.m[ss]
		delete(g.subs.m, ss)
		delete(g.subs.watched, ss)
		g.subs.mu.Unlock()
		for _, sub := range own {
			ctx, cancel := context.WithTimeout(context.Background(), unsubscribeTimeout)
			if b := g.backends.Get(sub.backend); b != nil {
				if err := b.Unsubscribe(ctx, sub.original); err != nil {
					g.logger.Debug("ending a closed session's subscription", "backend", sub.backend, "error", err)
				}
			}
			cancel()
		}
	}()
}

// unsubscribeTimeout bounds ending one subscription of a closed session.
const unsubscribeTimeout = 5 * time.Second

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
