// Package app assembles a running gateway from a [config.Config]: the
// backend set, the frontend, and the HTTP server with its routes. It is the
// composition root shared by cmd/vmcp and the end-to-end tests; it holds
// wiring only.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmcp-dev/vmcp/internal/audit"
	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/authz"
	"github.com/vmcp-dev/vmcp/internal/backend"
	"github.com/vmcp-dev/vmcp/internal/backendauth"
	"github.com/vmcp-dev/vmcp/internal/config"
	"github.com/vmcp-dev/vmcp/internal/frontend"
	"github.com/vmcp-dev/vmcp/internal/gctune"
	"github.com/vmcp-dev/vmcp/internal/router"
	"github.com/vmcp-dev/vmcp/internal/telemetry"
	"github.com/vmcp-dev/vmcp/internal/toolsearch"
)

// Version is vmcp's version, set at build time.
var Version = "0.1.0-dev"

// Options tune an [App] beyond its configuration, for tests.
type Options struct {
	// Logger receives every log record. Default: discard.
	Logger *slog.Logger
	// HealthInterval overrides the configured health check interval.
	HealthInterval time.Duration
	// MinBackoff overrides the first reconnection delay (default 500ms).
	MinBackoff time.Duration
	// Listen overrides server.listen.
	Listen string
	// StateDir overrides storage.stateDir (the --state-dir flag).
	StateDir string
}

// App is one gateway process.
type App struct {
	cfg        *config.Config
	opts       Options
	logger     *slog.Logger
	backends   *backend.Set
	gateway    *frontend.Gateway
	server     *http.Server
	ln         net.Listener
	authServer *authserver.Server
	authorizer *authz.Authorizer
	store      *openedStore         // nil without an authorization server
	searcher   *toolsearch.Searcher // nil unless tool search is on
	exchanges  []exchange           // the backends' token exchanges, for metrics
	telemetry  *telemetry.Telemetry // nil: request metrics, tracing and the access log off
	audit      *audit.Log           // nil: off
	auditFile  io.Closer            // the audit log's file, if any
	metrics    *http.Server         // on server.metricsListen; nil: /metrics is on the main listener
	metricsLn  net.Listener
	cancel     context.CancelFunc
	running    sync.WaitGroup // the goroutines Start started, besides the server's
	served     chan error
	release    gctune.Releaser // of large answers' memory
}

// New binds the listen address (so that a busy port is reported before
// anything starts) and wires a gateway for cfg. Nothing runs until
// [App.Start].
func New(cfg *config.Config, opts *Options) (*App, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := &App{cfg: cfg, opts: o, logger: o.Logger, served: make(chan error, 1)}
	ln, err := net.Listen("tcp", cmp.Or(o.Listen, cfg.Server.Listen))
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	a.ln = ln
	// mux serves everything but the MCP endpoint (which makes its own
	// edge checks); every route of it gets the endpoint's Host check.
	mux := http.NewServeMux()
	authenticate, err := a.setupAuth(mux)
	if err != nil {
		ln.Close()
		a.closeStore()
		return nil, err
	}
	authorizer, err := NewAuthorizer(cfg, &authz.Options{Logger: o.Logger})
	if err != nil {
		ln.Close()
		a.closeStore()
		return nil, err
	}
	a.authorizer = authorizer
	if a.store == nil && a.cfg.Storage != nil && a.cfg.Storage.Type == config.StorageRedis {
		// No authorization server keeps its state here, but Redis still
		// shares the MCP sessions among the replicas.
		st, err := a.openStore(a.cfg.Storage)
		if err != nil {
			ln.Close()
			return nil, err
		}
		a.store = st
	}
	var claims frontend.ClaimsFunc
	if authorizer != nil {
		claims = a.claimsFunc()
	}
	search, searcher, err := a.toolSearch()
	if err != nil {
		ln.Close()
		a.closeStore()
		return nil, err
	}
	a.searcher = searcher
	var gw *frontend.Gateway
	fh := cfg.Config.Operational.FailureHandling
	specs, err := a.backendSpecs()
	if err != nil {
		ln.Close()
		a.closeStore()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	if a.telemetry, err = a.newTelemetry(reg); err == nil {
		a.audit, a.auditFile, err = a.newAudit(reg)
	}
	if err != nil {
		ln.Close()
		a.closeStore()
		_ = a.stopTelemetry(context.Background())
		return nil, err
	}
	if in := cfg.IncomingAuth; in.Type != config.AuthAnonymous {
		authenticate = a.telemetry.Authentication(authenticate)
	}
	var hc *http.Client
	if a.telemetry.Tracing() {
		// Calls carry their span's traceparent to the backend.
		hc = backend.NewHTTPClient()
		hc.Transport = a.telemetry.Transport(hc.Transport)
	}
	a.backends = backend.NewSet(specs, &backend.Options{
		Logger:             o.Logger,
		HTTPClient:         hc,
		ClientInfo:         &mcp.Implementation{Name: "vmcp", Version: Version},
		ConnectTimeout:     cfg.Config.Operational.Timeouts.Connect.D(),
		HealthInterval:     cmp.Or(o.HealthInterval, fh.HealthCheckInterval.D()),
		UnhealthyThreshold: fh.UnhealthyThreshold,
		MinBackoff:         o.MinBackoff,
		MaxResultBytes:     int(cfg.Server.MaxResultBytes),
		OnLargeAnswer:      a.release.Large,
		HideEnv:            cfg.SecretEnvNames(),
		OnChange:           func() { gw.BackendsChanged() },
		OnResourceUpdated: func(ctx context.Context, name string, p *mcp.ResourceUpdatedNotificationParams) {
			gw.ResourceUpdated(ctx, name, p)
		},
	})
	gw = frontend.New(a.backends, &frontend.Options{
		Name:                    cfg.Name,
		Version:                 Version,
		Logger:                  o.Logger,
		Aggregation:             aggregation(cfg),
		AllowedOrigins:          cfg.Server.AllowedOrigins,
		MaxRequestBytes:         cfg.Server.MaxRequestBytes,
		PageSize:                cfg.Server.PageSize,
		SessionIdleTimeout:      cfg.Server.SessionIdleTimeout.D(),
		MaxSessions:             cfg.Server.MaxSessions,
		MaxSessionsPerPrincipal: cfg.Server.MaxSessionsPerPrincipal,
		AllowedHosts:            publicHosts(cfg),
		Authenticate:            authenticate,
		Authorizer:              authorizer,
		Claims:                  claims,
		Dependencies:            a.dependencies(),
		ToolSearch:              search,
		LargeAnswers:            &a.release,
		Telemetry:               a.telemetry,
		Audit:                   a.audit,
		Sessions:                a.sessionStore(),
	})
	a.gateway = gw
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", gw.ServeReady)
	a.registerMetrics(reg)
	if a.metrics, a.metricsLn, err = a.metricsServer(reg, gw.GuardHost); err != nil {
		ln.Close()
		a.backends.Close()
		a.closeStore()
		_ = a.stopTelemetry(context.Background())
		return nil, err
	}
	if a.metrics == nil {
		mux.Handle("GET /metrics", metricsHandler(reg))
	}
	root := http.NewServeMux()
	root.Handle("/mcp", a.telemetry.Edge(gw))
	root.Handle("/", gw.GuardHost(mux))
	srv := &cfg.Server
	a.server = &http.Server{
		Handler: root,
		// Bounds on what a client may hold without sending anything
		// (docs/operations.md, limits). ReadTimeout covers a request's
		// headers and body only: net/http lifts it once the body is read,
		// so event streams stay open. No WriteTimeout, for the same
		// reason; a detached stream bounds its own writes (detach.go).
		ReadHeaderTimeout: srv.ReadHeaderTimeout.D(),
		ReadTimeout:       srv.ReadTimeout.D(),
		IdleTimeout:       srv.IdleTimeout.D(),
		MaxHeaderBytes:    srv.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
	}
	if !cfg.Server.DisableH2C {
		// Clients and proxies that speak HTTP/2 without TLS share one
		// connection among their streams: an idle session's open GET
		// stream then costs no connection of its own (docs/benchmarks.md).
		a.server.Protocols = new(http.Protocols)
		a.server.Protocols.SetHTTP1(true)
		a.server.Protocols.SetUnencryptedHTTP2(true)
	}
	return a, nil
}

// publicHosts are the host names, besides loopback ones, that requests to a
// loopback listener may carry: those of server.publicURL and of the
// authorization server's issuer (a proxy on the same machine may pass them
// on).
func publicHosts(cfg *config.Config) []string {
	urls := []string{cfg.Server.PublicURL}
	if as := cfg.AuthServerConfig; as != nil {
		urls = append(urls, as.Issuer)
	}
	var hosts []string
	for _, s := range urls {
		if u, err := url.Parse(s); err == nil && u.Hostname() != "" {
			hosts = append(hosts, u.Hostname())
		}
	}
	return hosts
}

func (a *App) backendSpecs() ([]backend.Spec, error) {
	cfg := a.cfg
	specs := make([]backend.Spec, len(cfg.Backends))
	for i, b := range cfg.Backends {
		auth, err := a.backendAuth(&b)
		if err != nil {
			return nil, fmt.Errorf("backend %q: outgoing authentication: %w", b.Name, err)
		}
		if te, ok := auth.(*backendauth.TokenExchange); ok {
			a.exchanges = append(a.exchanges, exchange{backend: b.Name, te: te})
		}
		specs[i] = backend.Spec{
			Name: b.Name, Transport: b.Transport, URL: b.URL,
			Command: b.Command, Args: b.Args, Env: b.Env, Cwd: b.Cwd,
			CallTimeout: cfg.CallTimeout(b.Name), Auth: auth,
		}
	}
	return specs, nil
}

func aggregation(cfg *config.Config) *router.Options {
	a := cfg.Config.Aggregation
	opts := &router.Options{
		Strategy:      a.ConflictResolution,
		PrefixFormat:  a.ConflictResolutionConfig.PrefixFormat,
		PriorityOrder: a.ConflictResolutionConfig.PriorityOrder,
		Workloads:     map[string]router.Workload{},
	}
	for _, w := range a.Tools {
		rw := router.Workload{Filter: w.Filter, Overrides: map[string]router.Override{}}
		for name, o := range w.Overrides {
			rw.Overrides[name] = router.Override{Name: o.Name, Description: o.Description}
		}
		opts.Workloads[w.Workload] = rw
	}
	return opts
}

// URL returns the MCP endpoint URL: server.publicURL, or the address
// listened on.
func (a *App) URL() string {
	if a.cfg.Server.PublicURL != "" {
		return a.cfg.Server.PublicURL
	}
	return "http://" + a.ln.Addr().String() + "/mcp"
}

// AuthServer returns the embedded authorization server, or nil.
func (a *App) AuthServer() *authserver.Server { return a.authServer }

// Gateway returns the frontend, for tests.
func (a *App) Gateway() *frontend.Gateway { return a.gateway }

// Backends returns the backend set, for tests.
func (a *App) Backends() *backend.Set { return a.backends }

// Start connects the backends (in the background) and serves HTTP on the
// listener from [App.Listen].
func (a *App) Start() {
	for _, n := range a.cfg.Notes() {
		a.logger.Info("config note", "note", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.backends.Start()
	a.running.Go(func() { a.gateway.Run(ctx) })
	if a.authorizer != nil {
		a.running.Go(func() { a.authorizer.Watch(ctx) })
	}
	if a.searcher != nil {
		go a.searcher.Run(ctx)
	}
	go func() { a.served <- a.server.Serve(a.ln) }()
	if a.metrics != nil {
		go func() {
			if err := a.metrics.Serve(a.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.logger.Error("serving metrics stopped", "error", err)
			}
		}()
	}
}

// Shutdown stops serving: no new connections, calls in flight may finish
// until ctx is done (then they are cancelled), open streams and sessions
// are closed, and every backend connection and stdio child is stopped. It
// returns when every goroutine the App started has stopped.
func (a *App) Shutdown(ctx context.Context) error {
	a.logger.Info("shutting down")
	a.server.SetKeepAlivesEnabled(false)
	shut := make(chan error, 1)
	go func() { shut <- a.server.Shutdown(ctx) }() // closes the listener at once
	a.gateway.Drain(ctx)
	_ = a.server.Close() // long-lived SSE streams end here
	a.gateway.CloseStreams()
	<-shut
	a.cancel()
	a.gateway.CloseSessions()
	a.running.Wait()
	a.backends.Close()
	a.release.Stop()
	a.closeStore()
	if a.metrics != nil {
		_ = a.metrics.Close()
	}
	if err := a.stopTelemetry(ctx); err != nil {
		a.logger.Warn("stopping telemetry", "error", err)
	}
	if err := <-a.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	a.logger.Info("stopped")
	return nil
}
