// Command vmcp-load is vmcp's load harness: it drives concurrent MCP
// sessions against any MCP endpoint, and compares vmcp with the backend it
// fronts in the same run.
//
//	vmcp-load run --url URL [-c N] [--duration D | --count N] [--mode call|list] [--header 'K: V']...
//	vmcp-load compare [--mode call|list] [--auth] [--rounds 5] [--concurrency 1,32]   (also: vmcp-load --compare)
//	vmcp-load stores [--redis ADDR] [--stores memory,embedded,redis] [--rounds 5] [--concurrency 1,32]
//	vmcp-load idle [--sessions 1000] [--ps [--hold 150s]]
//	vmcp-load coldstart [--backends 10] [--stdio]
//	vmcp-load all [--smoke] [--out bench-report.md]
//
// Progress goes to stderr, results (markdown) to stdout or --out. Figures
// are reported, never checked: the exit status says only whether the
// harness worked (and, for run, whether every request succeeded).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vmcp-dev/vmcp/internal/loadtest"
)

const usage = `vmcp-load - load harness for MCP endpoints and vmcp

Usage:
  vmcp-load run --url URL [flags]      drive N sessions against any MCP endpoint
  vmcp-load compare [flags]            direct backend vs vmcp in front of it, interleaved rounds
                                       (also: vmcp-load --compare)
  vmcp-load stores [flags]             tools/call with vmcp's own tokens, per storage type (memory, embedded, redis)
  vmcp-load idle [flags]               memory per idle session (go-sdk server and vmcp)
  vmcp-load coldstart [flags]          time until /readyz answers 200
  vmcp-load all [--smoke] [--out F]    every scenario, one markdown report

Run "vmcp-load COMMAND -h" for the flags of a command.
`

func main() {
	loadtest.RunChildIfRequested()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmcp-load:", err)
		os.Exit(1)
	}
}

// headers is a repeatable --header flag.
type headers struct{ h http.Header }

func (h *headers) String() string { return "" }
func (h *headers) Set(s string) error {
	if h.h == nil {
		h.h = http.Header{}
	}
	return loadtest.ParseHeader(h.h, s)
}

// strs is a repeatable string flag.
type strs []string

func (l *strs) String() string     { return strings.Join(*l, " ") }
func (l *strs) Set(s string) error { *l = append(*l, s); return nil }

// ints is a comma-separated list of integers.
type ints []int

func (l *ints) String() string {
	var s []string
	for _, v := range *l {
		s = append(s, strconv.Itoa(v))
	}
	return strings.Join(s, ",")
}

func (l *ints) Set(s string) error {
	*l = nil
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return fmt.Errorf("%q is not a positive integer", f)
		}
		*l = append(*l, v)
	}
	return nil
}

// profiling adds --cpuprofile and --memprofile to fs.
type profiling struct{ cpu, mem *string }

func addProfiling(fs *flag.FlagSet) profiling {
	return profiling{
		cpu: fs.String("cpuprofile", "", "write a CPU profile of the whole process to `file` (goroutines carry the pprof label role=client|gateway|backend in compare)"),
		mem: fs.String("memprofile", "", "write a heap profile to `file` at the end"),
	}
}

func (p profiling) start() (func(), error) {
	stopCPU := func() {}
	if *p.cpu != "" {
		f, err := os.Create(*p.cpu)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		stopCPU = func() { pprof.StopCPUProfile(); _ = f.Close() }
	}
	return func() {
		stopCPU()
		if *p.mem != "" {
			if f, err := os.Create(*p.mem); err == nil {
				runtime.GC()
				_ = pprof.WriteHeapProfile(f)
				_ = f.Close()
			}
		}
	}, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	if cmd == "--compare" || cmd == "-compare" {
		cmd = "compare"
	}
	switch cmd {
	case "run":
		return runCmd(ctx, rest, stdout, stderr)
	case "compare":
		return compareCmd(ctx, rest, stdout, stderr)
	case "stores":
		return storesCmd(ctx, rest, stdout, stderr)
	case "idle":
		return idleCmd(ctx, rest, stdout, stderr)
	case "coldstart":
		return coldCmd(ctx, rest, stdout, stderr)
	case "all":
		return allCmd(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("vmcp-load "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	var cfg loadtest.Config
	var hdr headers
	fs.StringVar(&cfg.URL, "url", "", "MCP endpoint (required)")
	fs.StringVar(&cfg.Mode, "mode", loadtest.ModeCall, "call (tools/call) or list (tools/list)")
	fs.StringVar(&cfg.Tool, "tool", "echo", "tool to call")
	args2 := fs.String("args", `{"text":"hello"}`, "tool arguments (JSON object)")
	fs.IntVar(&cfg.Concurrency, "c", 1, "concurrent sessions")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured duration")
	fs.IntVar(&cfg.Count, "count", 0, "measured requests in all (instead of --duration)")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "unmeasured warm-up (default: 10% of --duration, 100ms..1s)")
	fs.StringVar(&cfg.Protocol, "protocol", loadtest.SessionProtocol, "protocol revision: "+loadtest.SessionProtocol+" or "+loadtest.StatelessProtocol)
	fs.BoolVar(&cfg.NoStandaloneStream, "no-get-stream", false, "do not open the standalone GET stream after initialization")
	fs.BoolVar(&cfg.Raw, "raw", false, "send requests as bare JSON-RPC and do not decode answers (protocol "+loadtest.SessionProtocol+" only)")
	fs.BoolVar(&cfg.HTTP2, "http2", false, "speak cleartext HTTP/2 (h2c, prior knowledge): the sessions share a connection")
	fs.Var(&hdr, "header", "`'Name: value'` added to every request (repeatable), e.g. 'Authorization: Bearer TOKEN'")
	prof := addProfiling(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.URL == "" {
		return errors.New("run needs --url")
	}
	cfg.Args = []byte(*args2)
	cfg.Headers = hdr.h
	stop, err := prof.start()
	if err != nil {
		return err
	}
	res, err := loadtest.Run(ctx, cfg)
	stop()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s, %d sessions: %s\n", cfg.URL, cfg.Mode, cfg.Concurrency, res)
	for _, e := range res.ErrorText {
		fmt.Fprintf(stdout, "error: %s\n", e)
	}
	if res.Errors > 0 {
		return fmt.Errorf("%d requests failed", res.Errors)
	}
	return nil
}

func compareCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("compare", stderr)
	cfg := loadtest.CompareConfig{Log: stderr}
	var hdr headers
	conc := ints{1, 32}
	fs.StringVar(&cfg.Mode, "mode", loadtest.ModeCall, "call (tools/call of echo) or list (tools/list of --backends × --tools tools)")
	fs.IntVar(&cfg.Rounds, "rounds", 5, "rounds per target and concurrency")
	fs.DurationVar(&cfg.Duration, "duration", 2*time.Second, "measured duration of each run")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "warm-up of each run (default: 10% of --duration, 100ms..1s)")
	fs.Var(&conc, "concurrency", "comma-separated session counts")
	fs.StringVar(&cfg.Protocol, "protocol", loadtest.SessionProtocol, "protocol revision of the load clients")
	fs.StringVar(&cfg.Client, "client", "", "load client: sdk (go-sdk sessions) or raw (bare JSON-RPC, answers not decoded); default sdk for call, raw for list")
	fs.IntVar(&cfg.Backends, "backends", 20, "list mode: backends behind vmcp")
	fs.IntVar(&cfg.Tools, "tools", 50, "list mode: tools per backend")
	gwConfig := fs.String("gateway-config", "", "vmcp configuration `file` to use instead of the generated one; ${BACKEND_URL} is replaced by the echo backend's URL")
	fs.StringVar(&cfg.GatewayTool, "gateway-tool", "echo_echo", "the echo tool's name through vmcp")
	fs.Var(&hdr, "header", "`'Name: value'` sent to vmcp only (repeatable), e.g. 'Authorization: Bearer TOKEN'")
	fs.BoolVar(&cfg.Auth, "auth", false, "JWT + Cedar: vmcp validates a JWT minted by the harness (its own JWKS server) and decides with 20 Cedar policies; in list mode the caller sees the tools of backends b00 and b03 only")
	fs.BoolVar(&cfg.HTTP2, "http2", false, "load clients speak cleartext HTTP/2 (h2c) to both targets")
	fs.BoolVar(&cfg.Floor, "floor", false, "also measure a bare reverse proxy (net/http/httputil) in front of the backend, where vmcp runs: the cost of one more HTTP hop (call mode)")
	fs.BoolVar(&cfg.Isolate, "isolate", false, "run the backend(s) and vmcp each in a process of its own (default: all in this process)")
	fs.BoolVar(&cfg.Observe, "observe", false, "also measure vmcp with every kind of telemetry on (request metrics, audit log to a file, every request traced over OTLP to a receiver in this process); the vmcp target then runs with everything off")
	var genv strs
	fs.Var(&genv, "gateway-env", "`NAME=value` added to the environment of an isolated vmcp (repeatable), e.g. GOGC=100 (an isolated vmcp tunes its GC as cmd/vmcp does unless GOGC is set)")
	out := fs.String("out", "", "write the markdown report to `file` (default: stdout)")
	prof := addProfiling(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Concurrency, cfg.GatewayHeaders, cfg.GatewayEnv = conc, hdr.h, genv
	if *gwConfig != "" {
		b, err := os.ReadFile(*gwConfig)
		if err != nil {
			return err
		}
		cfg.GatewayTemplate = string(b)
	}
	stop, err := prof.start()
	if err != nil {
		return err
	}
	c, err := loadtest.Compare(ctx, cfg)
	stop()
	if err != nil {
		return err
	}
	title := "tools/call"
	if cfg.Mode == loadtest.ModeList {
		title = fmt.Sprintf("tools/list of %d tools", cfg.Backends*cfg.Tools)
	}
	if cfg.Auth {
		title += ", JWT + Cedar (20 policies)"
	}
	where := "load client, backend and vmcp in one process"
	if cfg.Isolate {
		where = "backend and vmcp each in a process of its own"
	}
	md := fmt.Sprintf("Machine: %s\n\n%s", loadtest.DescribeMachine(), c.Markdown(title+", protocol "+cfg.Protocol+", "+where))
	return write(stdout, *out, md)
}

func storesCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("stores", stderr)
	cfg := loadtest.StoresConfig{Log: stderr}
	conc := ints{1, 32}
	fs.IntVar(&cfg.Rounds, "rounds", 5, "rounds per target and concurrency")
	fs.DurationVar(&cfg.Duration, "duration", 2*time.Second, "measured duration of each run")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "warm-up of each run (default: 10% of --duration, 100ms..1s)")
	fs.Var(&conc, "concurrency", "comma-separated session counts")
	fs.StringVar(&cfg.Protocol, "protocol", loadtest.SessionProtocol, "protocol revision of the load clients")
	fs.StringVar(&cfg.RedisAddr, "redis", "", "Redis `host:port` to use (default: start a redis-server from PATH)")
	stores := fs.String("stores", "memory,embedded,redis", "storage types to measure, comma-separated")
	out := fs.String("out", "", "write the markdown report to `file` (default: stdout)")
	prof := addProfiling(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Concurrency, cfg.Stores = conc, strings.Split(*stores, ",")
	stop, err := prof.start()
	if err != nil {
		return err
	}
	c, err := loadtest.CompareStores(ctx, cfg)
	stop()
	if err != nil {
		return err
	}
	md := fmt.Sprintf("Machine: %s\n\n%s", loadtest.DescribeMachine(),
		c.StoresMarkdown("tools/call with a vmcp access token, by storage type, protocol "+cfg.Protocol))
	return write(stdout, *out, md)
}

func idleCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("idle", stderr)
	cfg := loadtest.IdleConfig{Log: stderr}
	fs.IntVar(&cfg.Sessions, "sessions", 1000, "idle sessions")
	fs.BoolVar(&cfg.NoStandaloneStream, "no-get-stream", false, "clients open no standalone GET stream")
	fs.StringVar(&cfg.ProfileDir, "profile-dir", "", "write heap and goroutine profiles of each target, sessions open, to `dir`")
	fs.Var((*strs)(&cfg.Env), "env", "NAME=value added to the environment of both processes measured (repeatable), e.g. GODEBUG=adaptivestackstart=0")
	fs.BoolVar(&cfg.HTTP2, "http2", false, "clients speak cleartext HTTP/2 (h2c): their open streams share a connection")
	outside := fs.Bool("ps", false, "measure the RSS as ps shows it, read from outside with no collection forced")
	fs.DurationVar(&cfg.Hold, "hold", 0, "with --ps: keep the sessions open this long and read the RSS again (the runtime forces a collection every 2 minutes)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *outside {
		res, err := loadtest.IdleOutside(ctx, cfg)
		if err != nil {
			return err
		}
		return write(stdout, "", loadtest.OutsideMarkdown(res, cfg.Hold))
	}
	res, err := loadtest.Idle(ctx, cfg)
	if err != nil {
		return err
	}
	s := &loadtest.Suite{Machine: loadtest.DescribeMachine(), Started: time.Now()}
	if cfg.NoStandaloneStream {
		s.IdleNoGET = res
	} else {
		s.Idle = res
	}
	return write(stdout, "", s.Markdown())
}

func coldCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("coldstart", stderr)
	cfg := loadtest.ColdStartConfig{Log: stderr}
	fs.IntVar(&cfg.Backends, "backends", 10, "backends")
	fs.IntVar(&cfg.Tools, "tools", 20, "tools per backend")
	fs.IntVar(&cfg.Runs, "runs", 5, "starts measured")
	fs.BoolVar(&cfg.Stdio, "stdio", false, "stdio backends (children) instead of running HTTP backends")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := loadtest.ColdStart(ctx, cfg)
	if err != nil {
		return err
	}
	s := &loadtest.Suite{Machine: loadtest.DescribeMachine(), Started: time.Now(), Cold: res}
	return write(stdout, "", s.Markdown())
}

func allCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("all", stderr)
	var cfg loadtest.SuiteConfig
	fs.BoolVar(&cfg.Smoke, "smoke", false, "run every scenario for a moment only, to prove the harness works")
	out := fs.String("out", "", "write the markdown report to `file` (default: stdout)")
	prof := addProfiling(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Log = stderr
	stop, err := prof.start()
	if err != nil {
		return err
	}
	s, err := loadtest.RunSuite(ctx, cfg)
	stop()
	if err != nil {
		return err
	}
	return write(stdout, *out, s.Markdown())
}

func write(stdout io.Writer, file, md string) error {
	if file == "" {
		_, err := io.WriteString(stdout, md)
		return err
	}
	return os.WriteFile(file, []byte(md), 0o644)
}
