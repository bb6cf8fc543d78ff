package frontend

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/authz"
	"github.com/vmcp-dev/vmcp/internal/identity"
	"github.com/vmcp-dev/vmcp/internal/router"
)

// ClaimsFunc returns the claims policies see for a caller. An error means
// they cannot be known now (a store is down): the request fails, loudly,
// rather than being decided on partial claims.
type ClaimsFunc func(ctx context.Context, id *identity.Identity) (authz.Claims, error)

// targets are the catalog's items prepared for policy decisions, built
// once per catalog.
type targets struct {
	tools     map[string]*authz.Target
	prompts   map[string]*authz.Target
	resources map[string]*authz.Target
}

func (g *Gateway) buildTargets(c *router.Catalog) *targets {
	a := g.opts.Authorizer
	t := &targets{tools: map[string]*authz.Target{}, prompts: map[string]*authz.Target{}, resources: map[string]*authz.Target{}}
	for _, tool := range c.Tools {
		t.tools[tool.Def.Name] = a.Tool(tool.Def.Name, tool.Backend, annotationsOf(tool.Def))
	}
	for _, p := range c.Prompts {
		t.prompts[p.Def.Name] = a.Prompt(p.Def.Name, p.Backend)
	}
	for _, r := range c.Resources {
		t.resources[r.Def.URI] = a.Resource(r.Def.URI, r.Backend)
	}
	return t
}

func annotationsOf(t *mcp.Tool) map[string]any {
	if t.Annotations == nil {
		return nil
	}
	b, err := json.Marshal(t.Annotations)
	if err != nil {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// errAuthzUnavailable fails a request whose caller's claims cannot be
// resolved.
var errAuthzUnavailable = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "vmcp: authorization is unavailable right now; try again"}

// principals caches prepared principals per identity (the authentication
// layer hands out one *Identity per verified token) for a few seconds, so
// that claims are resolved and converted once, not per request. It holds
// at most maxPrincipals; when full, the least recently used one makes room,
// so that a burst of new callers never makes every caller's claims be
// resolved again at once. It is safe for concurrent use.
type principals struct {
	*lru.Cache[*identity.Identity, principalEntry]
	now func() time.Time // the clock entries expire by: time.Now; tests set their own
}

// maxPrincipals bounds the principal cache.
const maxPrincipals = 10000

func newPrincipals() *principals {
	c, _ := lru.New[*identity.Identity, principalEntry](maxPrincipals) // fails only for a size < 1
	return &principals{Cache: c, now: time.Now}
}

type principalEntry struct {
	p     *authz.Principal
	until time.Time
	lists *listMemo // shared by the requests of this principal
}

// listMemo remembers which items of each list a principal may see, for
// one catalog and one policy set: list decisions take no arguments, so
// they are the same until one of those changes.
type listMemo struct {
	mu sync.Mutex // guards m
	m  map[authz.Action]memoEntry
}

type memoEntry struct {
	pub     *published
	version any
	allowed []bool // by item index
}

const principalTTL = 5 * time.Second

// principal returns the prepared principal of the request's caller.
func (g *Gateway) principal(ctx context.Context) (*authz.Principal, error) {
	e, err := g.principalEntry(ctx)
	return e.p, err
}

func (g *Gateway) principalEntry(ctx context.Context) (principalEntry, error) {
	id := identity.From(ctx)
	now := g.principals.now()
	e, ok := g.principals.Get(id)
	if ok && now.Before(e.until) {
		return e, nil
	}
	claims, err := g.opts.Claims(ctx, id)
	if err != nil {
		g.logger.Error("resolving the caller's claims for authorization failed; the request is refused", "sub", id.Subject, "error", err)
		return principalEntry{}, errAuthzUnavailable
	}
	subject := id.Subject
	if subject == "" {
		subject = "anonymous"
	}
	prev := e
	e = principalEntry{p: g.opts.Authorizer.Principal(subject, claims), until: now.Add(principalTTL),
		lists: &listMemo{m: map[authz.Action]memoEntry{}}}
	if ok && e.p.Same(prev.p) {
		// The claims did not change: the list decisions made for the
		// expired entry still hold (the memo checks catalog and policies
		// itself), so a long-lived caller's lists are not all decided
		// again every principalTTL.
		e.lists = prev.lists
	}
	g.principals.Add(id, e)
	return e, nil
}

// authorize decides one item for the caller: nil if allowed, else the
// error a missing item gets (a denied item and a missing one look the same
// to the client). t nil means the item is not in the catalog; kind (Tool,
// Prompt, Resource) and name name it in debug logs and in that error.
// args are the raw arguments of a call (nil for none). Callers check that
// there is an authorizer first.
func (g *Gateway) authorize(ctx context.Context, t *authz.Target, action authz.Action, kind, name string, args json.RawMessage, op string) error {
	if t != nil {
		p, err := g.principal(ctx)
		if err != nil {
			return err
		}
		start := g.opts.Telemetry.Now()
		d := g.opts.Authorizer.Decide(p, t, authz.ArgumentsOf(args), op)
		if g.observed() {
			g.observeDecision(ctx, start, d, p, action, kind, name, args)
		}
		g.debugExplain(ctx, d, p, action, kind, name)
		if d.Allowed {
			return nil
		}
	}
	if kind == "Resource" {
		return mcp.ResourceNotFoundError(name)
	}
	return unknown(strings.ToLower(kind), name)
}

// debugExplain logs a decision at debug level. The resource's display
// name (Vmcp::Tool::"name") is built only then, not on every call.
func (g *Gateway) debugExplain(ctx context.Context, d authz.Decision, p *authz.Principal, action authz.Action, kind, name string) {
	if !g.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	e := g.opts.Authorizer.Explain(d, p, action, "Vmcp::"+kind+`::"`+name+`"`, false)
	g.logger.Debug("authorization decision", "decision", e.Decision, "principal", e.Principal, "action", e.Action,
		"resource", e.Resource, "reason", e.Reason, "claims", e.Claims)
}

// mayList decides the list gate (action is one of the list actions); a
// denied gate gives the client an empty list, logged at WARN.
func (g *Gateway) mayList(ctx context.Context, p *authz.Principal, action authz.Action, op string) bool {
	a := g.opts.Authorizer
	start := g.opts.Telemetry.Now()
	d := a.DecideList(p, action, op)
	if g.observed() {
		g.observeDecision(ctx, start, d, p, action, "Server", g.opts.Name, nil)
	}
	if !d.Allowed {
		ex := a.Explain(d, p, action, "the virtual server", false)
		g.logger.Warn("listing denied by policy: the client gets an empty list", "principal", ex.Principal, "action", ex.Action, "reason", ex.Reason)
	}
	return d.Allowed
}

// filter returns the items (sorted by key) after cursor that the caller
// may use, one page of them, and the next cursor. Without an authorizer
// it is plain pagination.
func filter[T any](g *Gateway, ctx context.Context, pub *published, items []T, key func(T) string, target func(T) *authz.Target,
	action, listAction authz.Action, op, cursor string) ([]T, string, error) {
	a := g.opts.Authorizer
	if a == nil {
		return paginate(items, key, cursor, g.opts.PageSize)
	}
	e, err := g.principalEntry(ctx)
	if err != nil {
		return nil, "", err
	}
	if !g.mayList(ctx, e.p, listAction, op) {
		return []T{}, "", nil
	}
	allowed := allowedItems(g, e, pub, items, target, action, op)
	start, err := startAfter(items, key, cursor)
	if err != nil {
		return nil, "", err
	}
	page := make([]T, 0, min(g.opts.PageSize, len(items)-start))
	for i := start; i < len(items); i++ {
		if !allowed[i] {
			continue
		}
		if len(page) == g.opts.PageSize {
			return page, encodeCursor(key(page[len(page)-1])), nil
		}
		page = append(page, items[i])
	}
	return page, "", nil
}

// allowedItems decides every item of a list for the principal, or reuses
// the decisions made for the same catalog and policies. If every item
// failed to evaluate, it says so at ERROR: an empty list is never silent.
func allowedItems[T any](g *Gateway, e principalEntry, pub *published, items []T, target func(T) *authz.Target, action authz.Action, op string) []bool {
	a := g.opts.Authorizer
	version := a.Version()
	e.lists.mu.Lock()
	m, ok := e.lists.m[action]
	e.lists.mu.Unlock()
	if ok && m.pub == pub && m.version == version {
		return m.allowed
	}
	allowed := make([]bool, len(items))
	var failed int
	var first authz.EvalError
	for i, it := range items {
		d := a.Decide(e.p, target(it), nil, op)
		allowed[i] = d.Allowed
		if len(d.Errors) > 0 {
			if failed == 0 {
				first = d.Errors[0]
			}
			failed++
		}
	}
	if failed > 0 && failed == len(items) {
		g.logger.Error("every item of a list failed policy evaluation: the client gets an empty list", "operation", op,
			"items", len(items), "policy", first.Policy, "position", first.Position, "error", first.Message,
			"claims", e.p.Claims.Names())
	}
	e.lists.mu.Lock()
	e.lists.m[action] = memoEntry{pub: pub, version: version, allowed: allowed}
	e.lists.mu.Unlock()
	return allowed
}
