package telemetry

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Request is one MCP request being served. A nil *Request does nothing.
type Request struct {
	t      *Telemetry
	edge   *edgeSpan  // the edge's server span, renamed after the request
	span   trace.Span // or a span of its own (a handler not behind Edge)
	method methodID
	denied bool
}

type requestKey struct{}

// StartRequest begins an MCP request: method as the client sent it, tool
// the catalog's name of the tool it calls (or ""), session its session id
// (or ""), path "fast" or "sdk". End it with [Request.End].
func (t *Telemetry) StartRequest(ctx context.Context, method, tool, session, path string) (context.Context, *Request) {
	if t == nil {
		return ctx, nil
	}
	r := &Request{t: t, method: methodOf(method)}
	if t.tracer != nil {
		name := methodNames[r.method]
		if tool != "" {
			name += " " + tool
		}
		// The request is the edge's server span, renamed after the MCP
		// request (as the MCP semantic conventions name it): one span
		// fewer per request; the edge adds the method and session. Without
		// one (a handler not behind Edge), a span of its own.
		switch es, own := t.serverSpan(ctx); {
		case es != nil:
			r.edge = es
			es.SetName(name)
			if tool != "" {
				es.add(attribute.String("vmcp.path", path), attribute.String("gen_ai.tool.name", tool))
			} else {
				es.add(attribute.String("vmcp.path", path))
			}
		case own:
			var buf [4]attribute.KeyValue
			attrs := append(buf[:0], attribute.String("vmcp.path", path), attribute.String("mcp.method.name", methodNames[r.method]))
			if tool != "" {
				attrs = append(attrs, attribute.String("gen_ai.tool.name", tool))
			}
			if session != "" {
				attrs = append(attrs, attribute.String("mcp.session.id", session))
			}
			ctx, r.span = t.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
		}
	}
	return context.WithValue(ctx, requestKey{}, r), r
}

// End counts the request by its outcome (a request whose decision denied
// it, answered with an error, counts as denied) and ends its span.
func (r *Request) End(o Outcome) {
	if r == nil || r.t == nil {
		return
	}
	if r.denied && o == Error {
		o = Denied
	}
	if m := r.t.m; m != nil {
		m.request(r.method, o)
	}
	var span trace.Span
	switch {
	case r.edge != nil:
		r.edge.add(attribute.String("vmcp.outcome", o.String()))
		span = r.edge
	case r.span != nil:
		r.span.SetAttributes(attribute.String("vmcp.outcome", o.String()))
		span = r.span
	default:
		return
	}
	if o == Error {
		span.SetStatus(codes.Error, o.String())
	}
	if r.span != nil {
		r.span.End()
	}
}

// serverSpan returns the edge's recording server span of ctx's request:
// ctx's own span, or the one Handoff registered under the span id ctx
// carries (Adopt). Else own says whether the request needs a span of its
// own: it is not behind the edge (no span), or its caller's trace is
// sampled; a request whose trace is not sampled records nothing.
func (t *Telemetry) serverSpan(ctx context.Context) (es *edgeSpan, own bool) {
	span := trace.SpanFromContext(ctx)
	if es, ok := span.(*edgeSpan); ok {
		if es.IsRecording() {
			return es, false
		}
		return nil, false
	}
	sc := span.SpanContext()
	if !sc.IsValid() {
		return nil, true
	}
	if s, ok := t.live.Load(sc.SpanID()); ok {
		return s.(*edgeSpan), false
	}
	return nil, sc.IsSampled()
}

// Abandon ends the request's span without counting it: another path
// serves the request after all.
func (r *Request) Abandon() {
	if r == nil {
		return
	}
	r.t = nil
	if r.span != nil {
		r.span.SetAttributes(attribute.String("vmcp.outcome", "handed_on"))
		r.span.End()
	}
	r.span, r.edge = nil, nil
}

// Decision describes a policy decision for its span.
type Decision struct {
	Action       string
	Resource     string
	Allowed      bool
	Policies     []string
	Errors       int
	ClaimSources []string
}

// Decide records a policy decision made since start ([Telemetry.Now]) in
// the request of ctx: its span, and a denial for the request's outcome.
func (t *Telemetry) Decide(ctx context.Context, start time.Time, d *Decision) {
	if t == nil {
		return
	}
	if !d.Allowed {
		if r, _ := ctx.Value(requestKey{}).(*Request); r != nil {
			r.denied = true
		}
	}
	if t.tracer == nil || !sampled(ctx) {
		return
	}
	decision := "deny"
	if d.Allowed {
		decision = "allow"
	}
	_, span := t.tracer.Start(ctx, "authorize", trace.WithTimestamp(start), trace.WithAttributes(
		attribute.String("vmcp.authz.action", d.Action), attribute.String("vmcp.authz.resource", d.Resource),
		attribute.String("vmcp.authz.decision", decision), attribute.StringSlice("vmcp.authz.policies", d.Policies),
		attribute.Int("vmcp.authz.errors", d.Errors), attribute.StringSlice("vmcp.authz.claim_sources", d.ClaimSources)))
	if d.Errors > 0 {
		span.SetStatus(codes.Error, "policy evaluation failed")
	}
	span.End()
}

// sampled reports whether a span started in ctx may record: its parent is
// sampled, or it has none (the sampler decides). A child of an unsampled
// parent never records (the sampler is parent-based), so none is made.
func sampled(ctx context.Context) bool {
	sc := trace.SpanContextFromContext(ctx)
	return !sc.IsValid() || sc.IsSampled()
}

// Call is one request to a backend. The zero Call does nothing.
type Call struct {
	t      *Telemetry
	span   trace.Span
	start  time.Time
	key    callKey
	series *callSeries
	item   string
}

// Spans' kinds, made once: an option is an interface value.
var (
	clientKind = trace.WithSpanKind(trace.SpanKindClient)
	serverKind = trace.WithSpanKind(trace.SpanKindServer)
)

// StartCall begins a request to backend: method its MCP method, tool the
// catalog's name of the tool it calls (tools/call) or "", original the
// backend's own name of the item. The returned context carries the call's
// span, whose trace context [Telemetry.Transport] sends to the backend.
func (t *Telemetry) StartCall(ctx context.Context, backend, method, tool, original string) (context.Context, Call) {
	if t == nil {
		return ctx, Call{}
	}
	c := Call{t: t, key: callKey{backend: backend, method: Method(method), tool: tool}, item: original}
	c.series = t.callSeriesOf(c.key)
	if t.tracer != nil && sampled(ctx) {
		// The attributes are set when it ends, in one call: each call
		// grows the span's slice.
		ctx, c.span = t.tracer.Start(ctx, c.series.name, clientKind)
		c.start = startTime(c.span)
	} else {
		c.start = time.Now()
	}
	return ctx, c
}

// startTime is when span started (the SDK read the clock), or now.
func startTime(span trace.Span) time.Time {
	if ro, ok := span.(sdktrace.ReadOnlySpan); ok {
		return ro.StartTime()
	}
	return time.Now()
}

// endTime ends span and returns when (the SDK reads the clock).
func endTime(span trace.Span) time.Time {
	span.End()
	if ro, ok := span.(sdktrace.ReadOnlySpan); ok {
		if t := ro.EndTime(); !t.IsZero() {
			return t
		}
	}
	return time.Now()
}

// End counts and times the call, and ends its span; err is the failure,
// if any (its text goes into the span's status).
func (c Call) End(o Outcome, err error) time.Duration {
	if c.t == nil {
		return 0
	}
	var d time.Duration
	if c.span != nil {
		var buf [5]attribute.KeyValue
		attrs := append(buf[:0], attribute.String("vmcp.backend", c.key.backend), attribute.String("mcp.method.name", c.key.method),
			attribute.String("vmcp.backend.item", c.item))
		if c.key.tool != "" {
			attrs = append(attrs, attribute.String("gen_ai.tool.name", c.key.tool))
		}
		c.span.SetAttributes(append(attrs, attribute.String("vmcp.outcome", o.String()))...)
		if o == Failed || o == Error {
			msg := o.String()
			if err != nil {
				msg = err.Error()
			}
			c.span.SetStatus(codes.Error, msg)
		}
		d = endTime(c.span).Sub(c.start)
	} else {
		d = time.Since(c.start)
	}
	if m := c.t.m; m != nil {
		m.call(c.key, c.series, o, d.Seconds())
	}
	return d
}

// Transport returns base, sending with every request the trace context of
// its context (a backend call's span) as a W3C traceparent, if tracing is
// on.
func (t *Telemetry) Transport(base http.RoundTripper) http.RoundTripper {
	if t == nil || t.tracer == nil {
		return base
	}
	if base == nil {
		base = http.DefaultTransport
	}
	return &propagating{base: base, prop: t.prop}
}

type propagating struct {
	base http.RoundTripper
	prop propagation.TextMapPropagator
}

func (p *propagating) RoundTrip(r *http.Request) (*http.Response, error) {
	if !trace.SpanContextFromContext(r.Context()).IsValid() {
		return p.base.RoundTrip(r)
	}
	// A RoundTripper must not change its request: a copy with a header of
	// its own, sharing the values (none is changed, the trace context's
	// are added).
	out := *r
	out.Header = make(http.Header, len(r.Header)+2)
	for k, v := range r.Header {
		out.Header[k] = v
	}
	p.prop.Inject(r.Context(), headerCarrier(out.Header))
	return p.base.RoundTrip(&out)
}

// headerCarrier is propagation.HeaderCarrier, but writes the W3C trace
// context's keys without canonicalizing them (which allocates: they are
// lower case).
type headerCarrier http.Header

func (h headerCarrier) Get(key string) string { return http.Header(h).Get(key) }

func (h headerCarrier) Keys() []string { return propagation.HeaderCarrier(h).Keys() }

func (h headerCarrier) Set(key, value string) {
	switch key {
	case "traceparent":
		h["Traceparent"] = []string{value}
	case "tracestate":
		h["Tracestate"] = []string{value}
	default:
		http.Header(h).Set(key, value)
	}
}

// Handoff writes the trace context of r's context into r's header, for a
// handler that sees the request's header but not its context (the
// go-sdk's: a session's handlers run in the session's context). Adopt
// reads it back.
func (t *Telemetry) Handoff(w http.ResponseWriter, r *http.Request) {
	if t == nil || t.tracer == nil {
		return
	}
	t.prop.Inject(r.Context(), headerCarrier(r.Header))
	if rec := recorderOf(w); rec != nil && rec.traced && !rec.handed && rec.span.IsRecording() {
		rec.handed = true
		t.live.Store(rec.span.SpanContext().SpanID(), &rec.span)
	}
}

// Adopt returns ctx with the trace context Handoff wrote into h as its
// parent span, replacing whatever span ctx carried (a session's context
// carries its initialize's).
func (t *Telemetry) Adopt(ctx context.Context, h http.Header) context.Context {
	if t == nil || t.tracer == nil {
		return ctx
	}
	sc := trace.SpanContextFromContext(t.prop.Extract(context.Background(), propagation.HeaderCarrier(h)))
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// TraceID returns the trace id of ctx's span, or "".
func (t *Telemetry) TraceID(ctx context.Context) string {
	if t == nil || t.tracer == nil {
		return ""
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc.TraceID().String()
	}
	return ""
}
