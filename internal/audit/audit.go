package audit

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"time"

	sjson "github.com/segmentio/encoding/json"
)

// Options configure a [Log].
type Options struct {
	// IncludeArguments writes call arguments into records. Default: false.
	IncludeArguments bool
	// IncludeClaims writes the caller's claim values into decision
	// records. Default: false.
	IncludeClaims bool
	// FlushInterval bounds how long a record waits in the buffer before it
	// is written. Default: 200ms.
	FlushInterval time.Duration
	// Logger receives write failures (rate-limited). Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Log is an audit log. Records are buffered and written at least every
// FlushInterval, and on Close. It is safe for concurrent use; a nil *Log
// writes nothing.
type Log struct {
	opts Options
	dst  io.Writer

	mu      sync.Mutex // guards the fields below
	w       *bufio.Writer
	dirty   bool
	lastErr time.Time // of the last write failure logged
	closed  bool

	stop chan struct{}
	done chan struct{}
}

// New returns a log writing to dst, and starts its flusher; Close stops it.
func New(dst io.Writer, opts *Options) *Log {
	l := &Log{dst: dst, w: bufio.NewWriterSize(dst, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	if opts != nil {
		l.opts = *opts
	}
	if l.opts.FlushInterval <= 0 {
		l.opts.FlushInterval = 200 * time.Millisecond
	}
	if l.opts.Logger == nil {
		l.opts.Logger = slog.New(slog.DiscardHandler)
	}
	if l.opts.Now == nil {
		l.opts.Now = time.Now
	}
	go l.flusher()
	return l
}

// Arguments reports whether records carry arguments (so that callers
// gather them only then).
func (l *Log) Arguments() bool { return l != nil && l.opts.IncludeArguments }

// Claims reports whether decision records carry claim values.
func (l *Log) Claims() bool { return l != nil && l.opts.IncludeClaims }

func (l *Log) flusher() {
	defer close(l.done)
	t := time.NewTicker(l.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			if l.dirty {
				l.flushLocked()
			}
			l.mu.Unlock()
		}
	}
}

func (l *Log) flushLocked() {
	l.dirty = false
	if err := l.w.Flush(); err != nil {
		l.failed(err)
		l.w.Reset(l.dst) // drop what could not be written rather than fail every later record
	}
}

// failed logs a write failure, at most once a minute.
func (l *Log) failed(err error) {
	now := time.Now()
	if now.Sub(l.lastErr) < time.Minute {
		return
	}
	l.lastErr = now
	l.opts.Logger.Error("writing the audit log failed; records are being lost", "error", err)
}

// Close writes what is buffered and stops the flusher. Records after it
// are dropped.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	err := l.w.Flush()
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	return err
}

// Who is the caller a record is about.
type Who struct {
	// Principal is the caller's subject ("anonymous" without one).
	Principal string
	// ClientID is the OAuth client the caller's token was issued to, if
	// known.
	ClientID string
	// Session is the MCP session, if any.
	Session string
	// TraceID links the record to the request's trace, if traced.
	TraceID string
}

// EvalError is a policy whose evaluation failed (its message is not
// written: it can quote claim values).
type EvalError struct {
	Policy   string `json:"policy"`
	Position string `json:"position,omitempty"`
}

// Decision is one authorization decision.
type Decision struct {
	Who
	// Action is the policy action (call_tool, list_tools…).
	Action string
	// Resource is the Cedar entity decided on (Vmcp::Tool::"name"), or
	// the virtual server for a list.
	Resource string
	Allowed  bool
	// Policies are the ids of the policies that decided.
	Policies []string
	// Errors are the policies that failed to evaluate.
	Errors []EvalError
	// ClaimSources are the sources of the caller's claims (token, id_token,
	// userinfo, upstream_access_token).
	ClaimSources []string
	// Claims are the claim values, written only with IncludeClaims.
	Claims map[string]any
	// Arguments are the call's arguments, written only with
	// IncludeArguments.
	Arguments json.RawMessage
}

// Call is one request sent to a backend.
type Call struct {
	Who
	// Action is the policy action of the request (call_tool, get_prompt,
	// read_resource), or its MCP method where none applies.
	Action   string
	Resource string
	Backend  string
	Latency  time.Duration
	// Outcome is ok, tool_error, error, failed or cancelled.
	Outcome string
	// Arguments, written only with IncludeArguments.
	Arguments json.RawMessage
}

// record is the JSON form of both kinds, in field order.
type record struct {
	Time         string          `json:"time"`
	Kind         string          `json:"kind"`
	Principal    string          `json:"principal"`
	ClientID     string          `json:"client_id,omitempty"`
	Session      string          `json:"session,omitempty"`
	Action       string          `json:"action"`
	Resource     string          `json:"resource"`
	Decision     string          `json:"decision,omitempty"`
	Policies     []string        `json:"policies,omitempty"`
	Errors       []EvalError     `json:"errors,omitempty"`
	ClaimSources []string        `json:"claim_sources,omitempty"`
	Claims       map[string]any  `json:"claims,omitempty"`
	Backend      string          `json:"backend,omitempty"`
	LatencyMS    *float64        `json:"latency_ms,omitempty"`
	Outcome      string          `json:"outcome,omitempty"`
	Arguments    json.RawMessage `json:"arguments,omitempty"`
	TraceID      string          `json:"trace_id,omitempty"`
}

// Decide writes a decision record.
func (l *Log) Decide(d *Decision) {
	if l == nil {
		return
	}
	r := record{Kind: "decision", Principal: d.Principal, ClientID: d.ClientID, Session: d.Session, Action: d.Action,
		Resource: d.Resource, Decision: "deny", Policies: d.Policies, Errors: d.Errors, ClaimSources: d.ClaimSources, TraceID: d.TraceID}
	if d.Allowed {
		r.Decision = "allow"
	}
	if l.opts.IncludeClaims {
		r.Claims = d.Claims
	}
	if l.opts.IncludeArguments {
		r.Arguments = d.Arguments
	}
	l.write(&r)
}

// Called writes a call record.
func (l *Log) Called(c *Call) {
	if l == nil {
		return
	}
	ms := float64(c.Latency.Microseconds()) / 1000
	r := record{Kind: "call", Principal: c.Principal, ClientID: c.ClientID, Session: c.Session, Action: c.Action,
		Resource: c.Resource, Backend: c.Backend, LatencyMS: &ms, Outcome: c.Outcome, TraceID: c.TraceID}
	if l.opts.IncludeArguments {
		r.Arguments = c.Arguments
	}
	l.write(&r)
}

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (l *Log) write(r *record) {
	if r.Principal == "" {
		r.Principal = "anonymous"
	}
	if len(r.Arguments) > 0 && !json.Valid(r.Arguments) {
		r.Arguments = nil
	}
	r.Time = l.opts.Now().UTC().Format(time.RFC3339Nano)
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	out, err := sjson.Append((*bp)[:0], r, sjson.EscapeHTML|sjson.SortMapKeys)
	if err != nil {
		return
	}
	out = append(out, '\n')
	*bp = out
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if _, err := l.w.Write(out); err != nil {
		l.failed(err)
		l.w.Reset(l.dst)
		return
	}
	l.dirty = true
}
