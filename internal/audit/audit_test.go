package audit_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vmcp-dev/vmcp/internal/audit"
	"github.com/vmcp-dev/vmcp/internal/testsupport/logbuf"
)

var fixed = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func records(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	return recs
}

func TestRecords(t *testing.T) {
	who := audit.Who{Principal: "alice", ClientID: "c1", Session: "s1", TraceID: "t1"}
	decision := &audit.Decision{Who: who, Action: "call_tool", Resource: `Vmcp::Tool::"search"`, Allowed: false,
		Errors: []audit.EvalError{{Policy: "needs-department", Position: "inline:1:1"}}, ClaimSources: []string{"token", "id_token"},
		Claims: map[string]any{"email": "alice@example.com"}, Arguments: json.RawMessage(`{"q":"secret"}`)}
	call := &audit.Call{Who: who, Action: "call_tool", Resource: `Vmcp::Tool::"search"`, Backend: "docs",
		Latency: 1500 * time.Microsecond, Outcome: "ok", Arguments: json.RawMessage(`{"q":"secret"}`)}
	for _, tc := range []struct {
		name           string
		opts           audit.Options
		args, claimsOK bool
	}{
		{name: "values left out", opts: audit.Options{}},
		{name: "arguments opted in", opts: audit.Options{IncludeArguments: true}, args: true},
		{name: "claims opted in", opts: audit.Options{IncludeClaims: true}, claimsOK: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := &logbuf.Buffer{}
			tc.opts.Now = func() time.Time { return fixed }
			l := audit.New(out, &tc.opts)
			l.Decide(decision)
			l.Called(call)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l.Called(call) // after Close: dropped
			got := records(t, out.String())
			want := []map[string]any{
				{"time": "2026-12-01T10:00:00Z", "kind": "decision", "principal": "alice", "client_id": "c1", "session": "s1",
					"action": "call_tool", "resource": `Vmcp::Tool::"search"`, "decision": "deny",
					"errors":        []any{map[string]any{"policy": "needs-department", "position": "inline:1:1"}},
					"claim_sources": []any{"token", "id_token"}, "trace_id": "t1"},
				{"time": "2026-12-01T10:00:00Z", "kind": "call", "principal": "alice", "client_id": "c1", "session": "s1",
					"action": "call_tool", "resource": `Vmcp::Tool::"search"`, "backend": "docs", "latency_ms": 1.5,
					"outcome": "ok", "trace_id": "t1"},
			}
			if tc.args {
				want[0]["arguments"] = map[string]any{"q": "secret"}
				want[1]["arguments"] = map[string]any{"q": "secret"}
			}
			if tc.claimsOK {
				want[0]["claims"] = map[string]any{"email": "alice@example.com"}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFlushedWithoutClose: a record reaches the writer within the flush
// interval, without waiting for Close.
func TestFlushedWithoutClose(t *testing.T) {
	out := &logbuf.Buffer{}
	l := audit.New(out, &audit.Options{FlushInterval: 10 * time.Millisecond})
	defer l.Close()
	l.Called(&audit.Call{Who: audit.Who{}, Action: "call_tool", Resource: "x", Outcome: "ok"})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), `"principal":"anonymous"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the record was not written in 10s: %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNilLog(t *testing.T) {
	var l *audit.Log
	l.Decide(&audit.Decision{})
	l.Called(&audit.Call{})
	if l.Arguments() || l.Claims() || l.Close() != nil {
		t.Error("a nil log does something")
	}
}

// gate is a writer that blocks until released, then keeps what it gets.
type gate struct {
	entered chan struct{} // a write began
	release chan struct{}
	out     logbuf.Buffer
}

func (g *gate) Write(p []byte) (int, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.release
	return g.out.Write(p)
}

// n is how many records blockedFile sends: ~150 bytes each, far more than
// the tests' MaxPending.
const n = 200

// blockedFile starts a log over a file whose first Write blocks until the
// gate is released, waits until the writer is in it, and then sends n
// records from a goroutine, which closes done when they are all in.
func blockedFile(t *testing.T, opts *audit.Options) (*gate, *audit.Log, chan struct{}) {
	t.Helper()
	g := &gate{entered: make(chan struct{}, 1), release: make(chan struct{})}
	l := audit.New(g, opts)
	call := &audit.Call{Who: audit.Who{Principal: "alice"}, Action: "call_tool", Resource: "x", Outcome: "ok"}
	l.Called(call)
	select { // the writer holds the first record, blocked in Write
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer did not write in 10s")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			l.Called(call)
		}
	}()
	return g, l, done
}

// TestSlowFileWaitsNeverDrops: while the file does not take records,
// requests keep appending until MaxPending bytes are pending; then they
// wait (counted) instead of dropping records, and every record is written
// once the file takes them.
func TestSlowFileWaitsNeverDrops(t *testing.T) {
	reg := prometheus.NewRegistry()
	g, l, done := blockedFile(t, &audit.Options{FlushInterval: time.Millisecond, MaxPending: 4096, MaxWait: time.Minute, Metrics: reg})
	select {
	case <-done:
		t.Fatal("200 records went into 4 KiB pending while the file was blocked: nothing waited")
	case <-time.After(50 * time.Millisecond): // proving a wait: the records cannot all fit
	}
	close(g.release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("requests still waiting 10s after the file took records again")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(g.out.String(), "\n"); got != n+1 {
		t.Errorf("%d records written, want %d: none may be lost", got, n+1)
	}
	if got := testutil.ToFloat64(counter(t, reg, "vmcp_audit_waits_total")); got == 0 {
		t.Error("vmcp_audit_waits_total = 0, want the waits counted")
	}
}

// TestStalledFileBoundsTheWait: a file that stops taking records (a hung
// disk) never hangs requests: each waits at most MaxWait, then its record
// is lost, counted and logged, and the request goes on.
func TestStalledFileBoundsTheWait(t *testing.T) {
	reg := prometheus.NewRegistry()
	logged := &logbuf.Buffer{}
	logger := slog.New(slog.NewTextHandler(logged, nil))
	g, l, done := blockedFile(t, &audit.Options{FlushInterval: time.Millisecond, MaxPending: 4096, MaxWait: 20 * time.Millisecond, Metrics: reg, Logger: logger})
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("requests still waiting after 60s on a stalled audit file: the wait is not bounded")
	}
	if got := testutil.ToFloat64(counter(t, reg, "vmcp_audit_records_lost_total")); got == 0 {
		t.Error("vmcp_audit_records_lost_total = 0, want the records that found no room counted")
	}
	if !strings.Contains(logged.String(), "records are being lost") {
		t.Errorf("no ERROR logged for the lost records; log:\n%s", logged.String())
	}
	close(g.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestFailedWritesCounted: records the file refuses are counted as lost
// and Close reports the failure.
func TestFailedWritesCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	l := audit.New(failing{}, &audit.Options{Metrics: reg})
	for range 3 {
		l.Called(&audit.Call{Action: "call_tool", Resource: "x", Outcome: "ok"})
	}
	if err := l.Close(); err == nil {
		t.Error("Close after failed writes = nil, want the failure")
	}
	if got := testutil.ToFloat64(counter(t, reg, "vmcp_audit_records_lost_total")); got != 3 {
		t.Errorf("vmcp_audit_records_lost_total = %v, want 3", got)
	}
}

// counter finds a registered counter by name.
func counter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: "copy"})
			c.Add(mf.Metric[0].GetCounter().GetValue())
			return c
		}
	}
	t.Fatalf("%s not registered", name)
	return nil
}
