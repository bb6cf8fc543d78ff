package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/loadtest/echoserver"
)

func TestMain(m *testing.M) {
	RunChildIfRequested() // the scenarios re-run this test binary as gateway and backend processes
	os.Exit(m.Run())
}

// TestSmoke runs every scenario briefly, as `vmcp-load all --smoke` does:
// it proves the harness works end to end. It checks no timing.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every load scenario (about 15s)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var log strings.Builder
	s, err := RunSuite(ctx, SuiteConfig{Smoke: true, Log: &log})
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	// The authenticated comparisons checked, before measuring, that vmcp
	// refuses a request without a token, filters the caller's list by
	// policy and denies a forbidden call (see checkAuthorized).
	for _, c := range []*Comparison{s.Calls, s.Isolated, s.Stateless, s.List, s.AuthCalls, s.AuthList, s.Stores, s.Observed} {
		if c == nil || len(c.Samples) == 0 {
			t.Fatalf("a comparison is missing; log:\n%s", log.String())
		}
		for _, x := range c.Samples {
			if x.Requests == 0 || x.Errors > 0 {
				t.Errorf("%s %s, %d sessions: %d ok, %d errors %v", c.Config.Mode, x.Target, x.Concurrency, x.Requests, x.Errors, x.ErrorText)
			}
		}
	}
	for _, c := range []*Comparison{s.Calls, s.Isolated, s.AuthCalls} {
		if !c.hasProxy() {
			t.Errorf("%s comparison without the floor (bare proxy) target", c.Config.Mode)
		}
	}
	if len(s.IdleStack) != 2 || len(s.IdleStack[1].Env) != 1 {
		t.Errorf("idle sessions with %s: %+v", IdleStackEnv, s.IdleStack)
	}
	if len(s.IdleHTTP2) != 2 || !s.IdleHTTP2[1].HTTP2 {
		t.Errorf("idle sessions over HTTP/2: %+v", s.IdleHTTP2)
	}
	if len(s.Idle) != 2 || len(s.IdleNoGET) != 2 || s.Cold == nil || s.ColdStdio == nil || s.Decision <= 0 {
		t.Fatalf("a scenario is missing; log:\n%s", log.String())
	}
	md := s.Markdown()
	for _, want := range []string{"## Targets", "tools/call", "tools/list", "JWT + Cedar", "filtered per user", "Cedar decision", "## Idle sessions", "## Cold start", "Smoke run",
		"a bare reverse proxy", IdleStackEnv[len("GODEBUG="):], "HTTP/2 (h2c)", "by storage type",
		"with metrics, audit log and 100 % tracing on", "CPU/req everything off / everything on"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// TestRunHeaders checks that --header values reach the server on every
// request, in both clients: the hook the authenticated scenarios need.
func TestRunHeaders(t *testing.T) {
	inner := echoserver.Handler(echoserver.New(nil))
	var with, without atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer abc" {
			with.Add(1)
		} else {
			without.Add(1)
		}
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()
	h := http.Header{}
	if err := ParseHeader(h, "Authorization: Bearer abc"); err != nil {
		t.Fatal(err)
	}
	if err := ParseHeader(h, "no colon"); err == nil {
		t.Error("a header without a colon was accepted")
	}
	for _, raw := range []bool{false, true} {
		for _, mode := range []string{ModeCall, ModeList} {
			res, err := Run(context.Background(), Config{URL: srv.URL, Headers: h, Mode: mode, Count: 5, Raw: raw, NoStandaloneStream: true})
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != 5 || res.Errors != 0 {
				t.Errorf("raw=%v %s: %d ok, %d errors %v, want 5 ok", raw, mode, res.Requests, res.Errors, res.ErrorText)
			}
		}
	}
	if without.Load() != 0 || with.Load() < 20 {
		t.Errorf("%d requests with the header, %d without", with.Load(), without.Load())
	}
}

func TestPercentileMedian(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for q, want := range map[float64]time.Duration{0.5: 50, 0.9: 90, 0.99: 99, 1: 100} {
		if got := percentile(d, q); got != want {
			t.Errorf("percentile(%v) = %d, want %d", q, got, want)
		}
	}
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median odd = %v", got)
	}
	if got := median([]time.Duration{4, 1, 2, 3}); got != 2 {
		t.Errorf("median even = %v", got) // (2+3)/2 in integer durations
	}
}

// TestIdleOutside runs the ps-view idle scenario briefly: both processes
// are read from outside, and sessions with GET streams grow their RSS. It
// checks no figure beyond that.
func TestIdleOutside(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rs, err := IdleOutside(ctx, IdleConfig{Sessions: 50, Hold: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Target != Direct || rs[1].Target != Through {
		t.Fatalf("results: %+v", rs)
	}
	for _, r := range rs {
		if r.Before == 0 || r.After <= r.Before || r.Held == 0 || r.PerSession <= 0 {
			t.Errorf("%s: RSS before %d, with 50 sessions %d, held %d", r.Target, r.Before, r.After, r.Held)
		}
	}
	if md := OutsideMarkdown(rs, time.Millisecond); !strings.Contains(md, "| vmcp |") || !strings.Contains(md, "RSS after 1ms") {
		t.Errorf("table:\n%s", md)
	}
}
