package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sjson "github.com/segmentio/encoding/json"
)

// Options configure a [Log].
type Options struct {
	// IncludeArguments writes call arguments into records. Default: false.
	IncludeArguments bool
	// IncludeClaims writes the caller's claim values into decision
	// records. Default: false.
	IncludeClaims bool
	// FlushInterval bounds how long a record waits before it is written.
	// Default: 200ms.
	FlushInterval time.Duration
	// MaxPending bounds the bytes of records waiting to be written: a
	// record that would exceed it waits until the writer has taken what
	// is pending (records are never dropped for want of room). Default:
	// 1 MiB.
	MaxPending int
	// MaxWait bounds how long a request waits for room (the file stalls:
	// a hung disk or a pipe nobody reads); a record that finds no room in
	// that time is lost, counted and logged, and the request goes on.
	// Default: 2s.
	MaxWait time.Duration
	// Metrics, if set, gets the audit log's metrics registered
	// (vmcp_audit_records_lost_total, vmcp_audit_waits_total).
	Metrics prometheus.Registerer
	// Logger receives write failures (rate-limited). Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Log is an audit log. A request encodes its record and appends it to
// the records pending, under a lock held for a copy; a writer goroutine
// of the log's own takes what is pending and writes it, outside the
// lock, at least every FlushInterval, when 64 KiB are pending, and on
// Close. Requests never wait for the file unless MaxPending bytes are
// pending (the file does not keep up): then they wait for the writer,
// rather than lose records, but at most MaxWait — a stalled file never
// hangs requests. Records that cannot be written (the file fails or
// stalls) are lost, counted and logged. It is safe for concurrent use; a
// nil *Log writes nothing.
type Log struct {
	opts Options
	dst  io.Writer

	mu      sync.Mutex    // guards pending, room and closed
	room    chan struct{} // closed (and replaced) when the writer takes what is pending, and on Close
	pending []byte
	closed  bool

	spare   []byte     // the writer's: the buffer it last wrote, reused
	logMu   sync.Mutex // guards lastErr (the writer and requests that gave up waiting)
	lastErr time.Time  // of the last failure logged
	err     error      // the writer's: the last write's failure, for Close

	lost, waits prometheus.Counter // nil: not registered

	wake chan struct{} // a nudge to the writer: 64 KiB pending
	stop chan struct{}
	done chan struct{}
}

// flushAt is how many bytes pending wake the writer before its interval.
const flushAt = 64 << 10

// New returns a log writing to dst, and starts its writer; Close stops it.
func New(dst io.Writer, opts *Options) *Log {
	l := &Log{dst: dst, room: make(chan struct{}), wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if opts != nil {
		l.opts = *opts
	}
	if l.opts.FlushInterval <= 0 {
		l.opts.FlushInterval = 200 * time.Millisecond
	}
	if l.opts.MaxPending <= 0 {
		l.opts.MaxPending = 1 << 20
	}
	if l.opts.MaxWait <= 0 {
		l.opts.MaxWait = 2 * time.Second
	}
	if l.opts.Logger == nil {
		l.opts.Logger = slog.New(slog.DiscardHandler)
	}
	if l.opts.Now == nil {
		l.opts.Now = time.Now
	}
	if reg := l.opts.Metrics; reg != nil {
		l.lost = registerCounter(reg, "vmcp_audit_records_lost_total",
			"Audit records that could not be written (the audit log's file failed, or stalled for longer than a request may wait); each failure is also logged at ERROR.")
		l.waits = registerCounter(reg, "vmcp_audit_waits_total",
			"Audit records whose request waited for the audit log's writer: the file did not keep up (1 MiB of records pending).")
	}
	l.pending = make([]byte, 0, flushAt)
	l.spare = make([]byte, 0, flushAt)
	go l.writer()
	return l
}

// registerCounter registers a counter, or finds the one registered (a
// second log in the process, tests).
func registerCounter(reg prometheus.Registerer, name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	if err := reg.Register(c); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			if existing, ok := are.ExistingCollector.(prometheus.Counter); ok {
				return existing
			}
		}
	}
	return c
}

// Arguments reports whether records carry arguments (so that callers
// gather them only then).
func (l *Log) Arguments() bool { return l != nil && l.opts.IncludeArguments }

// Claims reports whether decision records carry claim values.
func (l *Log) Claims() bool { return l != nil && l.opts.IncludeClaims }

func (l *Log) writer() {
	defer close(l.done)
	t := time.NewTicker(l.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			l.flush()
			return
		case <-l.wake:
		case <-t.C:
		}
		l.flush()
	}
}

// flush writes what is pending (the writer's goroutine only).
func (l *Log) flush() {
	l.mu.Lock()
	buf := l.pending
	l.pending = l.spare[:0]
	close(l.room)
	l.room = make(chan struct{})
	l.mu.Unlock()
	l.spare = buf
	if len(buf) == 0 {
		return
	}
	if _, err := l.dst.Write(buf); err != nil {
		l.err = err
		n := bytes.Count(buf, []byte{'\n'})
		if l.lost != nil {
			l.lost.Add(float64(n))
		}
		l.failed(err, n)
	}
}

// failed logs a write failure, at most once a minute.
func (l *Log) failed(err error, lost int) {
	l.logMu.Lock()
	now := time.Now()
	if now.Sub(l.lastErr) < time.Minute {
		l.logMu.Unlock()
		return
	}
	l.lastErr = now
	l.logMu.Unlock()
	l.opts.Logger.Error("writing the audit log failed; records are being lost", "error", err, "records", lost)
}

// Close writes what is pending and stops the writer; it returns the last
// write's failure, if any. Records after it are dropped.
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
	close(l.room)
	l.room = make(chan struct{})
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	return l.err
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

// errStalled is why a record was lost when the file stopped taking records.
var errStalled = errors.New("the audit file has not taken records for longer than a request may wait (audit MaxWait)")

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// write encodes r, its time first, and appends it to what is pending.
func (l *Log) write(r *record) {
	if r.Principal == "" {
		r.Principal = "anonymous"
	}
	if len(r.Arguments) > 0 && !json.Valid(r.Arguments) {
		r.Arguments = nil
	}
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	out := append((*bp)[:0], `{"time":"`...)
	out = l.opts.Now().UTC().AppendFormat(out, time.RFC3339Nano)
	out = append(out, '"', ',')
	rest := len(out)
	out, err := sjson.Append(out, r, sjson.EscapeHTML|sjson.SortMapKeys)
	if err != nil || len(out) == rest || out[rest] != '{' {
		return
	}
	out = append(append(out[:rest], out[rest+1:]...), '\n') // the record's fields after the time
	*bp = out
	l.mu.Lock()
	waited := false
	var deadline *time.Timer
	for !l.closed && len(l.pending) > 0 && len(l.pending)+len(out) > l.opts.MaxPending {
		waited = true
		if deadline == nil {
			deadline = time.NewTimer(l.opts.MaxWait)
			defer deadline.Stop()
		}
		room := l.room
		l.mu.Unlock()
		select {
		case <-room:
			l.mu.Lock()
		case <-deadline.C:
			if l.lost != nil {
				l.lost.Inc()
			}
			if l.waits != nil {
				l.waits.Inc()
			}
			l.failed(errStalled, 1)
			return
		}
	}
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.pending = append(l.pending, out...)
	full := len(l.pending) >= flushAt
	l.mu.Unlock()
	if full {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	if waited && l.waits != nil {
		l.waits.Inc()
	}
}
