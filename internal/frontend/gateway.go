package frontend

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/audit"
	"github.com/vmcp-dev/vmcp/internal/authz"
	"github.com/vmcp-dev/vmcp/internal/backend"
	"github.com/vmcp-dev/vmcp/internal/frontend/mirror"
	"github.com/vmcp-dev/vmcp/internal/frontend/session"
	"github.com/vmcp-dev/vmcp/internal/identity"
	"github.com/vmcp-dev/vmcp/internal/mcpsession"
	"github.com/vmcp-dev/vmcp/internal/router"
	"github.com/vmcp-dev/vmcp/internal/telemetry"
	"github.com/vmcp-dev/vmcp/internal/toolsearch"
)

// Options configure a [Gateway]. Zero fields mean their documented default.
type Options struct {
	// Name and Version are the server info clients see. Default: "vmcp".
	Name, Version string
	// Instructions are sent to clients at initialization.
	Instructions string
	// Logger receives request-edge and lifecycle events. Default: discard.
	Logger *slog.Logger
	// Aggregation configures how the catalog is merged.
	Aggregation *router.Options
	// AllowedOrigins are browser origins allowed besides loopback ones.
	AllowedOrigins []string
	// AllowedHosts are host names, besides loopback ones, that a request
	// to a loopback listener may name in its Host header (for a proxy on
	// the same machine that passes the public name on). Default: none.
	AllowedHosts []string
	// MaxRequestBytes bounds request bodies. Default: 4 MiB.
	MaxRequestBytes int64
	// PageSize is the number of items per list page. Default: 1000.
	PageSize int
	// SessionIdleTimeout closes idle sessions. Default: 30m.
	SessionIdleTimeout time.Duration
	// MaxSessions bounds the 2025-11-25 sessions open at once; an
	// initialize beyond it is refused. Default: 10000.
	MaxSessions int
	// MaxSessionsPerPrincipal bounds the sessions of one authenticated
	// user. Default: 100.
	MaxSessionsPerPrincipal int
	// RebuildDelay gathers bursts of backend changes into one catalog
	// rebuild. Default: 20ms.
	RebuildDelay time.Duration
	// Authorizer decides with Cedar policies what each caller may list
	// and call. Default: none (everything is allowed).
	Authorizer *authz.Authorizer
	// Claims resolves the claims policies see; required with Authorizer.
	Claims ClaimsFunc
	// ToolSearch, if set, puts the gateway in search mode: clients list
	// find_tool and call_tool (and the always-listed tools) instead of the
	// catalog (toolsearch.go). Default: nil, every tool is listed.
	ToolSearch *toolsearch.Mode
	// LargeAnswers, if set, is told when a request during which a large
	// backend answer came in has been answered, so that its memory can be
	// handed back then (gctune.Releaser; backend.Options.OnLargeAnswer
	// counts the answers). Default: nil.
	LargeAnswers LargeAnswers
	// Authenticate is the authentication middleware of the endpoint: it
	// answers unauthenticated requests itself and puts the caller's
	// identity in the request context ([identity.With]). Default: none
	// (every caller is anonymous).
	Authenticate func(http.Handler) http.Handler
	// Dependencies are checked by readiness besides the backends (the
	// authorization server's storage, say): one that fails makes the
	// gateway not ready, and readiness says why.
	Dependencies []Dependency
	// Telemetry gets the gateway's requests, decisions and backend calls
	// (observe.go). Default: nil, off.
	Telemetry *telemetry.Telemetry
	// Audit gets a record of every decision and backend call. Default:
	// nil, off.
	Audit *audit.Log
	// Sessions, if set, shares the 2025-11-25 sessions with every
	// replica on the same store (shared.go): any of them serves any
	// session. Default: nil, sessions live in this process.
	Sessions mcpsession.Store
}

// Dependency is something the gateway needs to serve, checked by
// readiness.
type Dependency struct {
	Name string
	// Check returns nil when the dependency can serve; its error is shown
	// by readiness, so it must not carry secrets.
	Check func(ctx context.Context) error
}

// Gateway serves the aggregated catalog of a backend set.
type Gateway struct {
	opts     Options
	logger   *slog.Logger
	backends *backend.Set

	// The SDK: one server, a stateful handler (2025-11-25 sessions) and a
	// stateless one (2026-07-28) over it; the *Authed ones give the SDK the
	// caller's identity (identity.go); mirror keeps its registrations in
	// line with the catalog (package mirror), under syncMu with the rest
	// of a rebuild.
	server                          *mcp.Server
	stateful, stateless             *mcp.StreamableHTTPHandler
	statefulAuthed, statelessAuthed http.Handler
	serverInfo                      json.RawMessage // the server's name and version, for stateless results
	syncMu                          sync.Mutex
	mirror                          *mirror.Mirror

	// The edge (edge.go, http.go).
	endpoint http.Handler    // authentication, then the MCP endpoint
	origins  map[string]bool // allowed origins besides loopback, lower case
	hosts    map[string]bool // allowed Host names besides loopback ones, lower case

	// The catalog: what is published to the request paths, prepared for
	// decisions; rebuild asks Run for a new one; built is set once the
	// first was built after every backend's first attempt.
	pub        atomic.Pointer[published]
	principals *principals // prepared principals per caller (authorize.go)
	built      atomic.Bool
	rebuild    chan struct{}

	// Calls in flight, for drain (handlers.go): stopCtx is cancelled to
	// cancel those still running at shutdown.
	stopCtx context.Context
	stop    context.CancelFunc
	calls   callTracker

	// Detached GET streams (detach.go): streamsCtx ends them; streams
	// counts their handlers; streamsMu orders a new stream's count before
	// CloseStreams' wait.
	streamsMu    sync.Mutex
	streamsCtx   context.Context
	closeStreams context.CancelFunc
	streams      sync.WaitGroup

	// Client sessions as backends see them (peer.go), and their resource
	// subscriptions.
	peersMu sync.Mutex // guards peers
	peers   map[*mcp.ServerSession]*peer
	peersWG sync.WaitGroup // the goroutines that watch the peers' sessions (keepPeer)
	subs    subscriptions

	// The 2025-11-25 sessions (package session, sessions.go).
	sessions      session.Store
	sessionWarned atomic.Int64 // unix seconds of the last session-limit warning
	// unshared are sessions whose initialize could not be stored, by ID:
	// serveStateful ends each once the initialize's error answer is out.
	unshared sync.Map
}

// LargeAnswers counts large backend answers and is told when a request
// that saw one has been answered.
type LargeAnswers interface {
	Answers() uint64
	Served()
}

// New returns a gateway over backends. Call [Gateway.Run] to keep its
// catalog in step with the backends.
func New(backends *backend.Set, opts *Options) *Gateway {
	g := &Gateway{backends: backends, rebuild: make(chan struct{}, 1), peers: map[*mcp.ServerSession]*peer{}}
	if opts != nil {
		g.opts = *opts
	}
	o := &g.opts
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	g.logger = o.Logger
	if o.Name == "" {
		o.Name = "vmcp"
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = 4 << 20
	}
	if o.PageSize <= 0 {
		o.PageSize = 1000
	}
	if o.SessionIdleTimeout <= 0 {
		o.SessionIdleTimeout = 30 * time.Minute
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 10000
	}
	if o.MaxSessionsPerPrincipal <= 0 {
		o.MaxSessionsPerPrincipal = 100
	}
	table := session.NewTable(o.MaxSessions, o.MaxSessionsPerPrincipal)
	if o.Sessions != nil {
		table.Keyed()
	}
	g.sessions = table
	if o.RebuildDelay <= 0 {
		o.RebuildDelay = 20 * time.Millisecond
	}
	g.serverInfo, _ = json.Marshal(mcp.Implementation{Name: o.Name, Version: o.Version})
	g.origins = map[string]bool{}
	for _, o := range o.AllowedOrigins {
		g.origins[strings.TrimSuffix(strings.ToLower(o), "/")] = true
	}
	g.hosts = map[string]bool{}
	for _, h := range o.AllowedHosts {
		g.hosts[strings.ToLower(hostOf(h))] = true
	}
	g.stopCtx, g.stop = context.WithCancel(context.Background())
	g.streamsCtx, g.closeStreams = context.WithCancel(context.Background())
	g.principals = newPrincipals()
	g.publish(router.Build(nil, o.Aggregation))
	sdkLogger := quiet(o.Logger)
	g.server = g.newServer(sdkLogger)
	g.mirror = mirror.New(g.server, mirror.Handlers{Tool: g.callTool, Prompt: g.getPrompt, Resource: g.readResource, Template: g.readTemplate}, g.logger)
	g.stateful = mcp.NewStreamableHTTPHandler(g.getServer, &mcp.StreamableHTTPOptions{
		// No SessionTimeout: the session table expires idle sessions
		// (package session), since the SDK does not see every call.
		MaxRequestBodyBytes: o.MaxRequestBytes,
		Logger:              sdkLogger,
		// The edge makes the Host check for every request (edge.go).
		DisableLocalhostProtection: true,
	})
	g.stateless = mcp.NewStreamableHTTPHandler(g.getServer, &mcp.StreamableHTTPOptions{
		Stateless:                    true,
		MaxRequestBodyBytes:          o.MaxRequestBytes,
		PropagateRequestCancellation: true,
		Logger:                       sdkLogger,
		DisableLocalhostProtection:   true,
	})
	g.wrapTokenInfo()
	g.endpoint = http.HandlerFunc(g.serveEndpoint)
	if o.Authenticate != nil {
		g.endpoint = o.Authenticate(g.endpoint)
	}
	return g
}

// quiet returns the logger for the SDK: it logs per-session events at info
// level, which is noise on the request path unless debugging, and logs some
// clients' mistakes, which it answers itself, at error level, which is
// wrong for a server (sdkClientFaults: logged at debug).
func quiet(l *slog.Logger) *slog.Logger {
	min := slog.LevelWarn
	if l.Enabled(context.Background(), slog.LevelDebug) {
		min = slog.LevelDebug
	}
	return slog.New(sdkLog{l.Handler(), min})
}

// sdkClientFaults are the messages of the SDK's error records about a
// client's request, which it answers with an error of its own.
var sdkClientFaults = map[string]bool{
	"method removed in the new protocol": true, // a 2026-07-28 ping, logging/setLevel, resources/subscribe…
}

type sdkLog struct {
	slog.Handler
	min slog.Level
}

func (h sdkLog) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h sdkLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && sdkClientFaults[r.Message] {
		r.Level = slog.LevelDebug
		if !h.Enabled(ctx, r.Level) {
			return nil
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h sdkLog) WithAttrs(a []slog.Attr) slog.Handler { return sdkLog{h.Handler.WithAttrs(a), h.min} }
func (h sdkLog) WithGroup(n string) slog.Handler      { return sdkLog{h.Handler.WithGroup(n), h.min} }

func (g *Gateway) getServer(*http.Request) *mcp.Server { return g.server }

// newServer builds the mcp.Server. Capabilities are declared up front, since
// the catalog may be empty when the first client arrives.
func (g *Gateway) newServer(logger *slog.Logger) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: g.opts.Name, Version: g.opts.Version}, &mcp.ServerOptions{
		Instructions:       g.opts.Instructions,
		Logger:             logger,
		PageSize:           g.opts.PageSize,
		CompletionHandler:  g.complete,
		SubscribeHandler:   g.subscribe,
		UnsubscribeHandler: g.unsubscribe,
		Capabilities: &mcp.ServerCapabilities{
			Logging:   &mcp.LoggingCapabilities{},
			Tools:     &mcp.ToolCapabilities{ListChanged: true},
			Prompts:   &mcp.PromptCapabilities{ListChanged: true},
			Resources: &mcp.ResourceCapabilities{ListChanged: true, Subscribe: true},
		},
	})
	s.AddReceivingMiddleware(g.middleware)
	return s
}

// Catalog returns the current catalog.
func (g *Gateway) Catalog() *router.Catalog { return g.pub.Load().cat }

// published is a catalog with its items prepared for policy decisions;
// the two are swapped together.
type published struct {
	cat     *router.Catalog
	targets *targets // nil without an authorizer
	// offline maps the tools of backends that are down to their backend,
	// so that a call to one says the backend is unavailable.
	offline map[string]string
	// wire holds each tool's definition as encoded for tools/list.
	wire map[*router.Tool]json.RawMessage
	// search indexes cat.Tools in search mode (nil otherwise).
	search *toolsearch.Index
}

func (g *Gateway) publish(c *router.Catalog) {
	p := &published{cat: c, offline: g.offlineTools(c), wire: wireTools(c)}
	if g.opts.Authorizer != nil {
		p.targets = g.buildTargets(c)
	}
	if g.opts.ToolSearch != nil {
		p.search = g.opts.ToolSearch.Index(c.Tools)
	}
	g.pub.Store(p)
}

// BackendsChanged tells the gateway to rebuild its catalog soon. It does not
// block; pass it as [backend.Options.OnChange].
func (g *Gateway) BackendsChanged() {
	select {
	case g.rebuild <- struct{}{}:
	default:
	}
}

// Run keeps the catalog in step with the backends, and expires idle
// sessions, until ctx is done; it returns when everything it started has
// stopped.
func (g *Gateway) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait() // Run returns only when the goroutines it started have
	wg.Go(func() { g.expireSessions(ctx) })
	if g.opts.Sessions != nil {
		defer g.opts.Sessions.WatchSessions(g.sessionChanged)()
	}
	attempted := make(chan struct{})
	wg.Go(func() {
		if g.backends.WaitAttempted(ctx) == nil {
			close(attempted)
		}
	})
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-attempted:
			attempted = nil
			g.sync()
			g.built.Store(true)
		case <-g.rebuild:
			if timer == nil {
				timer = time.After(g.opts.RebuildDelay)
			}
		case <-timer:
			timer = nil
			g.sync()
		}
	}
}

// sync rebuilds the catalog and brings the mcp.Server's registrations in
// line with it; the server notifies clients of what changed.
func (g *Gateway) sync() {
	g.syncMu.Lock()
	defer g.syncMu.Unlock()
	old := g.Catalog()
	c := router.Build(g.backends.Inventories(), g.opts.Aggregation)
	for _, t := range c.Tools {
		t.Def = encodedSchemas(t.Def)
	}
	// Publish before registering: registering makes the SDK tell clients
	// the lists changed, and their next list must show the change.
	g.publish(c)
	changed, refused := g.mirror.Apply(c)
	if !refused.Empty() {
		c = c.Without(refused.Tools, refused.Resources, refused.Templates)
		g.publish(c)
	}
	g.reportProblems(old, c)
	if changed {
		g.logger.Info("catalog updated", "tools", len(c.Tools), "resources", len(c.Resources),
			"templates", len(c.Templates), "prompts", len(c.Prompts))
	}
}

func (g *Gateway) reportProblems(old, c *router.Catalog) {
	for _, p := range c.Problems {
		if slices.ContainsFunc(old.Problems, func(q router.Problem) bool { return q.String() == p.String() }) {
			continue
		}
		if p.Severe {
			g.logger.Error("catalog clash", "problem", p.String())
		} else {
			g.logger.Info("catalog note", "problem", p.String())
		}
	}
}

// discover fetches, with the caller's credentials, the lists of backends
// that refuse vmcp's own connection and whose lists are not known yet, and
// rebuilds the catalog before the caller's list is answered.
func (g *Gateway) discover(ctx context.Context, ss *mcp.ServerSession) {
	if identity.From(ctx).IsAnonymous() {
		return
	}
	fetched := false
	for _, b := range g.backends.All() {
		if !b.NeedsUser() {
			continue
		}
		if err := b.Discover(ctx, g.peerFor(ss)); err != nil {
			g.logger.Warn("fetching a backend's lists with the caller's credentials failed", "backend", b.Name(), "error", err)
			continue
		}
		fetched = true
	}
	if fetched {
		g.sync()
	}
}

// offlineTools are the tools of the previous catalog (or already offline)
// whose backend is now down.
func (g *Gateway) offlineTools(c *router.Catalog) map[string]string {
	prev := g.pub.Load()
	if prev == nil {
		return nil
	}
	down := func(name string) bool {
		b := g.backends.Get(name)
		return b != nil && b.Inventory() == nil
	}
	out := map[string]string{}
	for name, b := range prev.offline {
		if c.Tool(name) == nil && down(b) {
			out[name] = b
		}
	}
	for _, t := range prev.cat.Tools {
		if c.Tool(t.Def.Name) == nil && down(t.Backend) {
			out[t.Def.Name] = t.Backend
		}
	}
	return out
}

// Ready reports whether the gateway can serve: the first catalog is built,
// and at least one backend is ready (or none is configured).
func (g *Gateway) Ready() bool {
	if !g.built.Load() {
		return false
	}
	all := g.backends.All()
	if len(all) == 0 {
		return true
	}
	for _, b := range all {
		if b.Inventory() != nil || b.Status().State == backend.StateAuthRequired {
			return true
		}
	}
	return false
}

// Drain waits for calls in flight to finish, at most until ctx is done, then
// cancels those still running and waits for them to return.
func (g *Gateway) Drain(ctx context.Context) {
	done := g.calls.drain()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	g.logger.Warn("cancelling calls still running at shutdown")
	g.stop()
	<-done
}
