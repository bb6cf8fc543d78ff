package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/vmcp-dev/vmcp/internal/app"
	"github.com/vmcp-dev/vmcp/internal/config"
	"github.com/vmcp-dev/vmcp/internal/loadtest/echoserver"
)

// Child processes: memory and cold start are measured on a gateway (or a
// backend) in a process of its own, the harness's own executable run again
// with these variables set. A program using this package calls
// [RunChildIfRequested] first thing in main (or TestMain).
const (
	envChild   = "VMCP_LOAD_CHILD"   // gateway, backend or stdio-backend
	envConfig  = "VMCP_LOAD_CONFIG"  // the gateway's configuration YAML
	envTools   = "VMCP_LOAD_TOOLS"   // extra tools of a backend
	envServers = "VMCP_LOAD_SERVERS" // number of backend servers in a backend child
	envNoEcho  = "VMCP_LOAD_NOECHO"  // backends without the echo tool
	envTarget  = "VMCP_LOAD_TARGET"  // the MCP URL a proxy child forwards to
)

// RunChildIfRequested runs the child process role named in the environment,
// if any, and exits; otherwise it returns at once.
func RunChildIfRequested() {
	role := os.Getenv(envChild)
	if role == "" {
		return
	}
	if err := runChild(role); err != nil {
		fmt.Fprintln(os.Stderr, "vmcp-load child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runChild(role string) error {
	tools, _ := strconv.Atoi(os.Getenv(envTools))
	switch role {
	case "stdio-backend":
		return echoserver.ServeStdio(context.Background(), &echoserver.Options{Name: "stdio", Tools: tools})
	case "backend":
		n, _ := strconv.Atoi(os.Getenv(envServers))
		var bases []string
		for i := range max(n, 1) {
			s, err := echoserver.Start(&echoserver.Options{Name: fmt.Sprintf("b%02d", i), Tools: tools, NoEcho: os.Getenv(envNoEcho) != ""})
			if err != nil {
				return err
			}
			defer s.Close()
			bases = append(bases, strings.TrimSuffix(s.URL, "/mcp"))
		}
		fmt.Printf("LISTEN %s\n", strings.Join(bases, " "))
		serveCommands()
		return nil
	case "proxy":
		u, stop, err := StartProxy(context.Background(), os.Getenv(envTarget))
		if err != nil {
			return err
		}
		defer stop()
		fmt.Printf("LISTEN %s\n", strings.TrimSuffix(u, "/mcp"))
		serveCommands()
		return nil
	case "gateway":
		app.TuneGC(os.Getenv) // as cmd/vmcp serve does: this process stands for a deployed vmcp
		cfg, err := config.Parse([]byte(os.Getenv(envConfig)), "<vmcp-load>")
		if err != nil {
			return err
		}
		a, err := app.New(cfg, &app.Options{Listen: "127.0.0.1:0"})
		if err != nil {
			return err
		}
		fmt.Printf("LISTEN %s\n", strings.TrimSuffix(a.URL(), "/mcp"))
		a.Start()
		serveCommands()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return a.Shutdown(ctx)
	}
	return fmt.Errorf("unknown child role %q", role)
}

// serveCommands answers the parent's commands on stdin until it closes it.
func serveCommands() {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "mem":
			b, _ := json.Marshal(readMem())
			fmt.Printf("%s\n", b)
		case "heap", "goroutine": // write a profile to the file arg
			err := writeProfile(cmd, arg)
			b, _ := json.Marshal(map[string]string{"error": fmt.Sprint(err)})
			fmt.Printf("%s\n", b)
		default:
			fmt.Printf("{\"error\":\"unknown command\"}\n")
		}
	}
}

func writeProfile(name, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.Lookup(name).WriteTo(f, 0)
}

// Mem is a process's memory after a full GC.
type Mem struct {
	HeapInuse  uint64 // bytes in in-use heap spans
	HeapAlloc  uint64 // bytes of live heap objects
	StackInuse uint64 // bytes of goroutine stacks
	RSS        uint64 // resident set size, bytes (Linux only)
	Goroutines int
}

// Live is the Go memory held: live heap objects plus goroutine stacks.
func (m Mem) Live() uint64 { return m.HeapAlloc + m.StackInuse }

func readMem() Mem {
	runtime.GC()
	debug.FreeOSMemory() // also a GC; returns freed pages so that RSS means something
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Mem{HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc, StackInuse: ms.StackInuse,
		RSS: readRSS(), Goroutines: runtime.NumGoroutine()}
}

func readRSS() uint64 { return readRSSOf("self") }

// readRSSOf returns the resident set size of process pid ("self": this
// one), as ps shows it; 0 where /proc is missing.
func readRSSOf(pid string) uint64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// child is a gateway or backend in a process of its own.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	Base  string   // http://127.0.0.1:PORT
	Bases []string // every server of a backend child; Bases[0] == Base
}

// startChild starts the harness's executable in role with extra environment
// and waits for it to print the address it listens on.
func startChild(role string, env ...string) (*child, error) {
	exe, err := selfExe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), append([]string{envChild + "=" + role}, env...)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	line, err := c.out.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("child %s did not start: %w", role, err)
	}
	bases, ok := strings.CutPrefix(strings.TrimSpace(line), "LISTEN ")
	if !ok {
		c.Close()
		return nil, fmt.Errorf("child %s said %q", role, line)
	}
	c.Bases = strings.Fields(bases)
	c.Base = c.Bases[0]
	return c, nil
}

// Pid is the child's process id.
func (c *child) Pid() int { return c.cmd.Process.Pid }

// RSS reads the child's resident set size from outside, as ps shows it:
// the child is not asked for anything, so no collection runs.
func (c *child) RSS() uint64 { return readRSSOf(strconv.Itoa(c.Pid())) }

// startBackends starts a backend child with n servers of tools tools each
// (no echo tool if noEcho) and returns it with the servers' MCP URLs.
func startBackends(n, tools int, noEcho bool) (*child, []string, error) {
	env := []string{envServers + "=" + strconv.Itoa(n), envTools + "=" + strconv.Itoa(tools)}
	if noEcho {
		env = append(env, envNoEcho+"=1")
	}
	c, err := startChild("backend", env...)
	if err != nil {
		return nil, nil, err
	}
	urls := make([]string, len(c.Bases))
	for i, b := range c.Bases {
		urls[i] = b + "/mcp"
	}
	return c, urls, nil
}

// Mem asks the child for its memory after a full GC.
func (c *child) Mem() (Mem, error) {
	var m Mem
	if _, err := io.WriteString(c.stdin, "mem\n"); err != nil {
		return m, err
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal([]byte(line), &m)
}

// Profile asks the child to write profile name (heap, goroutine) to file.
func (c *child) Profile(name, file string) error {
	if _, err := io.WriteString(c.stdin, name+" "+file+"\n"); err != nil {
		return err
	}
	_, err := c.out.ReadString('\n')
	return err
}

// Close asks the child to stop (stdin closed) and kills it if it does not
// within 10s.
func (c *child) Close() {
	_ = c.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}
