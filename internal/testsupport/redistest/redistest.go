// Package redistest runs real redis-server processes for tests, each on a
// free loopback port with its own directory, stopped when the test ends.
// redis-server comes from Debian (scripts/tools.sh installs it); without
// it the tests that need it are skipped, unless VMCP_E2E=1, where a
// missing server fails them.
package redistest

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
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

// Options configure [Start].
type Options struct {
	// Persist turns the append-only file on (fsync on every write), so
	// that a restarted server has everything it acknowledged.
	Persist bool
	// Password, if set, is required of clients (requirepass).
	Password string
	// TLSCertFile and TLSKeyFile, if set, make the server speak TLS only,
	// with this certificate and key (PEM files); clients need no
	// certificate of their own.
	TLSCertFile, TLSKeyFile string
}

// Server is a running (or stopped) redis-server.
type Server struct {
	// Addr is host:port.
	Addr     string
	t        testing.TB
	bin      string
	dir      string
	args     []string
	sentinel bool // args name a sentinel configuration
	tls      bool // the server speaks TLS only

	mu  sync.Mutex // guards cmd and exited
	cmd *exec.Cmd
	// exited is closed when cmd has exited.
	exited chan struct{}
}

// Binary returns the path of redis-server, or skips (fails with
// VMCP_E2E=1) the test when it is not installed.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p
	}
	if tools := os.Getenv("VMCP_TOOLS"); tools != "" {
		if p := filepath.Join(tools, "bin", "redis-server"); fileExists(p) {
			return p
		}
	}
	msg := "redis-server is not installed: run scripts/tools.sh redis (make test installs it)"
	if os.Getenv("VMCP_E2E") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Start runs a redis-server until the test ends.
func Start(t testing.TB, opts *Options) *Server {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir()}
	s.args = []string{"--bind", "127.0.0.1", "--dir", s.dir, "--save", "", "--daemonize", "no",
		"--logfile", filepath.Join(s.dir, "redis.log")}
	if opts.Persist {
		s.args = append(s.args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		s.args = append(s.args, "--appendonly", "no")
	}
	if opts.Password != "" {
		s.args = append(s.args, "--requirepass", opts.Password)
	}
	if opts.TLSCertFile != "" {
		s.tls = true
		s.args = append(s.args, "--tls-cert-file", opts.TLSCertFile, "--tls-key-file", opts.TLSKeyFile, "--tls-auth-clients", "no")
	}
	var err error
	for range 5 { // a free port may be taken before redis binds it
		s.Addr = freeAddr(t)
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redis-server did not start: %v", err)
	}
	t.Cleanup(func() { s.Kill() })
	return s
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs the server on s.Addr and waits until it answers PING.
func (s *Server) start() error {
	if s.sentinel {
		return s.startWith(s.args)
	}
	_, port, _ := net.SplitHostPort(s.Addr)
	if s.tls {
		return s.startWith(append([]string{"--port", "0", "--tls-port", port}, s.args...))
	}
	return s.startWith(append([]string{"--port", port}, s.args...))
}

// startWith runs redis-server with args and waits until it answers PING
// on s.Addr.
func (s *Server) startWith(args []string) error {
	cmd := exec.Command(s.bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if s.ping() == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server on %s exited: %s", s.Addr, s.tail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("redis-server on %s did not answer PING within 20s: %s", s.Addr, s.tail())
		}
	}
}

// ping sends an inline PING and reads the answer (+PONG, or -NOAUTH when
// a password is set: both mean it serves).
func (s *Server) ping() error {
	c, err := s.dial(time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") && !strings.HasPrefix(line, "-NOAUTH") {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// dial connects to the server, over TLS if it speaks TLS: the test's own
// connections for PING and INFO, which check whether it serves, not its
// certificate (the tests of TLS clients do).
func (s *Server) dial(timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if s.tls {
		return tls.DialWithDialer(d, "tcp", s.Addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // see above
	}
	return d.Dial("tcp", s.Addr)
}

// tail is the end of the server's log, for failure messages.
func (s *Server) tail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Stop shuts the server down (SIGTERM: it writes its append-only file)
// and waits up to 20s for it to exit.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill kills the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}

// Restart starts the stopped server again on the same address and
// directory (what it persisted is loaded).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	for range 50 { // the port may linger for a moment
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("redis-server did not restart on %s: %v", s.Addr, err)
}

// Port is the server's port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

// CommandsProcessed is the server's total_commands_processed (INFO
// stats): what a test counts to show that something did not go to Redis.
// The INFO command itself counts.
func (s *Server) CommandsProcessed(t testing.TB) int {
	t.Helper()
	for line := range strings.SplitSeq(s.info(t, "stats"), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no total_commands_processed in INFO")
	return 0
}

// StartSentinel runs a Redis Sentinel (redis-server in sentinel mode)
// monitoring primary under masterName, until the test ends. Failover is
// quick: the primary counts as down after 500ms.
func StartSentinel(t testing.TB, primary *Server, masterName string) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir(), sentinel: true}
	conf := filepath.Join(s.dir, "sentinel.conf")
	var err error
	for range 5 {
		s.Addr = freeAddr(t)
		_, port, _ := net.SplitHostPort(s.Addr)
		_, pport, _ := net.SplitHostPort(primary.Addr)
		body := fmt.Sprintf("port %s\nbind 127.0.0.1\ndir %s\nlogfile %s\n"+
			"sentinel monitor %s 127.0.0.1 %s 1\nsentinel down-after-milliseconds %[4]s 500\nsentinel failover-timeout %[4]s 5000\n",
			port, s.dir, filepath.Join(s.dir, "redis.log"), masterName, pport)
		if err = os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		s.args = []string{conf, "--sentinel"}
		if err = s.startWith(s.args); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redis sentinel did not start: %v", err)
	}
	t.Cleanup(func() { s.Kill() })
	return s
}

// StartReplica runs a redis-server replicating primary, until the test
// ends.
func StartReplica(t testing.TB, primary *Server) *Server {
	t.Helper()
	s := Start(t, nil)
	host, port, _ := net.SplitHostPort(primary.Addr)
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "REPLICAOF %s %s\r\n", host, port); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		t.Fatalf("REPLICAOF answered %q, %v", line, err)
	}
	// Wait for the first synchronisation: until then the replica
	// acknowledges no write (WAIT) and cannot be promoted.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(s.info(t, "replication"), "master_link_status:up") {
		if time.Now().After(deadline) {
			t.Fatalf("the replica on %s did not synchronise with %s within 60s", s.Addr, primary.Addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// info returns the server's INFO section.
func (s *Server) info(t testing.TB, section string) string {
	t.Helper()
	c, err := s.dial(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("INFO " + section + "\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n') // $<length>
	if err != nil || !strings.HasPrefix(head, "$") {
		t.Fatalf("INFO answered %q, %v", head, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	return string(body)
}
