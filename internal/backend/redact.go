package backend

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"

	"github.com/vmcp-dev/vmcp/internal/backendauth"
)

// Secrets in backend URLs.
//
// A backend URL may carry a secret (a token in the query, user information).
// net/http quotes the URL in its errors, and errors become a backend's
// status on the unauthenticated /readyz, the text of failed calls and log
// records. Every error a backend keeps or returns is therefore redacted
// (the URL's secrets replaced by REDACTED), and so is every log record of
// the backend's logger (which the go-sdk's client logs with too).

// redactor takes a backend URL's secrets out of texts.
type redactor struct {
	r *strings.Replacer // nil: the URL has no secrets
}

func newRedactor(rawURL string) redactor {
	secrets := backendauth.URLSecrets(rawURL)
	if len(secrets) == 0 {
		return redactor{}
	}
	pairs := make([]string, 0, 2*len(secrets))
	for _, s := range secrets {
		pairs = append(pairs, s, backendauth.Redacted)
	}
	return redactor{r: strings.NewReplacer(pairs...)}
}

func (x redactor) text(s string) string {
	if x.r == nil {
		return s
	}
	return x.r.Replace(s)
}

// err returns err, or an error that reads as err redacted (and unwraps to
// it) if err's text holds a secret: one of the backend URL's, or one in the
// URL of a request net/http quotes (a redirect's target, say).
func (x redactor) err(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := msg
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			red = strings.ReplaceAll(red, ue.URL, backendauth.RedactURL(u))
		}
	}
	if x.r != nil {
		red = x.r.Replace(red)
	}
	if red == msg {
		return err
	}
	return &redactedError{err: err, msg: red}
}

type redactedError struct {
	err error
	msg string
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactHandler redacts the message and attribute values of every record.
type redactHandler struct {
	next slog.Handler
	x    redactor
}

func (h *redactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *redactHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.x.text(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *redactHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.x.text(v.String()))
	case slog.KindGroup:
		attrs := v.Group()
		red := make([]any, len(attrs))
		for i, ga := range attrs {
			red[i] = h.attr(ga)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, h.x.text(err.Error()))
		}
		return slog.String(a.Key, h.x.text(v.String()))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (h *redactHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = h.attr(a)
	}
	return &redactHandler{next: h.next.WithAttrs(red), x: h.x}
}

func (h *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{next: h.next.WithGroup(name), x: h.x}
}

// redactLogger returns l redacting x's secrets (l itself if none).
func redactLogger(l *slog.Logger, x redactor) *slog.Logger {
	if x.r == nil {
		return l
	}
	return slog.New(&redactHandler{next: l.Handler(), x: x})
}
