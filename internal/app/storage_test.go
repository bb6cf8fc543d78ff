package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/app"
	"github.com/vmcp-dev/vmcp/internal/config"
	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
	"github.com/vmcp-dev/vmcp/internal/testsupport/redistest"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// storageDoc is a gateway federating to idp, with storage (YAML lines
// under "storage:", indented by two spaces).
func storageDoc(t *testing.T, idp *fakeidp.IdP, addr, storage string) string {
	t.Helper()
	t.Setenv("VMCP_SECRET_IDP_SECRET", "secret")
	return fmt.Sprintf(`
name: storetest
incomingAuth:
  type: oidc
  oidcConfigRef: {name: self, audience: http://%[1]s/mcp}
authServerConfig:
  issuer: http://%[1]s
  upstreamProviders:
  - name: idp
    type: oidc
    oidcConfig:
      issuerUrl: %[2]s
      clientId: vmcp
      clientSecretRef: {name: idp, key: secret}
storage:
%[4]s
backends:
- name: be
  url: %[3]s
server:
  listen: %[1]s
`, addr, idp.URL(), whoamiBackend(t), storage)
}

// mcpPing sends a 2026-07-28 tools/list (no session) with the token and
// returns the status and body.
func mcpPing(t *testing.T, base, token string) (int, string) {
	t.Helper()
	return vmcptest.Stateless(t, base+"/mcp", token, "tools/list", "", "")
}

func shutdown(t *testing.T, a *app.App) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRestartKeepsLogins: vmcp restarted on the same state directory
// (embedded store) keeps the registered client, its tokens, the user's
// upstream grant and the keys it generated: the old access token works,
// the refresh token refreshes, nobody logs in again.
func TestRestartKeepsLogins(t *testing.T) {
	idp := fakeidp.Start(t, fakeidp.Options{RotateRefreshTokens: true})
	addr := vmcptest.FreeAddr(t)
	base := "http://" + addr
	dir := t.TempDir()
	doc := storageDoc(t, idp, addr, "  type: embedded")
	first, _ := vmcptest.New(t, doc, &app.Options{StateDir: dir})
	first.Start()
	vmcptest.WaitReady(t, base)
	tok := vmcptest.Login(t, base)
	if status, body := mcpPing(t, base, tok.Access); status != http.StatusOK {
		t.Fatalf("before the restart: %d %s", status, body)
	}
	shutdown(t, first)
	if fi, err := os.Stat(filepath.Join(dir, app.KeyFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("generated key file: %v, %v; want mode 0600", fi, err)
	}

	second := vmcptest.Start(t, doc, &app.Options{StateDir: dir})
	_ = second
	if status, body := mcpPing(t, base, tok.Access); status != http.StatusOK {
		t.Errorf("the access token after the restart: %d %s", status, body)
	}
	refreshed := vmcptest.PostForm(t, base+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.Refresh}, "client_id": {tok.Client}})
	if refreshed.Status != http.StatusOK || refreshed.Str("access_token") == "" {
		t.Fatalf("refresh after the restart: %d %v", refreshed.Status, refreshed.Body)
	}
	if status, body := mcpPing(t, base, refreshed.Str("access_token")); status != http.StatusOK {
		t.Errorf("the refreshed access token: %d %s", status, body)
	}
}

// TestStateDirInUse: a second vmcp on the same state directory is refused
// with an error that says so, not left waiting or sharing the file.
func TestStateDirInUse(t *testing.T) {
	idp := fakeidp.Start(t, fakeidp.Options{})
	dir := t.TempDir()
	addr := vmcptest.FreeAddr(t)
	vmcptest.Start(t, storageDoc(t, idp, addr, "  type: embedded"), &app.Options{StateDir: dir})
	other := vmcptest.FreeAddr(t)
	cfg := storageDoc(t, idp, other, "  type: embedded")
	_, err := app.New(mustParse(t, cfg), &app.Options{StateDir: dir})
	if err == nil || !strings.Contains(err.Error(), "in use by another vmcp process") {
		t.Fatalf("a second gateway on the same state directory: %v", err)
	}
}

// TestKeyFileReadableByOthers: a storage key others can read is refused.
func TestKeyFileReadableByOthers(t *testing.T) {
	idp := fakeidp.Start(t, fakeidp.Options{})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, app.KeyFileName), []byte(strings.Repeat("k", 44)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := app.New(mustParse(t, storageDoc(t, idp, vmcptest.FreeAddr(t), "  type: embedded")), &app.Options{StateDir: dir})
	if err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("a world-readable key file: %v", err)
	}
}

// readiness returns /readyz's status and body.
func readiness(t *testing.T, base string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&h)
	return resp.StatusCode, h
}

// waitFor polls cond every 50ms for at most 30s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRedisDownAndBack: vmcp starts while Redis is down and says why it is
// not ready; OAuth endpoints answer temporarily_unavailable and MCP
// requests 503 with a JSON-RPC body, never a token issued, never a panic;
// once Redis is back vmcp gets ready on its own and logins work; when Redis
// goes away again, requests that need it get 503, and a refresh issues
// nothing.
func TestRedisDownAndBack(t *testing.T) {
	srv := redistest.Start(t, nil)
	srv.Kill()
	idp := fakeidp.Start(t, fakeidp.Options{})
	addr := vmcptest.FreeAddr(t)
	base := "http://" + addr
	t.Setenv("VMCP_SECRET_STORE_KEY", "down-and-back-0123456789abcdef0123")
	doc := storageDoc(t, idp, addr, fmt.Sprintf(`  type: redis
  timeout: 300ms
  encryptionKeyRefs: [{name: store, key: key}]
  redis: {addr: %s}`, srv.Addr))
	a, _ := vmcptest.New(t, doc, nil)
	a.Start()
	t.Cleanup(func() { shutdown(t, a) })

	waitFor(t, "/readyz did not answer", func() bool {
		status, h := readiness(t, base)
		if status != http.StatusServiceUnavailable {
			return false
		}
		deps, _ := h["dependencies"].([]any)
		if len(deps) != 1 {
			t.Fatalf("readiness without Redis: %v", h)
		}
		d := deps[0].(map[string]any)
		if d["name"] != "storage" || d["ready"] != false || !strings.Contains(fmt.Sprint(d["error"]), "redis") {
			t.Fatalf("readiness without Redis says %v, want the storage named as the reason", d)
		}
		return true
	})
	for u, body := range map[string]string{
		"/oauth/token":    "grant_type=refresh_token&refresh_token=x",
		"/oauth/register": `{"redirect_uris":["http://127.0.0.1:7777/cb"],"token_endpoint_auth_method":"none"}`,
	} {
		resp, err := http.Post(base+u, "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || body["error"] != "temporarily_unavailable" {
			t.Errorf("%s with Redis down: %d %v, want 503 temporarily_unavailable", u, resp.StatusCode, body)
		}
	}
	// A token whose claims would pass (vmcp's issuer and audience, not
	// expired): only its signature is left to check, and vmcp's signing keys
	// are in the store. (A token with a foreign issuer is refused with 401
	// before any key is looked up.)
	status, body := mcpPing(t, base, claimsOnlyToken(t, base, base+"/mcp"))
	if status != http.StatusServiceUnavailable || !strings.Contains(body, `"jsonrpc":"2.0"`) || !strings.Contains(body, `"error"`) {
		t.Errorf("MCP request with Redis down: %d %s, want 503 with a JSON-RPC error", status, body)
	}

	srv.Restart()
	vmcptest.WaitReady(t, base) // on its own, once Redis answers
	tok := vmcptest.Login(t, base)
	if status, body := mcpPing(t, base, tok.Access); status != http.StatusOK {
		t.Fatalf("with Redis back: %d %s", status, body)
	}

	srv.Kill()
	waitFor(t, "MCP requests kept being served with Redis down", func() bool {
		status, body := mcpPing(t, base, tok.Access)
		if status == http.StatusOK {
			return false // answered from the local copy until the store notices
		}
		if status != http.StatusServiceUnavailable || !strings.Contains(body, `"jsonrpc":"2.0"`) {
			t.Fatalf("MCP request with Redis gone: %d %s, want 503 with a JSON-RPC error", status, body)
		}
		return true
	})
	refused := vmcptest.PostForm(t, base+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.Refresh}, "client_id": {tok.Client}})
	if refused.Status != http.StatusServiceUnavailable || refused.Str("error") != "temporarily_unavailable" || refused.Str("access_token") != "" {
		t.Errorf("refresh with Redis gone: %d %v, want 503 temporarily_unavailable and no token", refused.Status, refused.Body)
	}
}

func mustParse(t *testing.T, doc string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(doc), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestRedisNotOnTheCallPath: with the Redis store, MCP requests with a
// vmcp token do not wait for Redis (the token's and grant's checks are
// answered locally until something changes).
func TestRedisNotOnTheCallPath(t *testing.T) {
	srv := redistest.Start(t, nil)
	idp := fakeidp.Start(t, fakeidp.Options{})
	addr := vmcptest.FreeAddr(t)
	base := "http://" + addr
	t.Setenv("VMCP_SECRET_STORE_KEY", "call-path-0123456789abcdef0123456789")
	vmcptest.Start(t, storageDoc(t, idp, addr, fmt.Sprintf(`  type: redis
  encryptionKeyRefs: [{name: store, key: key}]
  redis: {addr: %s}`, srv.Addr)), nil)
	tok := vmcptest.Login(t, base)
	// The local copies are kept once the store listens for invalidations
	// (a moment after it starts): wait until a request is answered
	// locally.
	waitFor(t, "requests kept going to Redis", func() bool {
		before := srv.CommandsProcessed(t)
		if status, body := mcpPing(t, base, tok.Access); status != http.StatusOK {
			t.Fatalf("request: %d %s", status, body)
		}
		return srv.CommandsProcessed(t)-before <= 1 // the INFO itself
	})
	before := srv.CommandsProcessed(t)
	const n = 50
	for range n {
		if status, body := mcpPing(t, base, tok.Access); status != http.StatusOK {
			t.Fatalf("request: %d %s", status, body)
		}
	}
	if got := srv.CommandsProcessed(t) - before; got > 5 {
		t.Errorf("%d MCP requests sent %d commands to Redis; want none but the INFO calls", n, got)
	}

	// Nor do the requests of a 2025-11-25 session, which is shared
	// through Redis: its record is written at initialize, not per call.
	cs := vmcptest.Connect(t, base+"/mcp", tok.Access, nil)
	if _, err := cs.ListTools(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	before = srv.CommandsProcessed(t)
	for range n {
		if _, err := cs.ListTools(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.CommandsProcessed(t) - before; got > 5 {
		t.Errorf("%d requests of a session sent %d commands to Redis; want none but the INFO calls", n, got)
	}
}

// claimsOnlyToken returns a JWT with valid claims for issuer and audience
// and a signature that verifies under no key.
func claimsOnlyToken(t *testing.T, issuer, audience string) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]any{"alg": "RS256", "kid": "x"}) + "." +
		enc(map[string]any{"iss": issuer, "aud": audience, "sub": "s", "exp": time.Now().Add(time.Hour).Unix()}) + ".c2ln"
}

// TestSessionsSharedWithoutAuthServer: storage type redis shares the MCP
// sessions among replicas even when no authorization server keeps state
// there (anonymous or external-IdP gateways): one 2025-11-25 session is
// served by every replica behind a balancer without sticky sessions.
func TestSessionsSharedWithoutAuthServer(t *testing.T) {
	srv := redistest.Start(t, nil)
	t.Setenv("VMCP_SECRET_STORE_KEY", "no-as-sessions-0123456789abcdef0123")
	backend := whoamiBackend(t)
	rr := vmcptest.NewRoundRobin()
	rr.Spread = true
	for range 2 {
		addr := vmcptest.FreeAddr(t)
		vmcptest.Start(t, fmt.Sprintf(`
name: shared
storage:
  type: redis
  encryptionKeyRefs: [{name: store, key: key}]
  redis: {addr: %s}
backends:
- name: be
  url: %s
server:
  listen: %s
`, srv.Addr, backend, addr), nil)
		vmcptest.WaitReady(t, "http://"+addr)
		rr.Add("http://" + addr)
	}
	front := vmcptest.FreeAddr(t)
	rr.Serve(t, front)
	cs := vmcptest.Connect(t, "http://"+front+"/mcp", "", nil)
	lt, err := cs.ListTools(t.Context(), nil)
	if err != nil || len(lt.Tools) != 1 {
		t.Fatalf("tools/list: %v, %v", lt, err)
	}
	for i := range 6 {
		if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: lt.Tools[0].Name}); err != nil {
			t.Fatalf("call %d on the shared session: %v", i, err)
		}
	}
	served := map[int]bool{}
	for _, r := range rr.ServedSession(cs.ID()) {
		served[r] = true
	}
	if len(served) != 2 {
		t.Errorf("the session's requests were served by replicas %v, want both", rr.ServedSession(cs.ID()))
	}
}
