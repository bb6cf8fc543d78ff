package telemetry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Edge wraps the MCP endpoint: each request gets a server span (continuing
// the client's trace if it sent a traceparent), is counted by HTTP method
// and status with its bytes, and, if the access log is on, logged. A POST
// whose MCP method the endpoint noted ([Telemetry.NoteMethod]) has its
// duration observed by method.
func (t *Telemetry) Edge(next http.Handler) http.Handler {
	if t == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		if r.Body != nil && r.Body != http.NoBody {
			rec.body.ReadCloser = r.Body
			r.Body = &rec.body
		}
		var start time.Time
		if t.tracer != nil {
			// The span's start is the request's: one clock read.
			ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			_, span := t.tracer.Start(ctx, spanName(r.Method, r.Pattern), serverKind)
			start = startTime(span)
			rec.span.Span, rec.traced = span, true
			if span.IsRecording() {
				rec.span.add(attribute.String("http.request.method", r.Method))
			}
			r = r.WithContext(trace.ContextWithSpan(ctx, &rec.span))
		} else {
			start = time.Now()
		}
		next.ServeHTTP(rec, r)
		t.finish(rec, r, start)
	})
}

// spanName is the name of a request's server span until the MCP request
// renames it: "POST /mcp".
func spanName(method, pattern string) string {
	if pattern == "/mcp" {
		switch method {
		case http.MethodPost:
			return "POST /mcp"
		case http.MethodGet:
			return "GET /mcp"
		case http.MethodDelete:
			return "DELETE /mcp"
		}
	}
	return method + " " + pattern
}

func (t *Telemetry) finish(rec *recorder, r *http.Request, start time.Time) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK // nothing written, or the connection was taken over for a stream
	}
	session := r.Header.Get("Mcp-Session-Id")
	if session == "" {
		session = rec.Header().Get("Mcp-Session-Id") // an initialize's new session
	}
	var end time.Time
	if rec.traced {
		span := &rec.span
		if span.IsRecording() {
			var buf [3]attribute.KeyValue
			attrs := append(buf[:0], attribute.Int("http.response.status_code", status))
			if rec.noted {
				attrs = append(attrs, attribute.String("mcp.method.name", methodNames[rec.method]))
			}
			if session != "" {
				attrs = append(attrs, attribute.String("mcp.session.id", session))
			}
			span.flush(attrs...)
			if status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
		}
		if rec.handed {
			t.live.Delete(span.SpanContext().SpanID())
		}
		end = endTime(span.Span)
	} else {
		end = time.Now()
	}
	d := end.Sub(start)
	if m := t.m; m != nil {
		m.httpRequest(r.Method, status)
		if rec.body.n > 0 {
			m.in.Add(float64(rec.body.n))
		}
		if rec.written > 0 {
			m.out.Add(float64(rec.written))
		}
		if rec.noted && r.Method == http.MethodPost {
			m.answered(rec.method, d.Seconds())
		}
	}
	if t.access != nil {
		attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status),
			slog.Duration("duration", d), slog.Int64("bytes_in", rec.body.n), slog.Int64("bytes_out", rec.written)}
		if rec.noted {
			attrs = append(attrs, slog.String("mcp_method", methodNames[rec.method]))
		}
		if session != "" {
			attrs = append(attrs, slog.String("session", session))
		}
		t.access.LogAttrs(context.Background(), slog.LevelInfo, "http request", attrs...)
	}
}

// NoteMethod tells the edge the MCP method of the request w answers (the
// label value is bounded: [Method]).
func (t *Telemetry) NoteMethod(w http.ResponseWriter, method string) {
	if t == nil {
		return
	}
	if rec := recorderOf(w); rec != nil {
		rec.method, rec.noted = methodOf(method), true
	}
}

// recorderOf finds the edge's recorder under w's wrappers, or nil.
func recorderOf(w http.ResponseWriter) *recorder {
	for range 4 {
		switch x := w.(type) {
		case *recorder:
			return x
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return nil
		}
	}
	return nil
}

// recorder notes a response's status and size.
type recorder struct {
	http.ResponseWriter
	status  int
	written int64
	method  methodID // the MCP method, if noted
	noted   bool
	traced  bool // span is the request's server span
	handed  bool // span is in Telemetry.live (Handoff)
	span    edgeSpan
	body    countingBody
}

// edgeSpan is a request's server span, which gathers its attributes until
// the request ends and sets them in one call: each SetAttributes grows
// the span's slice, a copy each time.
type edgeSpan struct {
	trace.Span
	mu    sync.Mutex // guards the fields below: a detached stream's handler may outlive the request
	attrs [8]attribute.KeyValue
	n     int
	ended bool
}

func (s *edgeSpan) add(kv ...attribute.KeyValue) {
	s.mu.Lock()
	if !s.ended {
		s.n += copy(s.attrs[s.n:], kv)
	}
	s.mu.Unlock()
}

// flush sets the attributes gathered and kv on the span; later ones are
// dropped (as a span's are once it ends).
func (s *edgeSpan) flush(kv ...attribute.KeyValue) {
	s.mu.Lock()
	s.n += copy(s.attrs[s.n:], kv)
	s.ended = true
	s.mu.Unlock()
	s.Span.SetAttributes(s.attrs[:s.n]...)
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.written += int64(n)
	return n, err
}

func (w *recorder) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingBody counts what is read of a request body.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// Authentication wraps an authentication middleware so that its work is a
// span of its own (a child of the request's): the span ends when the
// middleware hands the request on, or returns having answered it (refused).
func (t *Telemetry) Authentication(mw func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	if t == nil || t.tracer == nil {
		return mw
	}
	return func(next http.Handler) http.Handler {
		inner := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a, _ := r.Context().Value(authKey{}).(*authSpan)
			if a == nil {
				next.ServeHTTP(w, r)
				return
			}
			a.passed = true
			a.span.End()
			next.ServeHTTP(w, r.WithContext(trace.ContextWithSpan(r.Context(), a.parent)))
		}))
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !sampled(r.Context()) {
				inner.ServeHTTP(w, r)
				return
			}
			parent := trace.SpanFromContext(r.Context())
			ctx, span := t.tracer.Start(r.Context(), "authenticate")
			a := &authSpan{span: span, parent: parent}
			inner.ServeHTTP(w, r.WithContext(context.WithValue(ctx, authKey{}, a)))
			if !a.passed {
				span.SetAttributes(attribute.String("vmcp.outcome", "refused"))
				span.End()
			}
		})
	}
}

type authKey struct{}

type authSpan struct {
	span, parent trace.Span
	passed       bool
}
