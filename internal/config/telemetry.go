package config

import (
	"net"
	"net/url"
	"strings"
)

// Telemetry configures vmcp's request metrics and traces
// (docs/operations.md#telemetry). The OpenTelemetry settings it leaves unset
// are read from the standard OTEL_* environment variables.
type Telemetry struct {
	// MetricsEnabled turns the request metrics on: requests, latencies and
	// bytes at the edge and per backend call, on /metrics. The gauges and
	// counters vmcp keeps anyway (sessions, backend states, authorization
	// decisions) are served either way. Default: true.
	MetricsEnabled *bool `yaml:"metricsEnabled"`
	// TracingEnabled turns tracing on: a span per request, with child spans
	// for authentication, the authorization decision and each backend call,
	// exported over OTLP. Default: false, unless the environment sets
	// OTEL_TRACES_EXPORTER=otlp. OTEL_SDK_DISABLED=true or
	// OTEL_TRACES_EXPORTER=none turn it off whatever this says.
	TracingEnabled *bool `yaml:"tracingEnabled"`
	// Endpoint is where spans are sent: a URL (http://collector:4318,
	// https://…; for grpc, the scheme chooses TLS) or host:port. Default:
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT,
	// else localhost:4318 (http/protobuf) or localhost:4317 (grpc).
	Endpoint string `yaml:"endpoint"`
	// Protocol is the OTLP transport: http/protobuf or grpc. Default:
	// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL,
	// else http/protobuf.
	Protocol string `yaml:"protocol"`
	// Insecure sends spans without TLS to an Endpoint given as host:port.
	// Default: false (a URL's scheme decides).
	Insecure bool `yaml:"insecure"`
	// SamplingRate is the share of traces started at vmcp that are
	// recorded, from 0 to 1; a request that carries a traceparent follows
	// the caller's decision. Default: OTEL_TRACES_SAMPLER and
	// OTEL_TRACES_SAMPLER_ARG, else 1 (every trace).
	SamplingRate *float64 `yaml:"samplingRate"`
	// ServiceName is the service.name of vmcp's spans. Default:
	// OTEL_SERVICE_NAME, else "vmcp".
	ServiceName string `yaml:"serviceName"`
}

// Audit configures the audit log (docs/operations.md#audit-log): one JSON
// line per authorization decision and per call to a backend. Tokens and
// secrets are never written; argument and claim values only when opted in
// below.
type Audit struct {
	// Enabled turns the audit log on. Default: false.
	Enabled bool `yaml:"enabled"`
	// LogFile is the file the records are appended to (created with mode
	// 0600). Default: standard error.
	LogFile string `yaml:"logFile"`
	// IncludeArguments writes each call's arguments into its records.
	// Default: false (argument values can be personal data or secrets).
	IncludeArguments bool `yaml:"includeArguments"`
	// IncludeClaims writes the caller's claim values into decision
	// records. Default: false (only the claims' sources are written).
	IncludeClaims bool `yaml:"includeClaims"`
}

// OTLP protocols.
const (
	OTLPHTTP = "http/protobuf"
	OTLPGRPC = "grpc"
)

// MetricsOn reports whether the request metrics are on.
func (t *Telemetry) MetricsOn() bool { return t.MetricsEnabled == nil || *t.MetricsEnabled }

func (t *Telemetry) validate(v *validator) {
	const f = "config.telemetry."
	if t.Protocol != "" && t.Protocol != OTLPHTTP && t.Protocol != OTLPGRPC {
		v.add(f+"protocol", "%q is not one of %s, %s", t.Protocol, OTLPHTTP, OTLPGRPC)
	}
	if r := t.SamplingRate; r != nil && (*r < 0 || *r > 1) {
		v.add(f+"samplingRate", "%v must be between 0 and 1", *r)
	}
	if e := t.Endpoint; e != "" {
		if strings.Contains(e, "://") {
			if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				v.add(f+"endpoint", "%q must be an http or https URL, or host:port", e)
			} else if u.User != nil {
				v.add(f+"endpoint", "must not carry credentials: set OTEL_EXPORTER_OTLP_HEADERS in the environment instead")
			}
		} else if _, port, err := net.SplitHostPort(e); err != nil || port == "" {
			v.add(f+"endpoint", "%q must be an http or https URL, or host:port", e)
		}
	}
}

func (a *Audit) validate(v *validator) {
	if !a.Enabled && (a.LogFile != "" || a.IncludeArguments || a.IncludeClaims) {
		v.add("config.audit.enabled", "is false, so the other audit settings do nothing: set enabled: true")
	}
}
