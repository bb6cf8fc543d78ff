package telemetry

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Request is one MCP request being served. A nil *Request does nothing.
type Request struct {
	t      *Telemetry
	span   trace.Span // the request's server span (the edge's), or one of its own (owned)
	owned  bool
	method string // label value
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
	r := &Request{t: t, method: Method(method)}
	if t.tracer != nil {
		name := r.method
		var buf [4]attribute.KeyValue
		attrs := append(buf[:0], attribute.String("vmcp.path", path))
		if tool != "" {
			name += " " + tool
			attrs = append(attrs, attribute.String("gen_ai.tool.name", tool))
		}
		// The request is the edge's server span, renamed after the MCP
		// request (as the MCP semantic conventions name it): one span
		// fewer per request; the edge adds the method and session. Without
		// one (a handler not behind Edge), a span of its own.
		if span := t.serverSpan(ctx); span != nil {
			r.span = span
			span.SetName(name)
			span.SetAttributes(attrs...)
		} else {
			attrs = append(attrs, attribute.String("mcp.method.name", r.method))
			if session != "" {
				attrs = append(attrs, attribute.String("mcp.session.id", session))
			}
			ctx, r.span = t.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
			r.owned = true
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
		m.requests.WithLabelValues(r.method, o.String()).Inc()
	}
	if r.span != nil {
		r.span.SetAttributes(attribute.String("vmcp.outcome", o.String()))
		if o == Error {
			r.span.SetStatus(codes.Error, o.String())
		}
		if r.owned {
			r.span.End()
		}
	}
}

// serverSpan returns the edge's recording server span of ctx's request:
// ctx's own span, or the one Handoff registered under the span id ctx
// carries (Adopt), or nil.
func (t *Telemetry) serverSpan(ctx context.Context) trace.Span {
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() {
		if s, ok := span.(interface{ SpanKind() trace.SpanKind }); ok && s.SpanKind() != trace.SpanKindServer {
			return nil
		}
		return span
	}
	if s, ok := t.live.Load(span.SpanContext().SpanID()); ok {
		return s.(trace.Span)
	}
	return nil
}

// Abandon ends the request's span without counting it: another path
// serves the request after all.
func (r *Request) Abandon() {
	if r == nil {
		return
	}
	r.t = nil
	if r.span != nil && r.owned {
		r.span.SetAttributes(attribute.String("vmcp.outcome", "handed_on"))
		r.span.End()
	}
	r.span = nil
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
	if t.tracer == nil {
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

// Call is one request to a backend. The zero Call does nothing.
type Call struct {
	t                     *Telemetry
	span                  trace.Span
	start                 time.Time
	backend, method, tool string
}

// StartCall begins a request to backend: method its MCP method, tool the
// catalog's name of the tool it calls (tools/call) or "", original the
// backend's own name of the item. The returned context carries the call's
// span, whose trace context [Telemetry.Transport] sends to the backend.
func (t *Telemetry) StartCall(ctx context.Context, backend, method, tool, original string) (context.Context, Call) {
	if t == nil {
		return ctx, Call{}
	}
	c := Call{t: t, start: time.Now(), backend: backend, method: Method(method), tool: tool}
	if t.tracer != nil {
		attrs := make([]attribute.KeyValue, 0, 5)
		attrs = append(attrs, attribute.String("vmcp.backend", backend), attribute.String("mcp.method.name", c.method),
			attribute.String("vmcp.backend.item", original))
		if tool != "" {
			attrs = append(attrs, attribute.String("gen_ai.tool.name", tool))
		}
		ctx, c.span = t.tracer.Start(ctx, c.method+" "+backend, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithTimestamp(c.start), trace.WithAttributes(attrs...))
	}
	return ctx, c
}

// End counts and times the call, and ends its span; err is the failure,
// if any (its text goes into the span's status).
func (c Call) End(o Outcome, err error) time.Duration {
	if c.t == nil {
		return 0
	}
	d := time.Since(c.start)
	if m := c.t.m; m != nil {
		m.calls.WithLabelValues(c.backend, c.method, c.tool, o.String()).Inc()
		m.callTime.WithLabelValues(c.backend, c.method, c.tool).Observe(d.Seconds())
	}
	if c.span != nil {
		c.span.SetAttributes(attribute.String("vmcp.outcome", o.String()))
		if o == Failed || o == Error {
			msg := o.String()
			if err != nil {
				msg = err.Error()
			}
			c.span.SetStatus(codes.Error, msg)
		}
		c.span.End()
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
	out := *r // a RoundTripper must not change its request: a copy with its own header
	out.Header = r.Header.Clone()
	if out.Header == nil {
		out.Header = http.Header{}
	}
	p.prop.Inject(r.Context(), propagation.HeaderCarrier(out.Header))
	return p.base.RoundTrip(&out)
}

// Handoff writes the trace context of r's context into r's header, for a
// handler that sees the request's header but not its context (the
// go-sdk's: a session's handlers run in the session's context). Adopt
// reads it back.
func (t *Telemetry) Handoff(w http.ResponseWriter, r *http.Request) {
	if t == nil || t.tracer == nil {
		return
	}
	t.prop.Inject(r.Context(), propagation.HeaderCarrier(r.Header))
	if rec := recorderOf(w); rec != nil && rec.span != nil && !rec.handed {
		rec.handed = true
		t.live.Store(rec.span.SpanContext().SpanID(), rec.span)
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
