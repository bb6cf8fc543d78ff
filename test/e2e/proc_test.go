package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Deadlines. They bound waits for things that should happen; none is an
// assertion about speed (the race detector and two busy cores make
// everything slow).
const (
	startTimeout = 60 * time.Second // a process prints that it serves
	waitTimeout  = 60 * time.Second // a state a test polls for is reached
	stopTimeout  = 30 * time.Second // a process exits after SIGTERM
	pollInterval = 50 * time.Millisecond
)

// proc is a process started by a test. Its stdout and stderr go to the test
// log, a line at a time, and are kept for assertions.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait has returned
	err    error         // cmd.Wait's result, once exited is closed

	mu    sync.Mutex // guards lines
	lines []string
}

// startProc starts cmd and waits until ready recognises a line of its output
// (stdout or stderr), returning the value ready extracted from it. The
// process is stopped (SIGTERM, then SIGKILL) when the test ends, if it is
// still running.
func startProc(t *testing.T, name string, cmd *exec.Cmd, ready func(line string) (string, bool)) (*proc, string) {
	t.Helper()
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{})}
	values := make(chan string, 1)
	out := &lineWriter{fn: func(line string) {
		p.mu.Lock()
		p.lines = append(p.lines, line)
		p.mu.Unlock()
		t.Logf("%s: %s", name, line)
		if v, ok := ready(line); ok {
			select {
			case values <- v:
			default:
			}
		}
	}}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		out.flush()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
	select {
	case v := <-values:
		return p, v
	case <-p.exited:
		t.Fatalf("%s exited before it was ready: %v", name, p.err)
	case <-time.After(startTimeout):
		t.Fatalf("%s printed no ready line within %s", name, startTimeout)
	}
	return nil, ""
}

// stop ends the process with SIGTERM (SIGKILL if it does not exit) and
// waits for it; it fails the test if the race detector reported something.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(stopTimeout):
			t.Errorf("%s did not exit within %s of SIGTERM; killing it", p.name, stopTimeout)
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	if p.logged("WARNING: DATA RACE") {
		t.Errorf("the race detector reported a data race in %s (see its log above)", p.name)
	}
}

// logged reports whether a line of the process's output contains s.
func (p *proc) logged(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// lineWriter calls fn with each complete line written to it.
type lineWriter struct {
	mu  sync.Mutex // guards buf, and serialises fn
	buf []byte
	fn  func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.fn(strings.TrimRight(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
}

// flush passes on a last line that has no newline.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.fn(string(w.buf))
		w.buf = nil
	}
}

// writeFile writes content to name in a fresh temporary directory of the
// test and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// freePort returns a loopback TCP port that was free a moment ago, for
// servers that cannot report the port they bound.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// eventually polls cond until it reports done, failing the test with what
// cond last said if that does not happen within timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (done bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, state := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s; last state: %s", what, timeout, state)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("%s: %v", what, t.Context().Err())
		case <-time.After(pollInterval):
		}
	}
}

// procInfo is what /proc/PID/stat says about a process.
type procInfo struct {
	pid, ppid int
	state     byte // R, S, Z, ...
}

// readProc reads /proc/PID/stat; ok is false if the process is gone.
func readProc(pid int) (procInfo, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procInfo{}, false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procInfo{}, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 2 {
		return procInfo{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	return procInfo{pid: pid, ppid: ppid, state: f[0][0]}, true
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	p, ok := readProc(pid)
	return ok && p.state != 'Z' && p.state != 'X'
}

// descendants returns the live processes below pid, children first.
func descendants(t *testing.T, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	children := map[int][]int{}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(n); ok && p.state != 'Z' {
			children[p.ppid] = append(children[p.ppid], n)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		for _, c := range children[queue[0]] {
			out = append(out, c)
			queue = append(queue, c)
		}
		queue = queue[1:]
	}
	return out
}

// cmdline returns the command line of pid, arguments joined by spaces.
func cmdline(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(bytes.ReplaceAll(data, []byte{0}, []byte{' '})))
}

// childMatching returns the one direct child of pid whose command line
// contains s, failing the test otherwise.
func childMatching(t *testing.T, pid int, s string) int {
	t.Helper()
	var found []int
	for _, c := range descendants(t, pid) {
		if p, ok := readProc(c); ok && p.ppid == pid && strings.Contains(cmdline(c), s) {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one child of %d running %q, found %v", pid, s, found)
	}
	return found[0]
}

// exitCode returns the exit status of a process that has exited, or -1 and
// a description if it was killed by a signal or could not be waited for.
func exitCode(err error) (int, string) {
	if err == nil {
		return 0, "exit status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), ee.Error()
	}
	return -1, err.Error()
}
