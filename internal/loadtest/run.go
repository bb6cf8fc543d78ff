// Package loadtest drives MCP endpoints with concurrent sessions and
// measures what a gateway costs: throughput, latency percentiles and errors
// of tools/call and tools/list, the gateway against the direct backend in
// the same run, memory per idle session and cold-start time.
//
// cmd/vmcp-load is its command line; scripts/bench.sh runs its scenarios.
// Nothing here asserts timings: the figures are reported, never checked.
package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/loadtest/cputime"
)

// Protocol revisions a load client can speak.
const (
	// SessionProtocol is the session-based revision (initialize,
	// Mcp-Session-Id).
	SessionProtocol = "2025-11-25"
	// StatelessProtocol is the stateless revision (server/discover,
	// per-request _meta).
	StatelessProtocol = "2026-07-28"
)

// Modes of a run.
const (
	ModeCall = "call" // tools/call
	ModeList = "list" // tools/list (one page per request)
)

// Config describes one load run against one MCP endpoint.
type Config struct {
	// URL is the MCP endpoint.
	URL string
	// Headers are added to every HTTP request (for example Authorization).
	Headers http.Header
	// Mode is ModeCall (default) or ModeList.
	Mode string
	// Tool is the tool to call. Default: "echo".
	Tool string
	// Args are the tool arguments. Default: {"text":"hello"}.
	Args json.RawMessage
	// Concurrency is the number of sessions, each with one request in
	// flight at a time. Default: 1.
	Concurrency int
	// Duration is how long requests are measured (after Warmup), unless
	// Count is set. Default: 2s.
	Duration time.Duration
	// Count, if positive, is the number of measured requests (shared by
	// all sessions) instead of a duration.
	Count int
	// Warmup is how long requests run unmeasured first. Default: 10% of
	// Duration, at least 100ms and at most 1s; zero with Count.
	Warmup time.Duration
	// Protocol is SessionProtocol (default) or StatelessProtocol.
	Protocol string
	// NoStandaloneStream stops clients opening the standalone GET stream
	// after initialization (by default they do, as most clients do).
	NoStandaloneStream bool
	// Raw sends the measured requests as bare JSON-RPC over HTTP on
	// sessions the go-sdk client opened, and checks the answers without
	// decoding them, so that the load client's own decoding (large for a
	// tools/list of 1,000 tools) stays out of the figures. SessionProtocol
	// only.
	Raw bool
	// CPUPids are other processes (a gateway or backend run as a child)
	// whose CPU time counts in Result.CPU besides this process's.
	CPUPids []int
	// HTTP2 makes the default client speak cleartext HTTP/2 (h2c, prior
	// knowledge): the sessions share a connection instead of one per open
	// request. The server must speak it (vmcp does; see server.disableH2C).
	HTTP2 bool
	// HTTPClient is used for every request. Default: one sized for
	// Concurrency, shared by the sessions of this run.
	HTTPClient *http.Client
}

// defaultWarmup is the warm-up of a run of duration d that sets none:
// 10% of it, within [100ms, 1s].
func defaultWarmup(d time.Duration) time.Duration {
	return min(max(d/10, 100*time.Millisecond), time.Second)
}

func (c *Config) defaults() {
	if c.Mode == "" {
		c.Mode = ModeCall
	}
	if c.Tool == "" {
		c.Tool = "echo"
	}
	if c.Args == nil {
		c.Args = json.RawMessage(`{"text":"hello"}`)
	}
	c.Concurrency = max(c.Concurrency, 1)
	if c.Count <= 0 && c.Duration <= 0 {
		c.Duration = 2 * time.Second
	}
	if c.Warmup == 0 && c.Count <= 0 {
		c.Warmup = defaultWarmup(c.Duration)
	}
	c.Warmup = max(c.Warmup, 0)
	if c.Protocol == "" {
		c.Protocol = SessionProtocol
	}
	if c.HTTPClient == nil {
		c.HTTPClient = NewHTTPClient(c.Concurrency, c.Headers, c.HTTP2)
	}
}

// Result is what one run measured.
type Result struct {
	Requests   int           // measured requests that succeeded
	Errors     int           // measured requests that failed (error or isError)
	ErrorText  []string      // the first few distinct error messages
	Elapsed    time.Duration // the measured window
	Throughput float64       // successful requests per second
	P50        time.Duration
	P90        time.Duration
	P99        time.Duration
	Max        time.Duration
	Mean       time.Duration
	// CPU is the CPU time the whole process (load client included, and the
	// gateway and backend when they run in it) used per successful request
	// in the measured window: steadier than wall time on a busy machine.
	CPU time.Duration
}

func (r *Result) String() string {
	s := fmt.Sprintf("%d ok, %d errors in %s: %.0f req/s, p50 %s, p90 %s, p99 %s, max %s, cpu %s/req",
		r.Requests, r.Errors, r.Elapsed.Round(time.Millisecond), r.Throughput, us(r.P50), us(r.P90), us(r.P99), us(r.Max), us(r.CPU))
	if len(r.ErrorText) > 0 {
		s += "; first error: " + r.ErrorText[0]
	}
	return s
}

// us formats a duration in microseconds or milliseconds.
func us(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// NewHTTPClient returns an HTTP client whose pool keeps enough idle
// connections for concurrency sessions (the default of 2 per host makes a
// load client reconnect all the time), adding headers to every request;
// with http2 it speaks cleartext HTTP/2 only.
func NewHTTPClient(concurrency int, headers http.Header, http2 bool) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if http2 {
		t.Protocols = new(http.Protocols)
		t.Protocols.SetUnencryptedHTTP2(true)
	}
	t.MaxIdleConns = 4*concurrency + 64
	t.MaxIdleConnsPerHost = 4*concurrency + 64
	t.IdleConnTimeout = 90 * time.Second
	var rt http.RoundTripper = t
	if len(headers) > 0 {
		rt = &headerTransport{base: t, headers: headers}
	}
	return &http.Client{Transport: rt}
}

type headerTransport struct {
	base    http.RoundTripper
	headers http.Header
}

func (h *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, vs := range h.headers {
		r.Header[k] = vs
	}
	return h.base.RoundTrip(r)
}

// ParseHeader parses "Name: value" into h.
func ParseHeader(h http.Header, s string) error {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return fmt.Errorf("header %q is not of the form 'Name: value'", s)
	}
	h.Add(name, strings.TrimSpace(value))
	return nil
}

var clientInfo = &mcp.Implementation{Name: "vmcp-load", Version: "0.1.0"}

// Connect opens n sessions to url in parallel (at most 32 at a time).
func Connect(ctx context.Context, cfg *Config, n int) ([]*mcp.ClientSession, error) {
	cfg.defaults()
	client := mcp.NewClient(clientInfo, nil)
	sessions := make([]*mcp.ClientSession, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			t := &mcp.StreamableClientTransport{
				Endpoint:             cfg.URL,
				HTTPClient:           cfg.HTTPClient,
				MaxRetries:           -1,
				DisableStandaloneSSE: cfg.NoStandaloneStream,
			}
			sessions[i], errs[i] = client.Connect(ctx, t, &mcp.ClientSessionOptions{ProtocolVersion: cfg.Protocol})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		CloseAll(sessions)
		return nil, fmt.Errorf("connecting to %s: %w", cfg.URL, err)
	}
	return sessions, nil
}

// CloseAll closes sessions in parallel; nil ones are skipped.
func CloseAll(sessions []*mcp.ClientSession) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, s := range sessions {
		if s == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_ = s.Close()
		})
	}
	wg.Wait()
}

// Run opens cfg.Concurrency sessions, drives them and returns what it
// measured. Session set-up is not measured.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	if cfg.Mode != ModeCall && cfg.Mode != ModeList {
		return nil, fmt.Errorf("unknown mode %q (call or list)", cfg.Mode)
	}
	if cfg.Raw && cfg.Protocol != SessionProtocol {
		return nil, fmt.Errorf("raw requests need protocol %s", SessionProtocol)
	}
	sessions, err := Connect(ctx, &cfg, cfg.Concurrency)
	if err != nil {
		return nil, err
	}
	defer CloseAll(sessions)
	senders := make([]func(context.Context) error, len(sessions))
	for i, s := range sessions {
		senders[i] = func(ctx context.Context) error { return request(ctx, &cfg, s) }
		if cfg.Raw {
			senders[i] = newRawSender(&cfg, s.ID())
		}
	}
	// One request outside the measurement checks that it works.
	if err := senders[0](ctx); err != nil {
		return nil, fmt.Errorf("first %s on %s: %w", cfg.Mode, cfg.URL, err)
	}
	return drive(ctx, &cfg, senders), nil
}

// newRawSender returns a function sending the run's request as bare
// JSON-RPC on session sid.
func newRawSender(cfg *Config, sid string) func(context.Context) error {
	var buf bytes.Buffer
	id := 0
	return func(ctx context.Context) error {
		id++
		var body []byte
		if cfg.Mode == ModeList {
			body = fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":"tools/list","params":{}}`, id)
		} else {
			name, _ := json.Marshal(cfg.Tool)
			body = fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%s,"arguments":%s}}`, id, name, cfg.Args)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("Mcp-Protocol-Version", SessionProtocol)
		resp, err := cfg.HTTPClient.Do(req)
		if err != nil {
			return err
		}
		buf.Reset()
		_, err = buf.ReadFrom(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return err
		}
		b := buf.Bytes()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"result"`)) {
			return fmt.Errorf("%s: %.200s", resp.Status, b)
		}
		if cfg.Mode == ModeCall && bytes.Contains(b, []byte(`"isError":true`)) {
			return fmt.Errorf("the tool returned isError: %.200s", b)
		}
		return nil
	}
}

// request sends one request of the run's mode.
func request(ctx context.Context, cfg *Config, s *mcp.ClientSession) error {
	if cfg.Mode == ModeList {
		_, err := s.ListTools(ctx, nil)
		return err
	}
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: cfg.Tool, Arguments: cfg.Args})
	if err != nil {
		return err
	}
	if res.IsError {
		msg := "the tool returned isError"
		if len(res.Content) > 0 {
			if tc, ok := res.Content[0].(*mcp.TextContent); ok {
				msg += ": " + tc.Text
			}
		}
		return errors.New(msg)
	}
	return nil
}

type worker struct {
	lat    []time.Duration
	errors int
	errMsg []string
	last   time.Time
}

// drive runs the measured load on open sessions.
func drive(ctx context.Context, cfg *Config, sessions []func(context.Context) error) *Result {
	start := time.Now()
	measureFrom := start.Add(cfg.Warmup)
	var end time.Time // zero with Count
	if cfg.Count <= 0 {
		end = measureFrom.Add(cfg.Duration)
	}
	var cpuStart atomic.Int64
	cpuTimer := time.AfterFunc(cfg.Warmup, func() { cpuStart.Store(int64(cpuTotal(cfg.CPUPids))) })
	defer cpuTimer.Stop()
	var remaining atomic.Int64
	remaining.Store(int64(cfg.Count))
	workers := make([]*worker, len(sessions))
	var wg sync.WaitGroup
	for i, s := range sessions {
		w := &worker{}
		if cfg.Count > 0 {
			w.lat = make([]time.Duration, 0, cfg.Count/len(sessions)+1)
		} else {
			w.lat = make([]time.Duration, 0, 4096)
		}
		workers[i] = w
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				measured := !t0.Before(measureFrom)
				if measured {
					if cfg.Count > 0 {
						if remaining.Add(-1) < 0 {
							return
						}
					} else if !t0.Before(end) {
						return
					}
				}
				err := s(ctx)
				t1 := time.Now()
				if !measured {
					continue
				}
				w.last = t1
				if err != nil {
					w.errors++
					if len(w.errMsg) < 3 && !slices.Contains(w.errMsg, err.Error()) {
						w.errMsg = append(w.errMsg, err.Error())
					}
					continue
				}
				w.lat = append(w.lat, t1.Sub(t0))
			}
		})
	}
	wg.Wait()
	cpu := cpuTotal(cfg.CPUPids)
	r := summarize(workers, measureFrom)
	if start := time.Duration(cpuStart.Load()); start > 0 && r.Requests > 0 {
		r.CPU = (cpu - start) / time.Duration(r.Requests)
	}
	return r
}

// cpuTotal is the CPU time used by this process and pids.
func cpuTotal(pids []int) time.Duration {
	t := cputime.Process()
	for _, p := range pids {
		t += cputime.Of(p)
	}
	return t
}

func summarize(workers []*worker, from time.Time) *Result {
	r := &Result{}
	var all []time.Duration
	var last time.Time
	for _, w := range workers {
		all = append(all, w.lat...)
		r.Errors += w.errors
		for _, m := range w.errMsg {
			if len(r.ErrorText) < 5 && !slices.Contains(r.ErrorText, m) {
				r.ErrorText = append(r.ErrorText, m)
			}
		}
		if w.last.After(last) {
			last = w.last
		}
	}
	r.Requests = len(all)
	if last.After(from) {
		r.Elapsed = last.Sub(from)
		r.Throughput = float64(r.Requests) / r.Elapsed.Seconds()
	}
	if len(all) == 0 {
		return r
	}
	slices.Sort(all)
	var sum time.Duration
	for _, d := range all {
		sum += d
	}
	r.Mean = sum / time.Duration(len(all))
	r.P50, r.P90, r.P99, r.Max = percentile(all, 0.50), percentile(all, 0.90), percentile(all, 0.99), all[len(all)-1]
	return r
}

// percentile returns the q-quantile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
