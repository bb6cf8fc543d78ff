package loadtest

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vmcp-dev/vmcp/internal/loadtest/echoserver"
)

// IdleConfig describes the idle-session memory scenario.
type IdleConfig struct {
	// Sessions is the number of idle sessions. Default: 1000.
	Sessions int
	// NoStandaloneStream: the clients open no standalone GET stream.
	NoStandaloneStream bool
	// HTTP2: the clients speak cleartext HTTP/2 (see [Config.HTTP2]).
	HTTP2 bool
	// Env is added to the environment of both processes measured, for
	// example GODEBUG=adaptivestackstart=0.
	Env []string
	// ProfileDir, if set, receives heap and goroutine profiles of each
	// target with its sessions open (TARGET-heap.pprof, TARGET-goroutine.pprof).
	ProfileDir string
	// Hold is how long the sessions stay open in [IdleOutside] before
	// its second reading (the runtime forces a collection every
	// two minutes). Default: 0, one reading.
	Hold time.Duration
	// Log receives progress lines. Default: discard.
	Log io.Writer
}

// OutsideResult is the RSS of one process as ps shows it, with no
// collection forced, per idle session.
type OutsideResult struct {
	Target         string // Direct (a go-sdk server) or Through (vmcp)
	Env            []string
	Sessions       int
	Before         uint64  // RSS after the warm-up, bytes
	After          uint64  // RSS with the sessions open, bytes
	Held           uint64  // RSS after Hold, bytes; 0 without Hold
	PerSession     float64 // (After-Before)/Sessions, bytes
	HeldPerSession float64 // (Held-Before)/Sessions, bytes
}

// IdleOutside measures, for a go-sdk server alone and for vmcp, the RSS
// per idle session that ps shows: nothing asks the processes to collect.
func IdleOutside(ctx context.Context, cfg IdleConfig) ([]*OutsideResult, error) {
	var out []*OutsideResult
	err := eachIdleTarget(ctx, &cfg, func(target string, c *child) error {
		rc := idleClient(&cfg, target, c)
		if err := warmUp(ctx, rc); err != nil {
			return err
		}
		before := c.RSS()
		sessions, err := Connect(ctx, rc, cfg.Sessions)
		if err != nil {
			return err
		}
		defer CloseAll(sessions)
		time.Sleep(300 * time.Millisecond) // standalone streams settle
		r := &OutsideResult{Target: target, Env: cfg.Env, Sessions: cfg.Sessions, Before: before, After: c.RSS()}
		n := float64(cfg.Sessions)
		r.PerSession = (float64(r.After) - float64(before)) / n
		if cfg.Hold > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(cfg.Hold):
			}
			r.Held = c.RSS()
			r.HeldPerSession = (float64(r.Held) - float64(before)) / n
		}
		fmt.Fprintf(cfg.Log, "idle (ps)  %-6s  %d sessions: %.1f KiB RSS/session; after %v: %.1f KiB\n",
			target, r.Sessions, r.PerSession/1024, cfg.Hold, r.HeldPerSession/1024)
		out = append(out, r)
		return nil
	})
	return out, err
}

// OutsideMarkdown is a table of [IdleOutside]'s results.
func OutsideMarkdown(rs []*OutsideResult, hold time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| target | env | sessions | RSS before | RSS with sessions | per session |")
	if hold > 0 {
		fmt.Fprintf(&b, " RSS after %v | per session |", hold)
	}
	b.WriteString("\n|---|---|---|---|---|---|")
	if hold > 0 {
		b.WriteString("---|---|")
	}
	for _, r := range rs {
		fmt.Fprintf(&b, "\n| %s | %s | %d | %.1f MiB | %.1f MiB | %.1f KiB |", r.Target, strings.Join(r.Env, " "), r.Sessions,
			float64(r.Before)/(1<<20), float64(r.After)/(1<<20), r.PerSession/1024)
		if hold > 0 {
			fmt.Fprintf(&b, " %.1f MiB | %.1f KiB |", float64(r.Held)/(1<<20), r.HeldPerSession/1024)
		}
	}
	b.WriteString("\n")
	return b.String()
}

// IdleResult is the memory a process holds per idle session.
type IdleResult struct {
	Target               string // Direct (a go-sdk server) or Through (vmcp)
	Env                  []string
	HTTP2                bool
	Sessions             int
	StandaloneStream     bool
	Before, After        Mem
	AfterClose           Mem
	LivePerSession       float64 // bytes of heap objects and stacks
	RSSPerSession        float64 // bytes
	GoroutinesPerSession float64
	HeapInusePerSession  float64 // bytes of in-use heap spans
	StackPerSession      float64 // bytes of goroutine stacks
}

// Idle measures the memory per idle session of a go-sdk server alone
// (Direct) and of vmcp in front of one backend (Through), each in a process
// of its own: Sessions sessions are initialized and left idle, and the
// process's memory after a full GC is compared with before.
func Idle(ctx context.Context, cfg IdleConfig) ([]*IdleResult, error) {
	var out []*IdleResult
	err := eachIdleTarget(ctx, &cfg, func(target string, c *child) error {
		r, err := idleOne(ctx, &cfg, target, c)
		if err != nil {
			return err
		}
		fmt.Fprintf(cfg.Log, "idle  %-6s  %d sessions: %.1f KiB live/session, %.1f KiB RSS/session, %.1f goroutines/session\n",
			target, r.Sessions, r.LivePerSession/1024, r.RSSPerSession/1024, r.GoroutinesPerSession)
		out = append(out, r)
		return nil
	})
	return out, err
}

// eachIdleTarget runs measure on a go-sdk server (Direct) and on vmcp in
// front of one (Through), each in a process of its own, ready to serve.
func eachIdleTarget(ctx context.Context, cfg *IdleConfig, measure func(target string, c *child) error) error {
	cfg.Sessions = cmp.Or(cfg.Sessions, 1000)
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	backend, err := echoserver.Start(nil)
	if err != nil {
		return err
	}
	defer backend.Close()
	for _, target := range []string{Direct, Through} {
		var c *child
		var err error
		if target == Direct {
			c, err = startChild("backend", cfg.Env...)
		} else {
			c, err = startChild("gateway", append([]string{envConfig + "=" + GatewayConfig([]BackendRef{{Name: "echo", URL: backend.URL}}, "")}, cfg.Env...)...)
		}
		if err != nil {
			return err
		}
		if target == Through { // a backend child prints its address once it listens
			err = WaitReady(ctx, c.Base, 30*time.Second)
		}
		if err == nil {
			err = measure(target, c)
		}
		c.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", target, err)
		}
	}
	return nil
}

// idleClient is the load client of the idle scenarios.
func idleClient(cfg *IdleConfig, target string, c *child) *Config {
	rc := &Config{URL: c.Base + "/mcp", Concurrency: 64, NoStandaloneStream: cfg.NoStandaloneStream, HTTP2: cfg.HTTP2}
	if target == Through {
		rc.Tool = "echo_echo"
	}
	return rc
}

// warmUp opens 16 sessions, makes a call on each and closes them: pools,
// lazily built tables, the first session's one-offs.
func warmUp(ctx context.Context, rc *Config) error {
	warm, err := Connect(ctx, rc, 16)
	if err != nil {
		return err
	}
	for _, s := range warm {
		if err := request(ctx, rc, s); err != nil {
			CloseAll(warm)
			return err
		}
	}
	CloseAll(warm)
	rc.HTTPClient.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond)
	return nil
}

func idleOne(ctx context.Context, cfg *IdleConfig, target string, c *child) (*IdleResult, error) {
	rc := idleClient(cfg, target, c)
	if err := warmUp(ctx, rc); err != nil {
		return nil, err
	}
	before, err := c.Mem()
	if err != nil {
		return nil, err
	}
	sessions, err := Connect(ctx, rc, cfg.Sessions)
	if err != nil {
		return nil, err
	}
	time.Sleep(300 * time.Millisecond) // standalone streams settle
	after, err := c.Mem()
	if err == nil && cfg.ProfileDir != "" {
		for _, p := range []string{"heap", "goroutine"} {
			if err = c.Profile(p, filepath.Join(cfg.ProfileDir, target+"-"+p+".pprof")); err != nil {
				break
			}
		}
	}
	CloseAll(sessions)
	if err != nil {
		return nil, err
	}
	rc.HTTPClient.CloseIdleConnections() // else the server keeps a goroutine and buffers per pooled connection
	time.Sleep(300 * time.Millisecond)
	closed, err := c.Mem()
	if err != nil {
		return nil, err
	}
	n := float64(cfg.Sessions)
	return &IdleResult{
		Target: target, Env: cfg.Env, HTTP2: cfg.HTTP2, Sessions: cfg.Sessions, StandaloneStream: !cfg.NoStandaloneStream,
		Before: before, After: after, AfterClose: closed,
		LivePerSession:       (float64(after.Live()) - float64(before.Live())) / n,
		RSSPerSession:        (float64(after.RSS) - float64(before.RSS)) / n,
		GoroutinesPerSession: float64(after.Goroutines-before.Goroutines) / n,
		HeapInusePerSession:  (float64(after.HeapInuse) - float64(before.HeapInuse)) / n,
		StackPerSession:      (float64(after.StackInuse) - float64(before.StackInuse)) / n,
	}, nil
}

// ColdStartConfig describes the cold-start scenario.
type ColdStartConfig struct {
	// Backends is the number of backends. Default: 10.
	Backends int
	// Tools per backend. Default: 20.
	Tools int
	// Runs is the number of starts measured. Default: 5.
	Runs int
	// Stdio: the backends are stdio children (this executable) instead of
	// HTTP servers already running.
	Stdio bool
	// Log receives progress lines. Default: discard.
	Log io.Writer
}

// ColdStartResult is the time from start until /readyz answers 200.
type ColdStartResult struct {
	Backends int
	Stdio    bool
	// Process: from exec of a new gateway process; InProcess: from
	// app.New in this process. Ready: /readyz 200; AllReady: every backend
	// ready as well. Medians over Runs.
	Process, ProcessAllReady, InProcess time.Duration
	Runs                                []time.Duration // Process of each run
}

// ColdStart measures the time a gateway with cfg.Backends backends takes to
// become ready.
func ColdStart(ctx context.Context, cfg ColdStartConfig) (*ColdStartResult, error) {
	cfg.Backends = cmp.Or(cfg.Backends, 10)
	cfg.Tools = cmp.Or(cfg.Tools, 20)
	cfg.Runs = cmp.Or(cfg.Runs, 5)
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	refs := make([]BackendRef, cfg.Backends)
	for i := range refs {
		refs[i].Name = fmt.Sprintf("b%02d", i)
		if cfg.Stdio {
			exe, err := selfExe()
			if err != nil {
				return nil, err
			}
			refs[i].Command = exe
			refs[i].Env = map[string]string{envChild: "stdio-backend", envTools: strconv.Itoa(cfg.Tools)}
			continue
		}
		s, err := echoserver.Start(&echoserver.Options{Name: refs[i].Name, Tools: cfg.Tools})
		if err != nil {
			return nil, err
		}
		defer s.Close()
		refs[i].URL = s.URL
	}
	yaml := GatewayConfig(refs, "")
	res := &ColdStartResult{Backends: cfg.Backends, Stdio: cfg.Stdio}
	var inproc, all []time.Duration
	for run := 1; run <= cfg.Runs; run++ {
		t0 := time.Now()
		c, err := startChild("gateway", envConfig+"="+yaml)
		if err != nil {
			return nil, err
		}
		_, err = pollReady(ctx, c.Base, 30*time.Second, false)
		ready := time.Since(t0)
		if err == nil {
			_, err = pollReady(ctx, c.Base, 30*time.Second, true)
		}
		allReady := time.Since(t0)
		c.Close()
		if err != nil {
			return nil, err
		}
		t1 := time.Now()
		g, err := StartGateway(ctx, yaml)
		if err != nil {
			return nil, err
		}
		in := time.Since(t1)
		g.Close()
		fmt.Fprintf(cfg.Log, "cold start %d: process %s (all backends %s), in-process %s\n", run, ms(ready), ms(allReady), ms(in))
		res.Runs = append(res.Runs, ready)
		all = append(all, allReady)
		inproc = append(inproc, in)
	}
	res.Process, res.ProcessAllReady, res.InProcess = median(res.Runs), median(all), median(inproc)
	return res, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
