package telemetry

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the request metrics. The series a request touches are
// resolved once (by method and outcome, by HTTP method and status code, by
// backend, method and tool) and kept, so that counting is an atomic add,
// not a hash of label values and a lookup under the vec's lock. A series
// is resolved when first counted: series never counted do not appear.
type metrics struct {
	requests *prometheus.CounterVec   // vmcp_requests_total{method,outcome}
	duration *prometheus.HistogramVec // vmcp_request_duration_seconds{method}
	calls    *prometheus.CounterVec   // vmcp_backend_calls_total{backend,method,tool,outcome}
	callTime *prometheus.HistogramVec // vmcp_backend_call_duration_seconds{backend,method,tool}
	http     *prometheus.CounterVec   // vmcp_http_requests_total{method,code}
	in, out  prometheus.Counter       // vmcp_http_{received,sent}_bytes_total

	requestsBy [numMethods][numOutcomes]series[prometheus.Counter]
	durationBy [numMethods]series[prometheus.Observer]
	httpBy     [len(httpMethods)][len(statusCodes) + 1]series[prometheus.Counter] // the last: codes out of range
}

// series is one resolved series of a vec, or nil until first used.
type series[T any] struct{ p atomic.Pointer[T] }

func (s *series[T]) get(resolve func() T) T {
	if p := s.p.Load(); p != nil {
		return *p
	}
	v := resolve()
	s.p.Store(&v)
	return v
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

// request counts a request by method and outcome.
func (m *metrics) request(method methodID, o Outcome) {
	m.requestsBy[method][o].get(func() prometheus.Counter {
		return m.requests.WithLabelValues(methodNames[method], outcomeNames[o])
	}).Inc()
}

// answered observes the time to answer a POST of an MCP method.
func (m *metrics) answered(method methodID, seconds float64) {
	m.durationBy[method].get(func() prometheus.Observer {
		return m.duration.WithLabelValues(methodNames[method])
	}).Observe(seconds)
}

// httpRequest counts an HTTP request by method and status code.
func (m *metrics) httpRequest(method string, status int) {
	hm := httpMethodID(method)
	c := len(statusCodes)
	if status >= 0 && status < len(statusCodes) {
		c = status
	}
	m.httpBy[hm][c].get(func() prometheus.Counter {
		return m.http.WithLabelValues(httpMethods[hm], code(status))
	}).Inc()
}

// callKey names the series of a backend's calls.
type callKey struct{ backend, method, tool string }

// callSeries are a backend call's series, and its span's name.
type callSeries struct {
	name     string // the span's: "method backend"
	outcomes [numOutcomes]series[prometheus.Counter]
	time     series[prometheus.Observer]
}

// callSeriesOf returns the series of backend calls of key, made once per
// key: backend names come from the configuration and tools from the
// catalog, so keys are bounded (as the vecs' series are).
func (t *Telemetry) callSeriesOf(k callKey) *callSeries {
	if v, ok := t.calls.Load(k); ok {
		return v.(*callSeries)
	}
	v, _ := t.calls.LoadOrStore(k, &callSeries{name: k.method + " " + k.backend})
	return v.(*callSeries)
}

func (m *metrics) call(k callKey, s *callSeries, o Outcome, seconds float64) {
	s.outcomes[o].get(func() prometheus.Counter {
		return m.calls.WithLabelValues(k.backend, k.method, k.tool, outcomeNames[o])
	}).Inc()
	s.time.get(func() prometheus.Observer {
		return m.callTime.WithLabelValues(k.backend, k.method, k.tool)
	}).Observe(seconds)
}

// Other is the label value of an MCP method vmcp does not know, and of an
// HTTP method other than GET, POST, DELETE and OPTIONS.
const Other = "other"

// methodID indexes methodNames.
type methodID uint8

// methodNames are the MCP methods that are label values as they are, and
// Other.
var methodNames = [...]string{
	Other,
	"initialize", "ping", "server/discover", "logging/setLevel", "completion/complete",
	"tools/list", "tools/call", "prompts/list", "prompts/get",
	"resources/list", "resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe",
	"notifications/initialized", "notifications/cancelled", "notifications/progress", "notifications/roots/list_changed",
}

const numMethods = len(methodNames)

var methodIDs = func() map[string]methodID {
	out := map[string]methodID{}
	for i, m := range methodNames {
		if m != Other {
			out[m] = methodID(i)
		}
	}
	return out
}()

func methodOf(m string) methodID { return methodIDs[m] } // 0, Other, if unknown

// Method returns the label value of an MCP method: itself if vmcp knows
// it, else [Other]. Clients choose method names; labels must stay bounded.
func Method(m string) string { return methodNames[methodOf(m)] }

var httpMethods = [...]string{Other, "GET", "POST", "DELETE", "OPTIONS"}

func httpMethodID(m string) int {
	switch m {
	case "GET":
		return 1
	case "POST":
		return 2
	case "DELETE":
		return 3
	case "OPTIONS":
		return 4
	}
	return 0
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
