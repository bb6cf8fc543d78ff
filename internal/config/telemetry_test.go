package config

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTelemetryConfig(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(`
config:
  telemetry:
    metricsEnabled: false
    tracingEnabled: true
    endpoint: collector:4317
    protocol: grpc
    insecure: true
    samplingRate: 0.25
    serviceName: gw
  audit:
    enabled: true
    logFile: /var/log/audit.log
    includeArguments: true
server:
  accessLog: true
  metricsListen: 127.0.0.1:9090
`), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	off, on, rate := false, true, 0.25
	want := Telemetry{MetricsEnabled: &off, TracingEnabled: &on, Endpoint: "collector:4317", Protocol: OTLPGRPC, Insecure: true,
		SamplingRate: &rate, ServiceName: "gw"}
	if diff := cmp.Diff(want, cfg.Config.Telemetry); diff != "" {
		t.Errorf("telemetry (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Audit{Enabled: true, LogFile: "/var/log/audit.log", IncludeArguments: true}, cfg.Config.Audit); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
	if !cfg.Server.AccessLog || cfg.Server.MetricsListen != "127.0.0.1:9090" || cfg.Config.Telemetry.MetricsOn() {
		t.Errorf("server %+v, metrics on %v", cfg.Server, cfg.Config.Telemetry.MetricsOn())
	}
	def, err := Parse([]byte("name: gw\n"), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !def.Config.Telemetry.MetricsOn() || def.Config.Telemetry.TracingEnabled != nil || def.Config.Audit.Enabled || def.Server.AccessLog {
		t.Error("defaults: request metrics on, tracing unset, audit and access log off")
	}
}

func TestTelemetryErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, doc, want string }{
		{"protocol", "config:\n  telemetry:\n    protocol: http/json\n",
			`f.yaml:3: config.telemetry.protocol: "http/json" is not one of http/protobuf, grpc`},
		{"sampling rate", "config:\n  telemetry:\n    samplingRate: 2\n", "f.yaml:3: config.telemetry.samplingRate: 2 must be between 0 and 1"},
		{"endpoint", "config:\n  telemetry:\n    endpoint: collector\n", `f.yaml:3: config.telemetry.endpoint: "collector" must be an http or https URL, or host:port`},
		{"endpoint scheme", "config:\n  telemetry:\n    endpoint: ftp://c:21\n", `config.telemetry.endpoint: "ftp://c:21" must be an http or https URL`},
		{"endpoint credentials", "config:\n  telemetry:\n    endpoint: https://k:s@c/v1/traces\n",
			"config.telemetry.endpoint: must not carry credentials: set OTEL_EXPORTER_OTLP_HEADERS"},
		{"audit settings without audit", "config:\n  audit:\n    logFile: /tmp/a\n", "config.audit.enabled: is false"},
		{"metrics listen", "server:\n  metricsListen: 9090\n", `f.yaml:2: server.metricsListen: "9090" must be host:port`},
		{"metrics on the main listener", "server:\n  listen: 127.0.0.1:4483\n  metricsListen: 127.0.0.1:4483\n", "server.metricsListen: \"127.0.0.1:4483\" is server.listen"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.doc), "f.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v\nwant it to contain %s", err, tc.want)
			}
		})
	}
}

// TestTelemetryDocExamples parses the telemetry and audit examples of
// docs/configuration.md and docs/operations.md.
func TestTelemetryDocExamples(t *testing.T) {
	t.Parallel()
	blocks := yamlExamples(t, []string{"../../docs/configuration.md", "../../docs/operations.md"}, func(block string) bool {
		return strings.Contains(block, "telemetry:") || strings.Contains(block, "audit:") || strings.Contains(block, "metricsListen:")
	})
	if len(blocks) < 3 {
		t.Fatalf("found %d telemetry examples in the docs, want at least 3", len(blocks))
	}
	for i, block := range blocks {
		if _, err := Parse([]byte(block), fmt.Sprintf("example-%d.yaml", i)); err != nil {
			t.Errorf("example %d:\n%s\n%v", i, block, err)
		}
	}
}

// yamlExamples returns the YAML code blocks of the docs for which keep
// returns true.
func yamlExamples(t *testing.T, docs []string, keep func(string) bool) []string {
	t.Helper()
	var blocks []string
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, part := range strings.Split(string(b), "```yaml\n")[1:] {
			if block, _, _ := strings.Cut(part, "```"); keep(block) {
				blocks = append(blocks, block)
			}
		}
	}
	return blocks
}
