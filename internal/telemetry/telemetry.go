package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	neturl "net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Options configure a [Telemetry]. Everything is off by default.
type Options struct {
	// Metrics, if set, gets the request metrics registered.
	Metrics prometheus.Registerer
	// Tracing, if set, turns tracing on.
	Tracing *Tracing
	// AccessLog, if set, gets one info record per HTTP request at the edge.
	AccessLog *slog.Logger
	// Logger receives the exporter's failures, at most one a minute.
	// Default: discard.
	Logger *slog.Logger
}

// Tracing configures traces. Unset fields take the standard OTEL_*
// environment variables, read by the OpenTelemetry SDK and its exporters
// (and by [TracingWanted] and the protocol choice here, through Getenv).
type Tracing struct {
	// Endpoint is a URL or host:port. Default: the exporter's (environment).
	Endpoint string
	// Protocol is "http/protobuf" or "grpc". Default: environment, else
	// http/protobuf.
	Protocol string
	// Insecure sends without TLS to a host:port Endpoint.
	Insecure bool
	// SamplingRate, if set, samples that share of the traces started here
	// (parent-based: a sampled caller's trace is always recorded).
	// Default: the SDK's, from OTEL_TRACES_SAMPLER, else every trace.
	SamplingRate *float64
	// ServiceName and ServiceVersion describe vmcp in every span.
	// ServiceName default: OTEL_SERVICE_NAME, else "vmcp".
	ServiceName, ServiceVersion string
	// Getenv reads the environment. Default: nothing is set.
	Getenv func(string) string
	// Exporter replaces the OTLP exporter (tests).
	Exporter sdktrace.SpanExporter
}

// TracingWanted reports whether tracing is on: enabled says so (nil: not
// configured, then OTEL_TRACES_EXPORTER=otlp turns it on), unless
// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none.
func TracingWanted(enabled *bool, getenv func(string) string) bool {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	exporter := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")))
	if exporter == "none" {
		return false
	}
	if enabled != nil {
		return *enabled
	}
	return exporter == "otlp"
}

// Telemetry is vmcp's metrics and tracing. A nil *Telemetry is valid:
// everything is off and every method does nothing.
type Telemetry struct {
	tracer   trace.Tracer // nil: tracing off
	provider *sdktrace.TracerProvider
	prop     propagation.TextMapPropagator
	m        *metrics // nil: request metrics off
	access   *slog.Logger
	// live holds the server spans (*edgeSpan) of requests handed to a
	// handler that sees only their header (Handoff), by span id, until
	// they end.
	live sync.Map
	// calls holds each backend call key's series and span name
	// (callKey → *callSeries).
	calls sync.Map
}

// New returns the telemetry opts ask for, or nil if they ask for none.
func New(ctx context.Context, opts *Options) (*Telemetry, error) {
	if opts == nil || opts.Metrics == nil && opts.Tracing == nil && opts.AccessLog == nil {
		return nil, nil
	}
	t := &Telemetry{access: opts.AccessLog}
	if opts.Metrics != nil {
		m, err := newMetrics(opts.Metrics)
		if err != nil {
			return nil, err
		}
		t.m = m
	}
	if tr := opts.Tracing; tr != nil {
		if opts.Logger != nil {
			// The SDK reports failures (a collector down) to one handler
			// per process.
			otel.SetErrorHandler(&errorLog{logger: opts.Logger})
		}
		tp, err := newProvider(ctx, tr)
		if err != nil {
			return nil, err
		}
		t.provider = tp
		t.tracer = tp.Tracer("github.com/vmcp-dev/vmcp")
		t.prop = propagation.TraceContext{}
	}
	return t, nil
}

// Shutdown sends the spans not yet exported and stops the exporter, within
// ctx.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil || t.provider == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// Tracing reports whether tracing is on.
func (t *Telemetry) Tracing() bool { return t != nil && t.tracer != nil }

// Now is the time, if tracing is on (a span's start taken before the
// work it describes), else zero.
func (t *Telemetry) Now() time.Time {
	if t == nil || t.tracer == nil {
		return time.Time{}
	}
	return time.Now()
}

func newProvider(ctx context.Context, tr *Tracing) (*sdktrace.TracerProvider, error) {
	getenv := tr.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	exp := tr.Exporter
	if exp == nil {
		var err error
		if exp, err = newExporter(ctx, tr, getenv); err != nil {
			return nil, err
		}
	}
	name := tr.ServiceName
	if name == "" {
		name = getenv("OTEL_SERVICE_NAME")
	}
	if name == "" {
		name = "vmcp"
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithFromEnv(),
		resource.WithAttributes(attribute.String("service.name", name), attribute.String("service.version", tr.ServiceVersion)))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
	if r := tr.SamplingRate; r != nil {
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*r))))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

// Protocol returns the OTLP protocol: protocol if set, else the
// environment's, else http/protobuf.
func Protocol(protocol string, getenv func(string) string) string {
	for _, p := range []string{protocol, getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), getenv("OTEL_EXPORTER_OTLP_PROTOCOL")} {
		if p = strings.TrimSpace(p); p != "" {
			return p
		}
	}
	return "http/protobuf"
}

func newExporter(ctx context.Context, tr *Tracing, getenv func(string) string) (sdktrace.SpanExporter, error) {
	url := strings.Contains(tr.Endpoint, "://")
	switch p := Protocol(tr.Protocol, getenv); p {
	case "grpc":
		var o []otlptracegrpc.Option
		switch {
		case url:
			o = append(o, otlptracegrpc.WithEndpointURL(tr.Endpoint))
		case tr.Endpoint != "":
			o = append(o, otlptracegrpc.WithEndpoint(tr.Endpoint))
		}
		if tr.Insecure && !url {
			o = append(o, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, o...)
	case "http/protobuf":
		var o []otlptracehttp.Option
		switch {
		case url:
			o = append(o, otlptracehttp.WithEndpointURL(tracesURL(tr.Endpoint)))
		case tr.Endpoint != "":
			o = append(o, otlptracehttp.WithEndpoint(tr.Endpoint))
		}
		if tr.Insecure && !url {
			o = append(o, otlptracehttp.WithInsecure())
		}
		return otlptracehttp.New(ctx, o...)
	default:
		return nil, fmt.Errorf("telemetry: OTLP protocol %q is not one of http/protobuf, grpc", p)
	}
}

// tracesURL is the URL spans are POSTed to: endpoint, or, if it has no
// path, endpoint's /v1/traces (as for OTEL_EXPORTER_OTLP_ENDPOINT).
func tracesURL(endpoint string) string {
	u, err := neturl.Parse(endpoint)
	if err != nil || strings.Trim(u.Path, "/") != "" {
		return endpoint
	}
	u.Path = "/v1/traces"
	return u.String()
}

// Outcome is how a request or a backend call ended.
type Outcome uint8

// Outcomes, as label values.
const (
	// OK: a result.
	OK Outcome = iota
	// ToolError: a tools/call result with isError (the tool failed, or
	// vmcp could not reach its backend).
	ToolError
	// Error: a JSON-RPC error answer.
	Error
	// Denied: refused by policy.
	Denied
	// Failed: the backend could not be reached or its answer not read.
	Failed
	// Cancelled: the caller gave up, or vmcp stopped.
	Cancelled
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "tool_error", "error", "denied", "failed", "cancelled"}

func (o Outcome) String() string {
	if o < numOutcomes {
		return outcomeNames[o]
	}
	return strconv.Itoa(int(o))
}

// errorLog logs the SDK's failures, at most one a minute.
type errorLog struct {
	logger *slog.Logger
	mu     sync.Mutex // guards last
	last   time.Time
}

func (l *errorLog) Handle(err error) {
	l.mu.Lock()
	now := time.Now()
	quiet := now.Sub(l.last) < time.Minute
	if !quiet {
		l.last = now
	}
	l.mu.Unlock()
	if !quiet {
		l.logger.Warn("telemetry: exporting spans failed (logged once a minute)", "error", err)
	}
}
