package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vmcp-dev/vmcp/internal/telemetry"
)

func TestTracingWanted(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name    string
		enabled *bool
		env     map[string]string
		want    bool
	}{
		{name: "default off", want: false},
		{name: "config on", enabled: &yes, want: true},
		{name: "config off wins over the exporter variable", enabled: &no, env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, want: false},
		{name: "exporter variable", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, want: true},
		{name: "SDK disabled wins", enabled: &yes, env: map[string]string{"OTEL_SDK_DISABLED": "true"}, want: false},
		{name: "exporter none wins", enabled: &yes, env: map[string]string{"OTEL_TRACES_EXPORTER": "none"}, want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := telemetry.TracingWanted(tc.enabled, func(k string) string { return tc.env[k] }); got != tc.want {
				t.Errorf("TracingWanted = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestProtocol(t *testing.T) {
	env := map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
	getenv := func(k string) string { return env[k] }
	if p := telemetry.Protocol("", getenv); p != "grpc" {
		t.Errorf("from the environment: %q", p)
	}
	if p := telemetry.Protocol("http/protobuf", getenv); p != "http/protobuf" {
		t.Errorf("the configuration wins: %q", p)
	}
	env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"
	if p := telemetry.Protocol("", getenv); p != "http/protobuf" {
		t.Errorf("the traces variable wins: %q", p)
	}
	if p := telemetry.Protocol("", func(string) string { return "" }); p != "http/protobuf" {
		t.Errorf("default: %q", p)
	}
}

// TestLabelsBounded: method names clients choose are one label value;
// so are unusual HTTP methods.
func TestLabelsBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	tel, err := telemetry.New(context.Background(), &telemetry.Options{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	h := tel.Edge(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		tel.NoteMethod(w, r.Header.Get("X-Method"))
		w.WriteHeader(http.StatusOK)
	}))
	for i, m := range []string{"tools/call", "x/1", "x/2", "x/3", strings.Repeat("y", 1000)} {
		r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader("{}"))
		if i == 4 {
			r.Method = "BREW"
		}
		r.Header.Set("X-Method", m)
		h.ServeHTTP(httptest.NewRecorder(), r)
		_, op := tel.StartRequest(context.Background(), m, "", "", "fast")
		op.End(telemetry.OK)
	}
	if n := testutil.CollectAndCount(reg, "vmcp_requests_total"); n != 2 {
		t.Errorf("vmcp_requests_total has %d series, want 2 (tools/call and other)", n)
	}
	if n := testutil.CollectAndCount(reg, "vmcp_http_requests_total"); n != 2 {
		t.Errorf("vmcp_http_requests_total has %d series, want 2 (POST and other)", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "vmcp_http_received_bytes_total" {
			if got := mf.Metric[0].Counter.GetValue(); got != 10 {
				t.Errorf("received bytes = %v, want 10 (5 bodies of 2)", got)
			}
		}
	}
}

// TestNilTelemetry: with everything off, every seam is a no-op that passes
// its input through.
func TestNilTelemetry(t *testing.T) {
	tel, err := telemetry.New(context.Background(), &telemetry.Options{})
	if err != nil || tel != nil {
		t.Fatalf("New with nothing on = %v, %v; want nil", tel, err)
	}
	h := http.NotFoundHandler()
	ctx := context.Background()
	if tel.Tracing() || !tel.Now().IsZero() || tel.TraceID(ctx) != "" {
		t.Error("a nil telemetry traces")
	}
	if tel.Transport(http.DefaultTransport) != http.DefaultTransport {
		t.Error("Transport wraps")
	}
	if c, op := tel.StartRequest(ctx, "tools/call", "", "", "fast"); c != ctx || op != nil {
		t.Error("StartRequest did something")
	}
	if c, _ := tel.StartCall(ctx, "b", "tools/call", "t", "t"); c != ctx {
		t.Error("StartCall did something")
	}
	_ = tel.Edge(h)
}
