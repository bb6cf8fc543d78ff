package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/vmcp-dev/vmcp/internal/app"
	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// spanSink is an OTLP trace receiver: the collector's TraceService, over
// HTTP (POST /v1/traces, protobuf) and gRPC, keeping every span it gets.
type spanSink struct {
	coltracepb.UnimplementedTraceServiceServer
	mu       sync.Mutex
	spans    []*tracepb.Span
	services map[string]bool // service.name of the resources
}

func (s *spanSink) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				if s.services == nil {
					s.services = map[string]bool{}
				}
				s.services[kv.Value.GetStringValue()] = true
			}
		}
		for _, ss := range rs.ScopeSpans {
			s.spans = append(s.spans, ss.Spans...)
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (s *spanSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	res, _ := s.Export(r.Context(), &req)
	out, _ := proto.Marshal(res)
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// startHTTPSink serves a span sink over OTLP/HTTP and returns its URL.
func startHTTPSink(t *testing.T) (*spanSink, string) {
	s := &spanSink{}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

// startGRPCSink serves a span sink over OTLP/gRPC and returns its address.
func startGRPCSink(t *testing.T) (*spanSink, string) {
	s := &spanSink{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(g, s)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return s, ln.Addr().String()
}

// waitSpans waits (at most 20s) until the sink holds spans for which done
// returns true, and returns them.
func (s *spanSink) waitSpans(t *testing.T, done func([]*tracepb.Span) bool) []*tracepb.Span {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.mu.Lock()
		spans := slices.Clone(s.spans)
		s.mu.Unlock()
		if done(spans) {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver did not get the expected spans in 20s; it has:\n%s", dumpSpans(spans))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func dumpSpans(spans []*tracepb.Span) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "%s trace=%x span=%x parent=%x %v\n", s.Name, s.TraceId, s.SpanId, s.ParentSpanId, attrs(s))
	}
	return b.String()
}

func attrs(s *tracepb.Span) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes {
		v := kv.Value
		switch {
		case v.GetArrayValue() != nil:
			var parts []string
			for _, e := range v.GetArrayValue().Values {
				parts = append(parts, e.GetStringValue())
			}
			m[kv.Key] = strings.Join(parts, ",")
		case v.GetIntValue() != 0:
			m[kv.Key] = fmt.Sprint(v.GetIntValue())
		default:
			m[kv.Key] = v.GetStringValue()
		}
	}
	return m
}

// tracedBackend is an MCP backend that notes the traceparent of each
// tools/call, by tool, and breaks the connection of a call to "crash".
type tracedBackend struct {
	url string
	mu  sync.Mutex
	tp  map[string][]string // tool -> traceparents
}

func startTracedBackend(t *testing.T) *tracedBackend {
	s := mcp.NewServer(&mcp.Implementation{Name: "traced"}, nil)
	for _, name := range []string{"echo", "secret", "dept", "crash"} {
		s.AddTool(&mcp.Tool{Name: name, InputSchema: map[string]any{"type": "object"}},
			func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name + " done"}}}, nil
			})
	}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
	b := &tracedBackend{tp: map[string][]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			var m struct {
				Method string `json:"method"`
				Params struct {
					Name string `json:"name"`
				} `json:"params"`
			}
			_ = json.Unmarshal(body, &m)
			if m.Method == "tools/call" {
				b.mu.Lock()
				b.tp[m.Params.Name] = append(b.tp[m.Params.Name], r.Header.Get("Traceparent"))
				b.mu.Unlock()
				if m.Params.Name == "crash" {
					if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
						conn.Close() // the backend dies mid-call
					}
					return
				}
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	b.url = srv.URL
	return b
}

func (b *tracedBackend) traceparents(tool string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.tp[tool])
}

// headers adds fixed headers to every request.
type headers struct {
	h    http.Header
	base http.RoundTripper
}

func (t headers) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.h {
		r.Header[k] = v
	}
	return t.base.RoundTrip(r)
}

// scrape reads the metrics at url.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mf
}

// metricValue sums the samples of name whose labels include want (a
// histogram's sample count).
func metricValue(mf map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := mf[name]
	if f == nil {
		return -1
	}
	var sum float64
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// The client's secret-looking values, which must appear nowhere vmcp writes.
const argSecret = "ARG-VALUE-7c1f0e"

// TestObservability drives scripted traffic through an authenticated
// gateway with every kind of telemetry on (metrics on their own listener,
// traces to an OTLP/HTTP receiver at 100 %, the audit log to a file, the
// access log) and checks each: metrics by name and value, the trace of one
// call with its parent/child structure and the traceparent the backend
// got, audit records of a permit, a deny and an evaluation error, access
// lines; and that no token or argument value appears in any of them.
func TestObservability(t *testing.T) {
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50") // export spans every 50 ms
	sink, sinkURL := startHTTPSink(t)
	be := startTracedBackend(t)
	idp := fakeidp.Start(t, fakeidp.Options{Subject: "alice", Claims: map[string]any{"email": "alice@example.com"}})
	addr, metricsAddr := vmcptest.FreeAddr(t), vmcptest.FreeAddr(t)
	base := "http://" + addr
	auditFile := filepath.Join(t.TempDir(), "audit.log")
	t.Setenv("VMCP_SECRET_IDP_SECRET", "secret")
	doc := fmt.Sprintf(`
name: obs
config:
  telemetry:
    tracingEnabled: true
    endpoint: %[4]s
    samplingRate: 1
  audit:
    enabled: true
    logFile: %[5]s
incomingAuth:
  type: oidc
  oidcConfigRef: {name: self, audience: %[1]s/mcp}
  authzConfig:
    type: inline
    inline:
      policies:
        - 'permit(principal, action == Vmcp::Action::"list_tools", resource);'
        - '@id("echo-and-crash") permit(principal, action == Vmcp::Action::"call_tool", resource) when { resource.name == "be_echo" || resource.name == "be_crash" };'
        - '@id("needs-department") permit(principal, action == Vmcp::Action::"call_tool", resource == Vmcp::Tool::"be_dept") when { principal.department == "eng" };'
authServerConfig:
  issuer: %[1]s
  upstreamProviders:
  - name: idp
    type: oidc
    oidcConfig:
      issuerUrl: %[2]s
      clientId: vmcp
      clientSecretRef: {name: idp, key: secret}
backends:
- name: be
  url: %[3]s
server:
  listen: %[6]s
  metricsListen: %[7]s
  accessLog: true
`, base, idp.URL(), be.url, sinkURL, auditFile, addr, metricsAddr)
	logs := &syncBuffer{}
	vmcptest.Start(t, doc, &app.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	token := login(t, base)

	// The client continues a trace of its own.
	clientTrace, clientSpan := "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	h := http.Header{"Authorization": {"Bearer " + token}, "Traceparent": {"00-" + clientTrace + "-" + clientSpan + "-01"}}
	s, err := mcp.NewClient(&mcp.Implementation{Name: "obs"}, nil).Connect(t.Context(),
		&mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: &http.Client{Transport: headers{h, http.DefaultTransport}}},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	args := map[string]any{"text": argSecret}
	call := func(name string, meta mcp.Meta) (*mcp.CallToolResult, error) {
		return s.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args, Meta: meta})
	}
	if res, err := call("be_echo", nil); err != nil || res.IsError { // the fast path
		t.Fatalf("be_echo: %v %v", res, err)
	}
	if _, err := call("be_secret", nil); err == nil { // no policy permits it
		t.Fatal("be_secret was allowed")
	}
	if _, err := call("be_dept", nil); err == nil { // its permit fails to evaluate
		t.Fatal("be_dept was allowed")
	}
	if res, err := call("be_crash", nil); err != nil || !res.IsError { // the backend breaks the connection
		t.Fatalf("be_crash: %v %v, want an error result", res, err)
	}
	if res, err := call("be_echo", mcp.Meta{"progressToken": "p1"}); err != nil || res.IsError { // the SDK's path
		t.Fatalf("be_echo with progress: %v %v", res, err)
	}

	t.Run("metrics", func(t *testing.T) {
		if resp, err := http.Get(base + "/metrics"); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("/metrics on the main listener: %d, want 404 (server.metricsListen is set)", resp.StatusCode)
			}
		}
		// Requests are counted once answered: wait (at most 20s) for the
		// last one's duration.
		var mf map[string]*dto.MetricFamily
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			mf = scrape(t, "http://"+metricsAddr+"/metrics")
			if metricValue(mf, "vmcp_request_duration_seconds", map[string]string{"method": "tools/call"}) >= 5 || time.Now().After(deadline) {
				break
			}
		}
		for _, c := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"vmcp_requests_total", map[string]string{"method": "tools/call", "outcome": "ok"}, 2},
			{"vmcp_requests_total", map[string]string{"method": "tools/call", "outcome": "denied"}, 2},
			{"vmcp_requests_total", map[string]string{"method": "tools/call", "outcome": "tool_error"}, 1},
			{"vmcp_request_duration_seconds", map[string]string{"method": "tools/call"}, 5},
			{"vmcp_backend_calls_total", map[string]string{"backend": "be", "method": "tools/call", "tool": "be_echo", "outcome": "ok"}, 2},
			{"vmcp_backend_calls_total", map[string]string{"backend": "be", "method": "tools/call", "tool": "be_crash", "outcome": "failed"}, 1},
			{"vmcp_backend_calls_total", map[string]string{"tool": "be_secret"}, -1 + 1}, // never sent
			{"vmcp_backend_call_duration_seconds", map[string]string{"backend": "be", "tool": "be_echo"}, 2},
			{"vmcp_authz_decisions_total", map[string]string{"action": "call_tool", "decision": "allow"}, 3},
			{"vmcp_authz_decisions_total", map[string]string{"action": "call_tool", "decision": "deny"}, 2},
			{"vmcp_authz_evaluation_errors_total", nil, 1},
			{"vmcp_sessions", nil, 1},
			{"vmcp_backend_state", map[string]string{"backend": "be", "state": "ready"}, 1},
			{"vmcp_upstream_refreshes_total", map[string]string{"provider": "idp", "outcome": "failed"}, 0},
		} {
			if got := metricValue(mf, c.name, c.labels); got != c.want {
				t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
			}
		}
		if got := metricValue(mf, "vmcp_http_requests_total", map[string]string{"method": "POST", "code": "200"}); got < 5 {
			t.Errorf("vmcp_http_requests_total{POST,200} = %v, want at least the 5 calls", got)
		}
		for _, name := range []string{"vmcp_http_received_bytes_total", "vmcp_http_sent_bytes_total"} {
			if got := metricValue(mf, name, nil); got <= 0 {
				t.Errorf("%s = %v, want > 0", name, got)
			}
		}
		// docs/operations.md lists every metric vmcp serves, and names no
		// other (in its tables, examples and alert rules).
		doc, err := os.ReadFile("../../docs/operations.md")
		if err != nil {
			t.Fatal(err)
		}
		named := map[string]bool{}
		for _, m := range regexp.MustCompile(`vmcp_[a-z_]+`).FindAllString(string(doc), -1) {
			named[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")] = true
		}
		for name := range mf {
			if strings.HasPrefix(name, "vmcp_") && !named[name] {
				t.Errorf("docs/operations.md does not document %s", name)
			}
		}
		for name := range named {
			if mf[name] == nil && name != "vmcp_token_exchange_total" { // no token exchange in this configuration
				t.Errorf("docs/operations.md names %s, which vmcp does not serve", name)
			}
		}
		// The decisions name the sources of alice's claims.
		for _, m := range mf["vmcp_authz_decisions_total"].Metric {
			for _, l := range m.Label {
				if l.GetName() == "claim_sources" && !strings.Contains(l.GetValue(), "id_token") {
					t.Errorf("claim_sources = %q, want the upstream ID token among them", l.GetValue())
				}
			}
		}
	})

	t.Run("trace", func(t *testing.T) {
		var traceID string
		spans := sink.waitSpans(t, func(spans []*tracepb.Span) bool {
			n := 0
			for _, s := range spans {
				if s.Name == "tools/call be" {
					n++
				}
			}
			return n >= 3 // the two echoes and the crash
		})
		// The first be_echo: the fast path's request span, the server span
		// named after the call.
		var req *tracepb.Span
		for _, s := range spans {
			if s.Name == "tools/call be_echo" && attrs(s)["vmcp.path"] == "fast" {
				req = s
				break
			}
		}
		if req == nil || req.Kind != tracepb.Span_SPAN_KIND_SERVER {
			t.Fatalf("no fast-path server span for be_echo:\n%s", dumpSpans(spans))
		}
		traceID = hex.EncodeToString(req.TraceId)
		if traceID != clientTrace {
			t.Errorf("trace id %s, want the client's %s", traceID, clientTrace)
		}
		if got := hex.EncodeToString(req.ParentSpanId); got != clientSpan {
			t.Errorf("the server span's parent is %s, want the client's span %s", got, clientSpan)
		}
		if a := attrs(req); a["http.response.status_code"] != "200" || a["mcp.method.name"] != "tools/call" || a["mcp.session.id"] != s.ID() ||
			a["gen_ai.tool.name"] != "be_echo" || a["vmcp.outcome"] != "ok" || a["http.request.method"] != "POST" {
			t.Errorf("server span attributes %v", a)
		}
		children := func(parent *tracepb.Span) []*tracepb.Span {
			var out []*tracepb.Span
			for _, s := range spans {
				if bytes.Equal(s.ParentSpanId, parent.SpanId) {
					out = append(out, s)
				}
			}
			slices.SortFunc(out, func(a, b *tracepb.Span) int { return strings.Compare(a.Name, b.Name) })
			return out
		}
		names := func(ss []*tracepb.Span) []string {
			var out []string
			for _, s := range ss {
				out = append(out, s.Name)
			}
			return out
		}
		kids := children(req)
		if got := names(kids); !slices.Equal(got, []string{"authenticate", "authorize", "tools/call be"}) {
			t.Fatalf("the request span's children are %v, want authenticate, authorize and the backend call:\n%s", got, dumpSpans(spans))
		}
		if a := attrs(kids[1]); a["vmcp.authz.decision"] != "allow" || a["vmcp.authz.policies"] != "echo-and-crash" ||
			a["vmcp.authz.action"] != "call_tool" || !strings.Contains(a["vmcp.authz.claim_sources"], "id_token") {
			t.Errorf("authorize span attributes %v", a)
		}
		backendSpan := kids[2]
		if a := attrs(backendSpan); backendSpan.Kind != tracepb.Span_SPAN_KIND_CLIENT || a["vmcp.backend"] != "be" || a["gen_ai.tool.name"] != "be_echo" ||
			a["vmcp.backend.item"] != "echo" || a["vmcp.outcome"] != "ok" {
			t.Errorf("backend span attributes %v", a)
		}
		// The backend got the backend call's trace context.
		want := "00-" + traceID + "-" + hex.EncodeToString(backendSpan.SpanId) + "-01"
		if got := be.traceparents("echo"); len(got) == 0 || got[0] != want {
			t.Errorf("the backend saw traceparent %q, want %q", got, want)
		}
		// The call on the SDK's path has the same structure.
		var sdkReq *tracepb.Span
		for _, s := range spans {
			if s.Name == "tools/call be_echo" && attrs(s)["vmcp.path"] == "sdk" {
				sdkReq = s
			}
		}
		if sdkReq == nil || sdkReq.Kind != tracepb.Span_SPAN_KIND_SERVER || hex.EncodeToString(sdkReq.ParentSpanId) != clientSpan {
			t.Fatalf("the SDK path's request span %v is not a server span under the client's:\n%s", sdkReq, dumpSpans(spans))
		}
		if got := names(children(sdkReq)); !slices.Equal(got, []string{"authenticate", "authorize", "tools/call be"}) {
			t.Errorf("the SDK path's request span's children are %v", got)
		}
		if got := be.traceparents("echo"); len(got) != 2 || !strings.Contains(got[1], hex.EncodeToString(children(sdkReq)[2].SpanId)) {
			t.Errorf("the backend saw traceparents %q on the SDK path", got)
		}
		for _, s := range spans {
			if s.Name == "tools/call be_crash" && attrs(s)["vmcp.outcome"] != "tool_error" {
				t.Errorf("crash request outcome %v", attrs(s))
			}
			if s.Name == "tools/call be_secret" && attrs(s)["vmcp.outcome"] != "denied" {
				t.Errorf("denied request outcome %v", attrs(s))
			}
		}
		if leaks := leaked(dumpSpans(spans), token); leaks != "" {
			t.Errorf("spans hold %s", leaks)
		}
	})

	t.Run("audit", func(t *testing.T) {
		recs := waitAudit(t, auditFile, 8) // 5 decisions and 3 calls
		find := func(kind, resource string) []map[string]any {
			var out []map[string]any
			for _, r := range recs {
				if r["kind"] == kind && r["resource"] == resource {
					out = append(out, r)
				}
			}
			return out
		}
		permit := find("decision", `Vmcp::Tool::"be_echo"`)
		if len(permit) != 2 || permit[0]["decision"] != "allow" || fmt.Sprint(permit[0]["policies"]) != "[echo-and-crash]" ||
			permit[0]["session"] != s.ID() || permit[0]["action"] != "call_tool" || permit[0]["trace_id"] != clientTrace ||
			!strings.Contains(fmt.Sprint(permit[0]["claim_sources"]), "id_token") || permit[0]["principal"] == "" || permit[0]["client_id"] == nil {
			t.Errorf("permit records: %v", permit)
		}
		if deny := find("decision", `Vmcp::Tool::"be_secret"`); len(deny) != 1 || deny[0]["decision"] != "deny" || deny[0]["policies"] != nil {
			t.Errorf("deny records: %v", deny)
		}
		evalErr := find("decision", `Vmcp::Tool::"be_dept"`)
		if len(evalErr) != 1 || evalErr[0]["decision"] != "deny" || !strings.Contains(fmt.Sprint(evalErr[0]["errors"]), "needs-department") {
			t.Errorf("evaluation error records: %v", evalErr)
		}
		calls := find("call", `Vmcp::Tool::"be_echo"`)
		if len(calls) != 2 || calls[0]["backend"] != "be" || calls[0]["outcome"] != "ok" || calls[0]["latency_ms"] == nil {
			t.Errorf("call records: %v", calls)
		}
		if crash := find("call", `Vmcp::Tool::"be_crash"`); len(crash) != 1 || crash[0]["outcome"] != "failed" {
			t.Errorf("crash call records: %v", crash)
		}
		if len(find("call", `Vmcp::Tool::"be_secret"`)) != 0 {
			t.Error("a denied call has a call record")
		}
		raw, _ := os.ReadFile(auditFile)
		if leaks := leaked(string(raw), token); leaks != "" {
			t.Errorf("the audit log holds %s", leaks)
		}
	})

	t.Run("access log", func(t *testing.T) {
		out := logs.String()
		want := "msg=\"http request\" method=POST path=/mcp status=200"
		if !strings.Contains(out, want) || !strings.Contains(out, "mcp_method=tools/call") || !strings.Contains(out, "session="+s.ID()) {
			t.Errorf("the log lacks access lines like %q:\n%s", want, out)
		}
		if leaks := leaked(out, token); leaks != "" {
			t.Errorf("the log holds %s", leaks)
		}
	})
}

// leaked names what of the token (or its signature) and the argument
// value appears in out.
func leaked(out, token string) string {
	var found []string
	if token != "" && strings.Contains(out, token) {
		found = append(found, "the access token")
	}
	if i := strings.LastIndex(token, "."); i > 0 && strings.Contains(out, token[i+1:]) {
		found = append(found, "the access token's signature")
	}
	if strings.Contains(out, argSecret) {
		found = append(found, "an argument value")
	}
	return strings.Join(found, " and ")
}

// waitAudit waits (at most 20s) until the audit file holds n records, and
// returns them parsed.
func waitAudit(t *testing.T, file string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var recs []map[string]any
		if f, err := os.Open(file); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var r map[string]any
				if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
					t.Fatalf("audit line %q is not JSON: %v", sc.Text(), err)
				}
				recs = append(recs, r)
			}
			f.Close()
		}
		if len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit log has %d records after 20s, want %d: %v", len(recs), n, recs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTracesOverGRPC: with protocol grpc, spans reach an OTLP/gRPC
// receiver; the configuration's host:port endpoint is used without TLS
// when insecure is set; environment variables fill in what the file leaves
// out (the service name).
func TestTracesOverGRPC(t *testing.T) {
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	t.Setenv("OTEL_SERVICE_NAME", "gateway-under-test")
	sink, sinkAddr := startGRPCSink(t)
	addr := vmcptest.FreeAddr(t)
	vmcptest.Start(t, fmt.Sprintf(`
config:
  telemetry:
    tracingEnabled: true
    protocol: grpc
    endpoint: %s
    insecure: true
backends:
- name: fx
  url: %s
server:
  listen: %s
`, sinkAddr, vmcptest.FixtureBackend(t), addr), nil)
	s := vmcptest.Connect(t, "http://"+addr+"/mcp", "", nil)
	if _, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "fx_test_simple_text"}); err != nil {
		t.Fatal(err)
	}
	spans := sink.waitSpans(t, func(spans []*tracepb.Span) bool {
		return slices.ContainsFunc(spans, func(s *tracepb.Span) bool { return s.Name == "tools/call fx" })
	})
	var call, req *tracepb.Span
	for _, s := range spans {
		switch s.Name {
		case "tools/call fx":
			call = s
		case "tools/call fx_test_simple_text":
			req = s
		}
	}
	if req != nil && req.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("the request span is a %v span, want the server span", req.Kind)
	}
	if req == nil || !bytes.Equal(call.ParentSpanId, req.SpanId) || !bytes.Equal(call.TraceId, req.TraceId) {
		t.Errorf("the backend call is not a child of its request:\n%s", dumpSpans(spans))
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if !sink.services["gateway-under-test"] || len(sink.services) != 1 {
		t.Errorf("service names %v, want OTEL_SERVICE_NAME's", sink.services)
	}
}
