package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/vmcp-dev/vmcp/internal/telemetry"
)

// traced serves one request through Edge, as the gateway does: the MCP
// request and one backend call (whose traceparent the backend records);
// it returns the spans exported and the traceparent the backend got.
func traced(t *testing.T, rate float64, clientTraceparent string) ([]sdktrace.ReadOnlySpan, string) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tel, err := telemetry.New(context.Background(), &telemetry.Options{Tracing: &telemetry.Tracing{Exporter: keep{exp}, SamplingRate: &rate}})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Get("Traceparent") }))
	defer backend.Close()
	client := &http.Client{Transport: tel.Transport(http.DefaultTransport)}
	h := tel.Edge(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tel.NoteMethod(w, "tools/call")
		ctx, op := tel.StartRequest(r.Context(), "tools/call", "be_echo", "s1", "fast")
		ctx, call := tel.StartCall(ctx, "be", "tools/call", "be_echo", "echo")
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, backend.URL, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
		} else {
			resp.Body.Close()
			if req.Header.Get("Traceparent") != "" {
				t.Error("the transport wrote into the caller's request")
			}
		}
		call.End(telemetry.OK, nil)
		op.End(telemetry.OK)
		w.WriteHeader(http.StatusOK)
	}))
	mux := http.NewServeMux()
	mux.Handle("/mcp", h)
	r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader("{}"))
	r.Header.Set("Mcp-Session-Id", "s1")
	if clientTraceparent != "" {
		r.Header.Set("Traceparent", clientTraceparent)
	}
	mux.ServeHTTP(httptest.NewRecorder(), r)
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	return exp.GetSpans().Snapshots(), got
}

// TestSampledSpans: a sampled request's server span has every attribute
// the request gathered (set in one call when it ends), its backend call
// has its own, and the backend gets the call span's traceparent.
func TestSampledSpans(t *testing.T) {
	spans, tp := traced(t, 1, "")
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2 (request, backend call)", len(spans))
	}
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = s
	}
	req, call := byName["tools/call be_echo"], byName["tools/call be"]
	if req == nil || call == nil {
		t.Fatalf("spans %v, want tools/call be_echo and tools/call be", byName)
	}
	attrs := func(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
		out := map[attribute.Key]string{}
		for _, kv := range s.Attributes() {
			out[kv.Key] = kv.Value.String()
		}
		return out
	}
	want := map[attribute.Key]string{"http.request.method": "POST", "vmcp.path": "fast", "gen_ai.tool.name": "be_echo",
		"vmcp.outcome": "ok", "http.response.status_code": "200", "mcp.method.name": "tools/call", "mcp.session.id": "s1"}
	if got := attrs(req); !equal(got, want) {
		t.Errorf("request span attributes = %v, want %v", got, want)
	}
	want = map[attribute.Key]string{"vmcp.backend": "be", "mcp.method.name": "tools/call", "vmcp.backend.item": "echo",
		"gen_ai.tool.name": "be_echo", "vmcp.outcome": "ok"}
	if got := attrs(call); !equal(got, want) {
		t.Errorf("backend call span attributes = %v, want %v", got, want)
	}
	if call.Parent().SpanID() != req.SpanContext().SpanID() {
		t.Error("the backend call is not a child of the request")
	}
	if wantTP := "00-" + call.SpanContext().TraceID().String() + "-" + call.SpanContext().SpanID().String() + "-01"; tp != wantTP {
		t.Errorf("backend got traceparent %q, want %q", tp, wantTP)
	}
	if !req.StartTime().Before(call.StartTime()) || req.EndTime().Before(call.EndTime()) {
		t.Error("the backend call's span is not within the request's")
	}
}

// TestUnsampledRecordsNothing: a request whose trace is not sampled (a
// client's unsampled traceparent, or the sampling rate) exports no span,
// and its backend still gets the unsampled trace context.
func TestUnsampledRecordsNothing(t *testing.T) {
	const client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	spans, tp := traced(t, 1, client)
	if len(spans) != 0 {
		t.Errorf("%d spans exported for a client's unsampled trace, want 0", len(spans))
	}
	if !strings.HasPrefix(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || !strings.HasSuffix(tp, "-00") {
		t.Errorf("backend got traceparent %q, want the client's trace, unsampled", tp)
	}
	spans, tp = traced(t, 0, "")
	if len(spans) != 0 {
		t.Errorf("%d spans exported at sampling rate 0, want 0", len(spans))
	}
	if !strings.HasSuffix(tp, "-00") {
		t.Errorf("backend got traceparent %q, want an unsampled one", tp)
	}
}

// keep keeps its spans at shutdown (the in-memory exporter forgets them).
type keep struct{ *tracetest.InMemoryExporter }

func (keep) Shutdown(context.Context) error { return nil }

func equal(a, b map[attribute.Key]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
