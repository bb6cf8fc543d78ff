package loadtest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vmcp-dev/vmcp/internal/app"
	"github.com/vmcp-dev/vmcp/internal/config"
	"github.com/vmcp-dev/vmcp/internal/loadtest/echoserver"
	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
	"github.com/vmcp-dev/vmcp/internal/testsupport/hydra"
)

// The store comparison: vmcp with its embedded authorization server, the
// caller holding a vmcp access token (so that every request is checked
// against the store: the token still active, its grant not revoked), once
// per storage type, interleaved with the direct backend. Figures say what
// each store costs on the per-call path.

// Store targets.
const (
	StoreMemory   = "memory"
	StoreEmbedded = "embedded"
	StoreRedis    = "redis"
)

// StoresConfig describes a store comparison.
type StoresConfig struct {
	// Rounds, Duration, Warmup and Concurrency as in [CompareConfig].
	Rounds      int
	Duration    time.Duration
	Warmup      time.Duration
	Concurrency []int
	// Protocol the load clients speak. Default: SessionProtocol.
	Protocol string
	// RedisAddr is the Redis to use; empty: the harness starts a
	// redis-server (from PATH) of its own on a free loopback port.
	RedisAddr string
	// Stores to measure. Default: memory, embedded, redis.
	Stores []string
	// Log receives progress lines. Default: discard.
	Log io.Writer
}

// CompareStores starts the echo backend, an upstream IdP and one vmcp per
// store in front of the backend, logs in to each, and runs the direct
// backend and every gateway in interleaved rounds. The result's targets
// are Direct and the store names.
func CompareStores(ctx context.Context, cfg StoresConfig) (*Comparison, error) {
	cc := CompareConfig{Rounds: cfg.Rounds, Duration: cfg.Duration, Warmup: cfg.Warmup, Concurrency: cfg.Concurrency,
		Protocol: cfg.Protocol, Log: cfg.Log}
	cc.defaults()
	if len(cfg.Stores) == 0 {
		cfg.Stores = []string{StoreMemory, StoreEmbedded, StoreRedis}
	}
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	backend, err := startLabeled(ctx, &echoserver.Options{})
	if err != nil {
		return nil, err
	}
	closers = append(closers, backend.Close)
	idp, err := fakeidp.New(fakeidp.Options{Subject: "user-42", Claims: map[string]any{"email": "alice@corp.example"}})
	if err != nil {
		return nil, err
	}
	closers = append(closers, idp.Close)
	if slices.Contains(cfg.Stores, StoreRedis) && cfg.RedisAddr == "" {
		addr, stop, err := StartRedis()
		if err != nil {
			return nil, err
		}
		closers = append(closers, stop)
		cfg.RedisAddr = addr
	}
	targets := map[string]Config{Direct: {URL: backend.URL, Tool: "echo"}}
	names := []string{Direct}
	for _, store := range cfg.Stores {
		gw, token, stop, err := storeGateway(ctx, store, backend.URL, idp, cfg.RedisAddr)
		if err != nil {
			return nil, fmt.Errorf("vmcp with the %s store: %w", store, err)
		}
		closers = append(closers, stop)
		targets[store] = Config{URL: gw, Tool: "echo_echo", Headers: http.Header{"Authorization": {"Bearer " + token}}}
		names = append(names, store)
	}
	return interleave(ctx, cc, targets, names)
}

// storeGateway starts vmcp with the embedded authorization server on
// store, federating to idp, and logs in; it returns the MCP URL and the
// access token.
func storeGateway(ctx context.Context, store, backendURL string, idp *fakeidp.IdP, redisAddr string) (string, string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr
	dir, err := os.MkdirTemp("", "vmcp-load-store-")
	if err != nil {
		return "", "", nil, err
	}
	storage := "  type: " + store
	switch store {
	case StoreEmbedded:
		storage += "\n  stateDir: " + quote(filepath.Join(dir, "state"))
	case StoreRedis:
		storage += fmt.Sprintf("\n  encryptionKeyRefs: [{file: %s}]\n  redis: {addr: %s, keyPrefix: %s}",
			quote(filepath.Join(dir, "key")), quote(redisAddr), quote("vmcp-load:"+filepath.Base(dir)+":"))
		if err := os.WriteFile(filepath.Join(dir, "key"), []byte("vmcp-load-store-comparison-key-0123456789"), 0o600); err != nil {
			return "", "", nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "idp"), []byte("secret"), 0o600); err != nil {
		return "", "", nil, err
	}
	doc := fmt.Sprintf(`name: vmcp-load
server: {listen: %[1]s, logLevel: warn}
incomingAuth:
  type: oidc
  oidcConfigRef: {name: self, audience: %[2]s/mcp}
authServerConfig:
  issuer: %[2]s
  upstreamProviders:
  - name: idp
    type: oidc
    oidcConfig: {issuerUrl: %[3]s, clientId: vmcp, clientSecretRef: {file: %[4]s}}
storage:
%[5]s
backends:
  - name: echo
    url: %[6]s
`, addr, base, idp.URL(), quote(filepath.Join(dir, "idp")), storage, backendURL)
	cfg, err := config.Parse([]byte(doc), "<vmcp-load stores>")
	if err != nil {
		os.RemoveAll(dir)
		return "", "", nil, err
	}
	a, err := app.New(cfg, nil)
	if err != nil {
		os.RemoveAll(dir)
		return "", "", nil, err
	}
	pprof.Do(ctx, pprof.Labels("role", "gateway"), func(context.Context) { a.Start() })
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Shutdown(sctx)
		os.RemoveAll(dir)
	}
	if err := WaitReady(ctx, base, 30*time.Second); err != nil {
		stop()
		return "", "", nil, err
	}
	token, err := Login(ctx, base)
	if err != nil {
		stop()
		return "", "", nil, fmt.Errorf("login: %w", err)
	}
	return base + "/mcp", token, stop, nil
}

// Login registers a client at vmcp's authorization server at base, runs
// the authorization code flow (approving the consent page; the upstream
// IdP must log the user in without asking), and returns the access token.
func Login(ctx context.Context, base string) (string, error) {
	const redirect = "http://127.0.0.1:7777/cb"
	reg, err := postJSON(ctx, base+"/oauth/register", `{"redirect_uris":["`+redirect+`"],"client_name":"vmcp-load","grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none"}`)
	if err != nil {
		return "", err
	}
	client, _ := reg["client_id"].(string)
	verifier := "vmcp-load-verifier-0123456789-0123456789-0123456789"
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect}, "state": {"vmcp-load-state"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}, "resource": {base + "/mcp"}}
	back, err := hydra.NewBrowser().Authorize(ctx, base+"/oauth/authorize?"+q.Encode(), redirect)
	if err != nil {
		return "", err
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {redirect},
		"client_id": {client}, "code_verifier": {verifier}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	tok, err := doJSON(req)
	if err != nil {
		return "", err
	}
	at, _ := tok["access_token"].(string)
	if at == "" {
		return "", fmt.Errorf("no access token: %v", tok)
	}
	return at, nil
}

func postJSON(ctx context.Context, u, body string) (map[string]any, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return doJSON(req)
}

func doJSON(req *http.Request) (map[string]any, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("%s %s: %s: %w", req.Method, req.URL.Path, resp.Status, err)
	}
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %s %v", req.Method, req.URL.Path, resp.Status, out)
	}
	return out, nil
}

// ErrNoRedis means redis-server is not installed (scripts/tools.sh redis).
var ErrNoRedis = errors.New("redis-server is not on PATH (scripts/tools.sh redis installs it)")

// StartRedis runs a redis-server without persistence on a free loopback
// port until stop.
func StartRedis() (addr string, stop func(), err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, ErrNoRedis
	}
	dir, err := os.MkdirTemp("", "vmcp-load-redis-")
	if err != nil {
		return "", nil, err
	}
	for range 5 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		addr = ln.Addr().String()
		ln.Close()
		_, port, _ := net.SplitHostPort(addr)
		cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			return "", nil, err
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop = func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			os.RemoveAll(dir)
		}
		if pingRedis(addr, exited) {
			return addr, stop, nil
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	os.RemoveAll(dir)
	return "", nil, errors.New("redis-server did not start")
}

// pingRedis waits up to 10s for +PONG at addr, unless the server exits.
func pingRedis(addr string, exited <-chan struct{}) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return true
			}
		}
		select {
		case <-exited:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// AddedP50Between is the median over rounds of target's p50 minus base's
// p50 in the same round, at concurrency conc.
func (c *Comparison) AddedP50Between(base, target string, conc int) time.Duration {
	return median(pairedWith(c, base, target, conc, func(b, g *Result) time.Duration { return g.P50 - b.P50 }))
}

// StoresMarkdown reports a store comparison: per store and concurrency,
// the medians, what vmcp adds over the direct backend, and what the store
// adds over the memory store, each paired per round.
func (c *Comparison) StoresMarkdown(title string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n", title)
	fmt.Fprintf(&b, "%d rounds × %s per run, medians over rounds; added p50 is paired per round.\n\n", c.Config.Rounds, c.Config.Duration)
	b.WriteString("| target | sessions | p50 | p99 | req/s | CPU/req | added p50 vs direct | added p50 vs memory | errors |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var targets []string
	for _, x := range c.Samples {
		if !slices.Contains(targets, x.Target) {
			targets = append(targets, x.Target)
		}
	}
	hasMemory := slices.Contains(targets, StoreMemory)
	for _, conc := range c.Config.Concurrency {
		for _, t := range targets {
			s := c.SummaryOf(t, conc)
			vsDirect, vsMemory := "", ""
			if t != Direct {
				vsDirect = fmtDur(c.AddedP50Between(Direct, t, conc))
			}
			if t != Direct && t != StoreMemory && hasMemory {
				vsMemory = fmtDur(c.AddedP50Between(StoreMemory, t, conc))
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %.0f | %s | %s | %s | %d |\n", t, conc, us(s.P50), us(s.P99),
				s.Throughput, us(s.CPU), vsDirect, vsMemory, s.Errors)
		}
	}
	return b.String()
}

// fmtDur is a signed difference in microseconds.
func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%+.1f µs", float64(d)/float64(time.Microsecond))
}
