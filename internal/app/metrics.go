package app

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/authz"
	"github.com/vmcp-dev/vmcp/internal/backend"
	"github.com/vmcp-dev/vmcp/internal/backendauth"
)

// registerMetrics registers, besides the request metrics of
// internal/telemetry: authorization decisions and evaluation errors,
// backend states and restarts, sessions and refused initializes, upstream
// refreshes, token exchanges, and the Go runtime's. Every metric is listed
// in docs/operations.md.
func (a *App) registerMetrics(reg *prometheus.Registry) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(backendCollector{a.backends})
	gw := a.gateway
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vmcp_sessions", Help: "2025-11-25 sessions open."},
			func() float64 { return float64(gw.SessionStats().Open) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vmcp_sessions_refused_total",
			Help: "Initializes refused by a session limit.", ConstLabels: prometheus.Labels{"limit": "total"}},
			func() float64 { return float64(gw.SessionStats().RefusedTotal) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vmcp_sessions_refused_total",
			Help: "Initializes refused by a session limit.", ConstLabels: prometheus.Labels{"limit": "principal"}},
			func() float64 { return float64(gw.SessionStats().RefusedPrincipal) }),
	)
	if az := a.authorizer; az != nil {
		counter := func(name, help string, f func() int64) prometheus.Collector {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
		}
		reg.MustRegister(authzCollector{az},
			counter("vmcp_authz_evaluation_errors_total", "Policy evaluations that failed (a failing permit grants nothing, a failing forbid denies).",
				func() int64 { return az.Stats().EvaluationErrors }),
			counter("vmcp_authz_reload_errors_total", "Policy file changes that did not load (the previous policies were kept).",
				func() int64 { return az.Stats().ReloadErrors }),
		)
	}
	if s := a.authServer; s != nil {
		reg.MustRegister(refreshCollector{s})
	}
	if len(a.exchanges) > 0 {
		reg.MustRegister(exchangeCollector(a.exchanges))
	}
}

// metricsHandler serves the registry.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// backendCollector reports each backend's state and restarts.
type backendCollector struct{ set *backend.Set }

var (
	backendState = prometheus.NewDesc("vmcp_backend_state", "1 for the backend's current state.",
		[]string{"backend", "state"}, nil)
	backendRestarts = prometheus.NewDesc("vmcp_backend_restarts_total",
		"Times the backend went from ready to down; each is followed by reconnection (a stdio backend: its process is restarted).",
		[]string{"backend"}, nil)
)

func (backendCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- backendState
	ch <- backendRestarts
}

func (c backendCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.set.Statuses() {
		ch <- prometheus.MustNewConstMetric(backendState, prometheus.GaugeValue, 1, s.Name, string(s.State))
		ch <- prometheus.MustNewConstMetric(backendRestarts, prometheus.CounterValue, float64(s.Restarts), s.Name)
	}
}

// authzCollector reports the policy decisions.
type authzCollector struct{ az *authz.Authorizer }

var authzDecisions = prometheus.NewDesc("vmcp_authz_decisions_total",
	"Policy decisions made, by action, decision (allow, deny) and the sources of the caller's claims (token, upstream_access_token, userinfo, id_token, joined by +; none).",
	[]string{"action", "decision", "claim_sources"}, nil)

func (authzCollector) Describe(ch chan<- *prometheus.Desc) { ch <- authzDecisions }

func (c authzCollector) Collect(ch chan<- prometheus.Metric) {
	for _, d := range c.az.DecisionCounts() {
		decision := "deny"
		if d.Allowed {
			decision = "allow"
		}
		ch <- prometheus.MustNewConstMetric(authzDecisions, prometheus.CounterValue, float64(d.N), string(d.Action), decision, d.ClaimSources)
	}
}

// refreshCollector reports upstream token refreshes.
type refreshCollector struct{ s *authserver.Server }

var upstreamRefreshes = prometheus.NewDesc("vmcp_upstream_refreshes_total",
	"Refreshes of users' upstream tokens, by provider and outcome: ok; refused (the provider refused the refresh token: the user must log in again); failed (the provider unreachable or failing, or the store).",
	[]string{"provider", "outcome"}, nil)

func (refreshCollector) Describe(ch chan<- *prometheus.Desc) { ch <- upstreamRefreshes }

func (c refreshCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.s.RefreshStats() {
		ch <- prometheus.MustNewConstMetric(upstreamRefreshes, prometheus.CounterValue, float64(s.OK), s.Provider, "ok")
		ch <- prometheus.MustNewConstMetric(upstreamRefreshes, prometheus.CounterValue, float64(s.Refused), s.Provider, "refused")
		ch <- prometheus.MustNewConstMetric(upstreamRefreshes, prometheus.CounterValue, float64(s.Failed), s.Provider, "failed")
	}
}

// exchange is a backend's token exchange strategy.
type exchange struct {
	backend string
	te      *backendauth.TokenExchange
}

// exchangeCollector reports the token exchanges' cache.
type exchangeCollector []exchange

var tokenExchanges = prometheus.NewDesc("vmcp_token_exchange_total",
	"Outgoing token exchanges (RFC 8693) by backend and result: hit (a cached token served), exchange (a new token obtained: a cache miss), failure (the exchange failed).",
	[]string{"backend", "result"}, nil)

func (exchangeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- tokenExchanges }

func (c exchangeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, e := range c {
		hits, exchanges, fails := e.te.Counts()
		ch <- prometheus.MustNewConstMetric(tokenExchanges, prometheus.CounterValue, float64(hits), e.backend, "hit")
		ch <- prometheus.MustNewConstMetric(tokenExchanges, prometheus.CounterValue, float64(exchanges), e.backend, "exchange")
		ch <- prometheus.MustNewConstMetric(tokenExchanges, prometheus.CounterValue, float64(fails), e.backend, "failure")
	}
}
