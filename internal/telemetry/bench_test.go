package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmcp-dev/vmcp/internal/audit"
	"github.com/vmcp-dev/vmcp/internal/loadtest/cputime"
	"github.com/vmcp-dev/vmcp/internal/telemetry"
)

// nopTransport answers every request with an empty 200.
type nopTransport struct{}

func (nopTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
}

// BenchmarkObserve is what observing one tools/call costs, the request's
// own work left out: the edge, the request and one backend call (its
// request through the propagating transport, answered at once), the call's
// audit record. "off" is the same handler with everything off; "on" has
// request metrics, the audit log (to io.Discard) and every request traced,
// exported over OTLP/HTTP to a receiver in the process that drops the
// spans, as vmcp-load compare --observe runs vmcp. cpu-ns/op is the whole
// process's CPU per op (the exporter's goroutines and the receiver
// included).
func BenchmarkObserve(b *testing.B) {
	drain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer drain.Close()
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			var tel *telemetry.Telemetry
			var log *audit.Log
			if on {
				rate := 1.0
				var err error
				tel, err = telemetry.New(context.Background(), &telemetry.Options{Metrics: prometheus.NewRegistry(),
					Tracing: &telemetry.Tracing{Endpoint: drain.URL + "/v1/traces", SamplingRate: &rate}})
				if err != nil {
					b.Fatal(err)
				}
				defer tel.Shutdown(context.Background())
				log = audit.New(io.Discard, nil)
				defer log.Close()
			}
			client := &http.Client{Transport: tel.Transport(nopTransport{})}
			mux := http.NewServeMux()
			mux.Handle("/mcp", tel.Edge(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tel.NoteMethod(w, "tools/call")
				ctx, op := tel.StartRequest(r.Context(), "tools/call", "be_echo", "s1", "fast")
				ctx, call := tel.StartCall(ctx, "be", "tools/call", "be_echo", "echo")
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://backend/mcp", http.NoBody)
				req.Header = http.Header{"Content-Type": {"application/json"}, "Mcp-Session-Id": {"b1"}}
				if resp, err := client.Do(req); err == nil {
					resp.Body.Close()
				}
				latency := call.End(telemetry.OK, nil)
				log.Called(&audit.Call{Who: audit.Who{Principal: "alice", Session: "s1", TraceID: tel.TraceID(ctx)},
					Action: "call_tool", Resource: `Vmcp::Tool::"be_echo"`, Backend: "be", Latency: latency, Outcome: "ok"})
				op.End(telemetry.OK)
				w.WriteHeader(http.StatusOK)
			})))
			b.ReportAllocs()
			cpu := cputime.Process()
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader("{}"))
				r.Header.Set("Mcp-Session-Id", "s1")
				mux.ServeHTTP(httptest.NewRecorder(), r)
			}
			cputime.Bench(b, cpu)
		})
	}
}
