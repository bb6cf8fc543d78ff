package telemetry

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the request metrics.
type metrics struct {
	requests *prometheus.CounterVec   // vmcp_requests_total{method,outcome}
	duration *prometheus.HistogramVec // vmcp_request_duration_seconds{method}
	calls    *prometheus.CounterVec   // vmcp_backend_calls_total{backend,method,tool,outcome}
	callTime *prometheus.HistogramVec // vmcp_backend_call_duration_seconds{backend,method,tool}
	http     *prometheus.CounterVec   // vmcp_http_requests_total{method,code}
	in, out  prometheus.Counter       // vmcp_http_{received,sent}_bytes_total
}

// latencyBuckets suit a gateway: from a fast path's 100 µs to a slow
// tool's minute.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmcp_requests_total",
			Help: "MCP requests served, by method and outcome (ok, tool_error, error, denied, cancelled)."},
			[]string{"method", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vmcp_request_duration_seconds",
			Help: "Time to answer an MCP request (a POST), from its arrival to the end of its answer, by method.", Buckets: latencyBuckets},
			[]string{"method"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmcp_backend_calls_total",
			Help: "Requests sent to backends, by backend, method, tool (tools/call only) and outcome (ok, tool_error, error, failed, cancelled)."},
			[]string{"backend", "method", "tool", "outcome"}),
		callTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vmcp_backend_call_duration_seconds",
			Help: "Time a backend took to answer a request, by backend, method and tool (tools/call only).", Buckets: latencyBuckets},
			[]string{"backend", "method", "tool"}),
		http: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmcp_http_requests_total",
			Help: "HTTP requests to the MCP endpoint, by HTTP method and status code."}, []string{"method", "code"}),
		in: prometheus.NewCounter(prometheus.CounterOpts{Name: "vmcp_http_received_bytes_total",
			Help: "Bytes of request bodies read at the MCP endpoint."}),
		out: prometheus.NewCounter(prometheus.CounterOpts{Name: "vmcp_http_sent_bytes_total",
			Help: "Bytes of response bodies written at the MCP endpoint (a detached event stream's only until it is detached)."}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.calls, m.callTime, m.http, m.in, m.out} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Other is the label value of an MCP method vmcp does not know, and of an
// HTTP method other than GET, POST, DELETE and OPTIONS.
const Other = "other"

// methods are the MCP methods that are label values as they are.
var methods = func() map[string]string {
	out := map[string]string{}
	for _, m := range []string{
		"initialize", "ping", "server/discover", "logging/setLevel", "completion/complete",
		"tools/list", "tools/call", "prompts/list", "prompts/get",
		"resources/list", "resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe",
		"notifications/initialized", "notifications/cancelled", "notifications/progress", "notifications/roots/list_changed",
	} {
		out[m] = m
	}
	return out
}()

// Method returns the label value of an MCP method: itself if vmcp knows
// it, else [Other]. Clients choose method names; labels must stay bounded.
func Method(m string) string {
	if v, ok := methods[m]; ok {
		return v
	}
	return Other
}

func httpMethod(m string) string {
	switch m {
	case "GET", "POST", "DELETE", "OPTIONS":
		return m
	}
	return Other
}

// codes are the status codes as label values, made once.
var statusCodes = func() (out [600]string) {
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}()

func code(status int) string {
	if status >= 0 && status < len(statusCodes) {
		return statusCodes[status]
	}
	return Other
}
