package authe2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/testsupport/hydra"
	"github.com/vmcp-dev/vmcp/internal/testsupport/redistest"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// gatewayConfig is a vmcp configuration federating to Hydra (client id)
// at issuer, with the fixture backend, ending with the top-level blocks
// of extra (storage, server).
func gatewayConfig(issuer string, h *hydra.Hydra, clientID, backend, extra string) string {
	return fmt.Sprintf(`
name: authe2e
incomingAuth:
  type: oidc
  oidcConfigRef: {name: gateway-incoming, audience: %[1]s/mcp}
authServerConfig:
  issuer: %[1]s
  tokenLifespans: {accessToken: 5m}
  upstreamProviders:
  - name: hydra
    type: oidc
    oidcConfig:
      issuerUrl: %[2]s
      clientId: %[3]s
      clientSecretRef: {name: hydra, key: clientSecret}
      scopes: [openid, email, profile, offline_access]
config:
  aggregation:
    conflictResolution: prefix
backends:
- name: fixture
  url: %[4]s
%[5]s`, issuer, h.Issuer(), clientID, backend, extra)
}

// storageBlocks are the storage block and a server block for vmcp
// processes behind issuer (their address given by --listen).
func storageBlocks(issuer, storage string) string {
	return "storage:\n" + storage + "\nserver:\n  publicURL: " + issuer + "/mcp\n  logLevel: debug\n"
}

const callScript = `[{"op":"call","name":"fixture_test_simple_text","arguments":{}}]`

// TestRestartKeepsClientsLoggedIn is a single node with the embedded
// store: the TypeScript SDK client registers and logs in (through Hydra),
// the vmcp process is restarted on the same state directory, and the same
// client keeps calling with its access token, then refreshes with its
// refresh token, after a second restart with the rotated one: no new
// registration, no new login. Hydra's upstream tokens live 2s, so every
// refresh also refreshes (and rotates) the stored upstream refresh token.
func TestRestartKeepsClientsLoggedIn(t *testing.T) {
	skipUnlessE2E(t)
	h := hydra.Start(t, &hydra.Options{AccessTokenTTL: 2 * time.Second})
	addr := vmcptest.FreeAddr(t)
	base := "http://" + addr
	id, secret := h.CreateClient(t, hydra.ClientOptions{RedirectURIs: []string{base + "/oauth/callback"}})
	stateDir := filepath.Join(t.TempDir(), "state")
	cfg := gatewayConfig(base, h, id, vmcptest.FixtureBackend(t), storageBlocks(base, "  type: embedded"))
	g := startVMCP(t, "vmcp", cfg, addr, []string{"VMCP_SECRET_HYDRA_CLIENTSECRET=" + secret}, "--state-dir", stateDir)

	state := filepath.Join(t.TempDir(), "client.json")
	steps := runLivingClient(t, h, base+"/mcp", state, nil, `[{"op":"tools"},{"op":"call","name":"fixture_test_simple_text","arguments":{}}]`)
	checkCall(t, steps[1])
	first := readState(t, state)
	if first.Counts.Registrations != 1 || first.Counts.Logins != 1 || first.Tokens.RefreshToken == "" {
		t.Fatalf("first run: %+v", first)
	}

	g.restart()
	checkCall(t, runLivingClient(t, h, base+"/mcp", state, []string{"--no-login"}, callScript)[0])
	if st := readState(t, state); st.Counts != first.Counts || st.Tokens != first.Tokens {
		t.Errorf("after a restart the client's tokens changed: %+v, want %+v", st, first)
	}
	checkCall(t, runLivingClient(t, h, base+"/mcp", state, []string{"--no-login", "--invalidate-access-token"}, callScript)[0])
	refreshed := readState(t, state)
	if refreshed.Counts.Refreshes != 1 || refreshed.Tokens.RefreshToken == first.Tokens.RefreshToken {
		t.Errorf("after a restart the client did not refresh with its refresh token: %+v", refreshed)
	}

	g.restart()
	checkCall(t, runLivingClient(t, h, base+"/mcp", state, []string{"--no-login", "--invalidate-access-token"}, callScript)[0])
	last := readState(t, state)
	if last.Counts.Registrations != 1 || last.Counts.Logins != 1 || last.Counts.Refreshes != 2 {
		t.Errorf("after two restarts: %+v; want 1 registration, 1 login, 2 refreshes", last.Counts)
	}
}

// redisReplicas starts three vmcp processes federating to h, on the
// redis-server rs, and a round-robin balancer for them, to be served (once
// configured) on lbAddr, the public address of every replica.
func redisReplicas(t *testing.T, rs *redistest.Server, h *hydra.Hydra) (replicas []*vmcpProc, bases []string, lb *vmcptest.RoundRobin, lbAddr string) {
	t.Helper()
	lbAddr = vmcptest.FreeAddr(t)
	base := "http://" + lbAddr
	id, secret := h.CreateClient(t, hydra.ClientOptions{RedirectURIs: []string{base + "/oauth/callback"}})
	cfg := gatewayConfig(base, h, id, vmcptest.FixtureBackend(t), storageBlocks(base, fmt.Sprintf(`  type: redis
  encryptionKeyRefs: [{name: storage, key: key}]
  redis: {addr: %s}`, rs.Addr)))
	env := []string{"VMCP_SECRET_HYDRA_CLIENTSECRET=" + secret, "VMCP_SECRET_STORAGE_KEY=e2e-replicas-0123456789abcdef0123456789"}
	for i := range 3 {
		addr := vmcptest.FreeAddr(t)
		replicas = append(replicas, startVMCP(t, fmt.Sprint("vmcp-", i), cfg, addr, env))
		bases = append(bases, "http://"+addr)
	}
	return replicas, bases, vmcptest.NewRoundRobin(bases...), lbAddr
}

// TestReplicasShareLoginsThroughRedis: three vmcp processes share one
// redis-server behind a round-robin load balancer. The TypeScript SDK
// client logs in through it, each OAuth request landing on another replica
// than the one before; its MCP session stays on one replica (sessions are
// not shared yet), and stateless 2026-07-28 calls with its token go to
// every replica. One replica is killed (SIGKILL): the client carries on
// with the same tokens on the others. Redis is restarted (append-only
// file on): the client refreshes, no new registration, no new login.
func TestReplicasShareLoginsThroughRedis(t *testing.T) {
	skipUnlessE2E(t)
	rs := redistest.Start(t, &redistest.Options{Persist: true})
	h := hydra.Start(t, &hydra.Options{AccessTokenTTL: 2 * time.Second})
	replicas, bases, lb, lbAddr := redisReplicas(t, rs, h)
	base := "http://" + lbAddr
	lb.Serve(t, lbAddr)

	state := filepath.Join(t.TempDir(), "client.json")
	steps := runLivingClient(t, h, base+"/mcp", state, nil,
		`[{"op":"tools"},{"op":"call","name":"fixture_test_simple_text","arguments":{}},{"op":"call","name":"fixture_test_simple_text","arguments":{}}]`)
	checkCall(t, steps[1])
	login := readState(t, state)
	if login.Counts.Registrations != 1 || login.Counts.Logins != 1 {
		t.Fatalf("login: %+v", login.Counts)
	}
	var oauth []int
	for _, p := range []string{"/oauth/register", "/oauth/authorize", "/oauth/consent", "/oauth/callback", "/oauth/token"} {
		by := lb.ServedBy(p)
		if len(by) == 0 {
			t.Errorf("no request for %s went through the load balancer", p)
		}
		oauth = append(oauth, by...)
	}
	slices.Sort(oauth)
	if len(slices.Compact(oauth)) < 3 {
		t.Errorf("the login's OAuth requests were served by replicas %v; want all three", oauth)
	}

	statelessCalls := func(n int) {
		t.Helper()
		at := readState(t, state).Tokens.AccessToken
		for range n {
			status, body := statelessCall(t, base+"/mcp", at)
			if status != http.StatusOK || !strings.Contains(body, "This is a simple text response for testing.") {
				t.Fatalf("stateless call through the load balancer: %d %s", status, body)
			}
		}
	}
	statelessCalls(6) // every replica twice

	replicas[0].stop(syscall.SIGKILL)
	lb.Remove(0)
	checkCall(t, runLivingClient(t, h, base+"/mcp", state, []string{"--no-login"}, callScript)[0])
	statelessCalls(4)

	rs.Restart()
	for _, b := range bases[1:] {
		vmcptest.WaitReady(t, b)
	}
	checkCall(t, runLivingClient(t, h, base+"/mcp", state, []string{"--no-login", "--invalidate-access-token"}, callScript)[0])
	statelessCalls(4)
	if st := readState(t, state); st.Counts.Registrations != 1 || st.Counts.Logins != 1 || st.Counts.Refreshes != 1 {
		t.Errorf("after a replica died and Redis restarted: %+v; want 1 registration, 1 login, 1 refresh", st.Counts)
	}
}

// TestOneSessionOnEveryReplica: three vmcp processes on one redis-server
// behind a balancer without sticky sessions. The TypeScript SDK client
// logs in, then calls tools on ONE 2025-11-25 session whose requests go
// to every replica in turn. One replica is killed (SIGKILL) while the
// client calls: at most the call in flight on it fails, and the session
// carries on on the others. Redis is restarted (append-only file on): the
// same session carries on. Never a new registration or login.
func TestOneSessionOnEveryReplica(t *testing.T) {
	skipUnlessE2E(t)
	rs := redistest.Start(t, &redistest.Options{Persist: true})
	h := hydra.Start(t, nil)
	replicas, bases, lb, lbAddr := redisReplicas(t, rs, h)
	base := "http://" + lbAddr
	lb.Spread = true
	lb.Serve(t, lbAddr)

	state := filepath.Join(t.TempDir(), "client.json")
	checkCall(t, runLivingClient(t, h, base+"/mcp", state, nil, callScript)[0]) // the login

	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	script, _ := json.Marshal([]map[string]any{
		{"op": "session", "file": file("sid")},
		{"op": "loop", "name": "fixture_test_simple_text", "until": file("killed")},
		{"op": "signal", "file": file("paused")},
		{"op": "await", "file": file("redis-back")},
		{"op": "loop", "name": "fixture_test_simple_text", "until": file("done")},
		{"op": "session"},
	})
	type result struct {
		out []byte
		err error
	}
	ran := make(chan result, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	go func() {
		args := append([]string{"--url", base + "/mcp", "--state", state, "--no-login"}, h.NodeArgs(hydra.Login{})...)
		out, err := hydra.RunNodeScript(ctx, t, "mcp-oauth-client.mjs", append(args, "script", string(script))...)
		ran <- result{out, err}
	}()
	// waitFor polls cond every 20ms until it holds, for at most 60s, or
	// fails when the client ended first.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			select {
			case r := <-ran:
				t.Fatalf("the client ended while the test waited for %s: %v\n%s", what, r.err, r.out)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 60s: %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var sid string
	waitFor("the client's session id", func() bool {
		b, err := os.ReadFile(file("sid"))
		sid = string(b)
		return err == nil && sid != ""
	})
	served := func() []int { return lb.ServedSession(sid) }
	waitFor("the session's calls to reach every replica", func() bool {
		by := slices.Clone(served())
		slices.Sort(by)
		return len(by) >= 12 && len(slices.Compact(by)) == 3
	})

	// Kill replica 0 while the client calls; the balancer stops sending
	// it requests (its endpoint is gone), so only a call in flight on it
	// can fail.
	lb.Remove(0)
	replicas[0].stop(syscall.SIGKILL)
	after := len(served())
	waitFor("the session to carry on on the other replicas", func() bool { return len(served()) >= after+8 })
	if err := os.WriteFile(file("killed"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor("the client to pause", func() bool { _, err := os.Stat(file("paused")); return err == nil })

	rs.Restart()
	for _, b := range bases[1:] {
		vmcptest.WaitReady(t, b)
	}
	after = len(served())
	if err := os.WriteFile(file("redis-back"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor("the session to carry on after Redis restarted", func() bool { return len(served()) >= after+6 })
	if err := os.WriteFile(file("done"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := <-ran
	if r.err != nil {
		t.Fatalf("the client failed: %v\n%s", r.err, r.out)
	}
	var steps []json.RawMessage
	if err := json.Unmarshal(r.out, &steps); err != nil || len(steps) != 6 {
		t.Fatalf("client output: %v\n%s", err, r.out)
	}
	type outcome struct {
		OK    bool   `json:"ok"`
		Text  string `json:"text"`
		Error string `json:"error"`
	}
	var before, later []outcome
	var lastSID string
	_ = json.Unmarshal(steps[1], &before)
	_ = json.Unmarshal(steps[4], &later)
	_ = json.Unmarshal(steps[5], &lastSID)
	failed := 0
	for _, o := range before {
		if !o.OK {
			failed++
			t.Logf("a call failed around the kill: %s", o.Error)
		}
	}
	if failed > 1 || len(before)-failed < 12 {
		t.Errorf("calls before and around the kill: %d, %d failed; want at most the one in flight on the killed replica to fail", len(before), failed)
	}
	for i, o := range later {
		if !o.OK || !strings.Contains(o.Text, "simple text response") {
			t.Errorf("call %d after Redis restarted: %+v", i, o)
		}
	}
	if len(later) == 0 {
		t.Error("no call after Redis restarted")
	}
	if lastSID != sid {
		t.Errorf("the client ended on session %q, want the one it began with, %q", lastSID, sid)
	}
	if st := readState(t, state); st.Counts.Registrations != 1 || st.Counts.Logins != 1 {
		t.Errorf("after a replica died and Redis restarted: %+v; want 1 registration, 1 login", st.Counts)
	}
}
