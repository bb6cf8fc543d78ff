package app

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vmcp-dev/vmcp/internal/backend"
)

// metricsHandler serves Prometheus metrics: authorization decisions and
// evaluation errors, backend states and restarts, sessions and refused
// initializes, and the Go runtime's.
func (a *App) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
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
		counter := func(name, help string, labels prometheus.Labels, f func() int64) prometheus.Collector {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
				func() float64 { return float64(f()) })
		}
		reg.MustRegister(
			counter("vmcp_authz_decisions_total", "Policy decisions made.", prometheus.Labels{"decision": "allow"},
				func() int64 { return az.Stats().Allowed }),
			counter("vmcp_authz_decisions_total", "Policy decisions made.", prometheus.Labels{"decision": "deny"},
				func() int64 { return az.Stats().Denied }),
			counter("vmcp_authz_evaluation_errors_total", "Policy evaluations that failed (a failing permit grants nothing, a failing forbid denies).", nil,
				func() int64 { return az.Stats().EvaluationErrors }),
			counter("vmcp_authz_reload_errors_total", "Policy file changes that did not load (the previous policies were kept).", nil,
				func() int64 { return az.Stats().ReloadErrors }),
		)
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// backendCollector reports each backend's state and restarts.
type backendCollector struct{ set *backend.Set }

var (
	backendState = prometheus.NewDesc("vmcp_backend_state", "1 for the backend's current state.",
		[]string{"backend", "state"}, nil)
	backendRestarts = prometheus.NewDesc("vmcp_backend_restarts_total", "Times the backend was lost and reconnected.",
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
