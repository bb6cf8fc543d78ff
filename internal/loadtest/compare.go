package loadtest

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/vmcp-dev/vmcp/internal/config"
	"github.com/vmcp-dev/vmcp/internal/loadtest/echoserver"
)

// Targets of a comparison.
const (
	Direct  = "direct"
	Through = "vmcp"
	Proxy   = "proxy" // a bare reverse proxy: the floor (see StartProxy)
)

// CompareConfig describes a comparison of the direct backend and vmcp in
// front of it, in interleaved rounds.
type CompareConfig struct {
	// Mode is ModeCall (default) or ModeList.
	Mode string
	// Rounds of each target at each concurrency. Default: 5.
	Rounds int
	// Duration of each measured run. Default: 2s.
	Duration time.Duration
	// Warmup of each run. Default: see [Config.Warmup].
	Warmup time.Duration
	// Concurrency levels. Default: 1 and 32.
	Concurrency []int
	// Protocol the load clients speak. Default: SessionProtocol.
	Protocol string
	// Backends and Tools shape the list comparison: vmcp fronts Backends
	// backends of Tools tools each, the direct target is one backend with
	// Backends×Tools tools. Defaults: 20 and 50. Call mode uses one backend.
	Backends, Tools int
	// GatewayTemplate, if set, is the gateway configuration (see
	// [GatewayConfig]); GatewayTool is then the advertised name of the
	// backend's echo tool (default: echo_echo, the prefix strategy's name
	// for backend "echo").
	GatewayTemplate string
	GatewayTool     string
	// GatewayHeaders are sent to the gateway only (for example a bearer
	// token), never to the direct backend.
	GatewayHeaders http.Header
	// Client is how the load client sends the measured requests: ClientSDK
	// (go-sdk ClientSession) or ClientRaw (bare JSON-RPC, answers not
	// decoded; see [Config.Raw]). Default: ClientSDK for calls, ClientRaw
	// for lists, whose decoding by the go-sdk client costs more than
	// serving them.
	Client string
	// Isolate runs the backend(s) and the gateway each in a process of its
	// own, as in production, instead of in this one. CPU figures then add
	// up every process.
	Isolate bool
	// GatewayEnv is added to the environment of an isolated gateway, for
	// example GOGC=100 (an isolated gateway tunes its collector as
	// cmd/vmcp does, gctune.Tune, unless the environment says otherwise).
	GatewayEnv []string
	// Auth runs the gateway with JWT validation and Cedar authorization:
	// the harness starts its own token issuer (see [Issuer]), configures
	// the gateway with [AuthGatewayConfig] (backends b00, b01, …; the
	// caller may use the tools of [AuthAllowedBackends] only) and sends a
	// bearer token on every request to it. GatewayTemplate and GatewayTool
	// are then set by the harness. Before measuring, the comparison checks
	// that the gateway refuses a request without a token and filters the
	// caller's tool list.
	Auth bool
	// HTTP2: the load clients speak cleartext HTTP/2 (see [Config.HTTP2]).
	HTTP2 bool
	// Floor also measures a bare reverse proxy in front of the backend
	// (target Proxy, see [StartProxy]; call mode only), in the process of
	// the gateway: what one more HTTP hop costs on this machine.
	Floor bool
	// Observe also measures vmcp with every kind of telemetry on (target
	// Observed: request metrics, the audit log to a file, every request
	// traced to an OTLP receiver that drops the spans), and runs the
	// gateway target with everything off. One process only.
	Observe bool
	// Log receives progress lines. Default: discard.
	Log io.Writer
}

// Load clients.
const (
	ClientSDK = "sdk"
	ClientRaw = "raw"
)

func (c *CompareConfig) defaults() {
	if c.Mode == "" {
		c.Mode = ModeCall
	}
	c.Rounds = cmp.Or(c.Rounds, 5)
	c.Duration = cmp.Or(c.Duration, 2*time.Second)
	if len(c.Concurrency) == 0 {
		c.Concurrency = []int{1, 32}
	}
	c.Protocol = cmp.Or(c.Protocol, SessionProtocol)
	c.Backends = cmp.Or(c.Backends, 20)
	c.Tools = cmp.Or(c.Tools, 50)
	c.GatewayTool = cmp.Or(c.GatewayTool, "echo_echo")
	if c.Client == "" {
		c.Client = ClientSDK
		if c.Mode == ModeList && c.Protocol == SessionProtocol {
			c.Client = ClientRaw
		}
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// Sample is one measured run.
type Sample struct {
	Round       int
	Target      string
	Concurrency int
	*Result
}

// Comparison is the outcome of [Compare].
type Comparison struct {
	Config  CompareConfig
	Samples []Sample
}

// Compare starts the backend(s) and an in-process vmcp in front, and runs
// the direct and the gateway target alternately: in each round every
// concurrency level against both, the order of the targets swapped every
// round.
func Compare(ctx context.Context, cfg CompareConfig) (*Comparison, error) {
	cfg.defaults()
	if cfg.Client != ClientSDK && cfg.Client != ClientRaw {
		return nil, fmt.Errorf("unknown client %q (sdk or raw)", cfg.Client)
	}
	if cfg.Auth {
		iss, err := authTargets(&cfg)
		if err != nil {
			return nil, err
		}
		defer iss.Close()
	}
	env, err := startTargets(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer env.close()
	if cfg.Auth {
		if err := checkAuthorized(ctx, &cfg, env.gateway); err != nil {
			return nil, fmt.Errorf("authenticated gateway: %w", err)
		}
	}
	targets := map[string]Config{
		Direct:  {URL: env.direct, Tool: "echo", CPUPids: env.pids},
		Through: {URL: env.gateway, Tool: cfg.GatewayTool, Headers: cfg.GatewayHeaders, CPUPids: env.pids},
	}
	names := []string{Direct, Through}
	if env.proxy != "" {
		targets[Proxy] = Config{URL: env.proxy, Tool: "echo", CPUPids: env.pids}
		names = append(names, Proxy)
	}
	if env.observed != "" {
		targets[Observed] = Config{URL: env.observed, Tool: cfg.GatewayTool, Headers: cfg.GatewayHeaders, CPUPids: env.pids}
		names = append(names, Observed)
	}
	return interleave(ctx, cfg, targets, names)
}

// interleave runs the targets (in the order of names, reversed every
// other round) at every concurrency, cfg.Rounds times.
func interleave(ctx context.Context, cfg CompareConfig, targets map[string]Config, names []string) (*Comparison, error) {
	out := &Comparison{Config: cfg}
	for round := 1; round <= cfg.Rounds; round++ {
		order := slices.Clone(names)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		for _, c := range cfg.Concurrency {
			for _, name := range order {
				rc := targets[name]
				rc.Mode, rc.Concurrency, rc.Duration, rc.Warmup, rc.Protocol = cfg.Mode, c, cfg.Duration, cfg.Warmup, cfg.Protocol
				rc.Raw, rc.HTTP2 = cfg.Client == ClientRaw, cfg.HTTP2
				var res *Result
				var err error
				pprof.Do(ctx, pprof.Labels("role", "client"), func(ctx context.Context) {
					res, err = Run(ctx, rc)
				})
				if err != nil {
					return nil, fmt.Errorf("round %d, %s, %d sessions: %w", round, name, c, err)
				}
				fmt.Fprintf(cfg.Log, "round %d  %-8s  %2d sessions  %s\n", round, name, c, res)
				out.Samples = append(out.Samples, Sample{Round: round, Target: name, Concurrency: c, Result: res})
			}
		}
	}
	return out, nil
}

// targets is the direct backend and the gateway of a comparison.
type targets struct {
	direct, gateway string // MCP URLs
	proxy           string // MCP URL of the floor proxy, or ""
	observed        string // MCP URL of the gateway with telemetry on, or ""
	pids            []int  // child processes
	closers         []func()
}

func (t *targets) close() {
	for i := len(t.closers) - 1; i >= 0; i-- {
		t.closers[i]()
	}
}

// startTargets starts the backends and the gateway of a comparison, in this
// process or (cfg.Isolate) in children.
func startTargets(ctx context.Context, cfg *CompareConfig) (t *targets, err error) {
	t = &targets{}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	var refs []BackendRef
	switch {
	case cfg.Isolate:
		n, tools := 1, 0
		if cfg.Mode == ModeList {
			n, tools = cfg.Backends, cfg.Tools
			dc, urls, err := startBackends(1, cfg.Backends*cfg.Tools, true)
			if err != nil {
				return nil, err
			}
			t.closers, t.pids, t.direct = append(t.closers, dc.Close), append(t.pids, dc.Pid()), urls[0]
		}
		bc, urls, err := startBackends(n, tools, cfg.Mode == ModeList)
		if err != nil {
			return nil, err
		}
		t.closers, t.pids = append(t.closers, bc.Close), append(t.pids, bc.Pid())
		for i, u := range urls {
			refs = append(refs, BackendRef{Name: fmt.Sprintf("b%02d", i), URL: u})
		}
		if cfg.Mode != ModeList {
			t.direct, refs[0].Name = urls[0], "echo"
		}
	case cfg.Mode == ModeList:
		direct, err := startLabeled(ctx, &echoserver.Options{Name: "direct", Tools: cfg.Backends * cfg.Tools, NoEcho: true})
		if err != nil {
			return nil, err
		}
		t.closers, t.direct = append(t.closers, direct.Close), direct.URL
		for i := range cfg.Backends {
			name := fmt.Sprintf("b%02d", i)
			s, err := startLabeled(ctx, &echoserver.Options{Name: name, Tools: cfg.Tools, NoEcho: true})
			if err != nil {
				return nil, err
			}
			t.closers = append(t.closers, s.Close)
			refs = append(refs, BackendRef{Name: name, URL: s.URL})
		}
	default:
		direct, err := startLabeled(ctx, &echoserver.Options{})
		if err != nil {
			return nil, err
		}
		t.closers, t.direct = append(t.closers, direct.Close), direct.URL
		refs = []BackendRef{{Name: "echo", URL: direct.URL}}
	}
	if cfg.Floor && cfg.Mode != ModeList {
		if cfg.Isolate {
			pc, err := startChild("proxy", envTarget+"="+t.direct)
			if err != nil {
				return nil, err
			}
			t.closers, t.pids, t.proxy = append(t.closers, pc.Close), append(t.pids, pc.Pid()), pc.Base+"/mcp"
		} else {
			u, stop, err := StartProxy(ctx, t.direct)
			if err != nil {
				return nil, err
			}
			t.closers, t.proxy = append(t.closers, stop), u
		}
	}
	yaml := GatewayConfig(refs, cfg.GatewayTemplate)
	if cfg.Isolate {
		gc, err := startChild("gateway", append([]string{envConfig + "=" + yaml}, cfg.GatewayEnv...)...)
		if err != nil {
			return nil, err
		}
		t.closers, t.pids = append(t.closers, gc.Close), append(t.pids, gc.Pid())
		if err := WaitReady(ctx, gc.Base, 30*time.Second); err != nil {
			return nil, err
		}
		t.gateway = gc.Base + "/mcp"
		return t, nil
	}
	var modify func(*config.Config)
	if cfg.Observe {
		if err := startObserved(ctx, cfg, t, yaml); err != nil {
			return nil, err
		}
		modify = observeNone
	}
	gw, err := StartGatewayWith(ctx, yaml, modify)
	if err != nil {
		return nil, err
	}
	t.closers, t.gateway = append(t.closers, gw.Close), gw.URL
	return t, nil
}

// startLabeled starts an echo server whose goroutines carry role=backend.
func startLabeled(ctx context.Context, o *echoserver.Options) (s *echoserver.Server, err error) {
	pprof.Do(ctx, pprof.Labels("role", "backend"), func(context.Context) { s, err = echoserver.Start(o) })
	return s, err
}

// Summary is the medians over rounds of one target at one concurrency.
type Summary struct {
	Target        string
	Concurrency   int
	Throughput    float64
	P50, P90, P99 time.Duration
	CPU           time.Duration // process CPU per request
	Errors        int           // summed over rounds
}

// Summaries returns the medians per target and concurrency.
func (c *Comparison) Summaries() []Summary {
	var out []Summary
	for _, conc := range c.Config.Concurrency {
		for _, target := range []string{Direct, Through, Proxy, Observed} {
			if target == Proxy && !c.hasProxy() || target == Observed && !c.hasObserved() {
				continue
			}
			out = append(out, c.SummaryOf(target, conc))
		}
	}
	return out
}

// SummaryOf is the medians over rounds of target at concurrency conc.
func (c *Comparison) SummaryOf(target string, conc int) Summary {
	s := Summary{Target: target, Concurrency: conc}
	var tp []float64
	var p50, p90, p99, cpu []time.Duration
	for _, x := range c.Samples {
		if x.Target == target && x.Concurrency == conc {
			tp, p50, p90, p99 = append(tp, x.Throughput), append(p50, x.P50), append(p90, x.P90), append(p99, x.P99)
			cpu = append(cpu, x.CPU)
			s.Errors += x.Errors
		}
	}
	s.Throughput, s.P50, s.P90, s.P99, s.CPU = median(tp), median(p50), median(p90), median(p99), median(cpu)
	return s
}

// AddedP50 is the median over rounds of the gateway's p50 minus the direct
// p50 in the same round, at concurrency conc.
func (c *Comparison) AddedP50(conc int) time.Duration { return c.AddedP50Of(Through, conc) }

// AddedP50Of is [Comparison.AddedP50] of target (Through or Proxy).
func (c *Comparison) AddedP50Of(target string, conc int) time.Duration {
	return median(paired(c, target, conc, func(d, g *Result) time.Duration { return g.P50 - d.P50 }))
}

// AddedCPU is the median over rounds of the gateway's process CPU time per
// request minus the direct one in the same round, at concurrency conc. With
// everything in one process it is what the gateway costs in CPU per call.
func (c *Comparison) AddedCPU(conc int) time.Duration { return c.AddedCPUOf(Through, conc) }

// AddedCPUOf is [Comparison.AddedCPU] of target (Through or Proxy).
func (c *Comparison) AddedCPUOf(target string, conc int) time.Duration {
	return median(paired(c, target, conc, func(d, g *Result) time.Duration { return g.CPU - d.CPU }))
}

// ThroughputRatio is the median over rounds of the gateway's throughput
// divided by the direct throughput in the same round, at concurrency conc.
func (c *Comparison) ThroughputRatio(conc int) float64 { return c.ThroughputRatioOf(Through, conc) }

// ThroughputRatioOf is [Comparison.ThroughputRatio] of target (Through or
// Proxy).
func (c *Comparison) ThroughputRatioOf(target string, conc int) float64 {
	return median(paired(c, target, conc, func(d, g *Result) float64 {
		if d.Throughput == 0 {
			return 0
		}
		return g.Throughput / d.Throughput
	}))
}

// paired applies f to the direct run and the run of target of every round
// at concurrency conc.
func paired[T any](c *Comparison, target string, conc int, f func(direct, other *Result) T) []T {
	return pairedWith(c, Direct, target, conc, f)
}

// pairedWith applies f to the runs of base and target of every round at
// concurrency conc.
func pairedWith[T any](c *Comparison, base, target string, conc int, f func(base, other *Result) T) []T {
	var out []T
	for round := 1; round <= c.Config.Rounds; round++ {
		var d, g *Result
		for _, x := range c.Samples {
			if x.Round != round || x.Concurrency != conc {
				continue
			}
			switch x.Target {
			case base:
				d = x.Result
			case target:
				g = x.Result
			}
		}
		if d != nil && g != nil {
			out = append(out, f(d, g))
		}
	}
	return out
}

func median[T int | float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (c *Comparison) hasProxy() bool {
	return slices.ContainsFunc(c.Samples, func(x Sample) bool { return x.Target == Proxy })
}
