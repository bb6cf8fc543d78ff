// Package hydra runs a real Ory Hydra v2 OpenID Connect provider for tests.
//
// [Start] launches `hydra serve all --dev` in memory on free loopback ports
// and stops it when the test ends. Nobody has to click through a login page:
// a [Browser] follows authorization redirects like a user agent and accepts
// Hydra's login and consent requests through the admin API, answering them
// as the configured [Login] says. Hydra's output reaches the test log only
// when the test fails.
//
// The binary comes from scripts/tools.sh. When it is missing the tests that
// need it are skipped, unless VMCP_E2E=1, which makes that a failure. With
// -short (make test-unit) [Start] and [RunNodeScript] skip the test without
// starting anything, unless VMCP_E2E=1.
package hydra

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TokenStrategy is the format of the access tokens Hydra issues.
type TokenStrategy string

const (
	// Opaque access tokens look like "ory_at_…" and can only be checked by
	// introspection, like Google's.
	Opaque TokenStrategy = "opaque"
	// JWT access tokens are RS256 JWTs signed with Hydra's JWKS.
	JWT TokenStrategy = "jwt"
)

// DefaultSubject is the subject a [Login] uses when it names none.
const DefaultSubject = "user-123"

// DefaultIDTokenClaims returns the ID token claims a [Login] uses when it
// sets none: a verified email address, a name and two groups.
func DefaultIDTokenClaims() map[string]any {
	return map[string]any{
		"email":          "alice@example.com",
		"email_verified": true,
		"name":           "Alice Example",
		"groups":         []any{"engineering", "admins"},
	}
}

// Login says how the harness answers Hydra's login and consent requests.
type Login struct {
	// Subject is the user id the login is accepted for. Empty means
	// DefaultSubject.
	Subject string
	// IDTokenClaims are added to the ID token (and to /userinfo) whatever
	// scopes were granted. Nil means DefaultIDTokenClaims; an empty map
	// adds nothing.
	IDTokenClaims map[string]any
	// AccessTokenClaims, if set, are added to the access token: to a JWT
	// access token as claims under "ext", and to the introspection response.
	AccessTokenClaims map[string]any
	// Reject makes the harness reject the login with access_denied, which
	// Hydra sends back to the client's redirect URI as an OAuth error.
	Reject bool
}

func (l Login) subject() string {
	if l.Subject == "" {
		return DefaultSubject
	}
	return l.Subject
}

func (l Login) idTokenClaims() map[string]any {
	if l.IDTokenClaims == nil {
		return DefaultIDTokenClaims()
	}
	return l.IDTokenClaims
}

// Options configure [Start]. The zero value is a good default.
type Options struct {
	// AccessTokenStrategy is the instance-wide access token format; empty
	// means Opaque. A client can override it (see ClientOptions).
	AccessTokenStrategy TokenStrategy
	// Login is how browsers created by NewBrowser answer login and consent
	// requests unless they are told otherwise.
	Login Login
	// AccessTokenTTL, if not zero, sets the lifetime of access tokens
	// (Hydra's default is one hour).
	AccessTokenTTL time.Duration
	// Binary is the path of the hydra executable; empty means
	// $VMCP_TOOLS/bin/hydra.
	Binary string
	// Env holds extra KEY=VALUE configuration for Hydra, applied last.
	Env []string
	// Host is the host name in Hydra's URLs (it still listens on
	// 127.0.0.1). Empty means 127.0.0.1; "localhost" makes Hydra another
	// site than a gateway on 127.0.0.1 for a browser, as a real IdP is, so
	// that SameSite cookie rules apply as they do in production.
	Host string
	// LoginPages serves Hydra's login and consent pages from a small HTML
	// app (see [Hydra.LoginAppURL]) that a real browser fills in, instead of
	// pages nobody loads because [Browser] answers them through the admin
	// API. Browser still works: it never loads them.
	LoginPages bool
}

// Hydra is a running Hydra instance.
type Hydra struct {
	publicURL string
	adminURL  string
	loginURL  *url.URL
	consent   *url.URL
	login     Login
	admin     *http.Client
	app       *http.Server // the login pages, if Options.LoginPages
	appURL    string

	cmd      *exec.Cmd
	exited   chan struct{}
	output   *tailBuffer
	stopOnce sync.Once
}

// Start runs Hydra in memory for the duration of the test. It skips the test
// when the binary is missing, or fails it when VMCP_E2E=1. With -short it
// skips the test unless VMCP_E2E=1.
func Start(t testing.TB, opts *Options) *Hydra {
	t.Helper()
	skipShort(t, "starts Ory Hydra")
	if opts == nil {
		opts = &Options{}
	}
	bin := opts.Binary
	if bin == "" {
		bin = filepath.Join(ToolsDir(), "bin", "hydra")
	}
	if _, err := os.Stat(bin); err != nil {
		Require(t, "Ory Hydra binary not found (%v); run scripts/tools.sh to build it", err)
	}
	var lastErr error
	// Free ports are found by binding and closing, so another process may
	// take one before Hydra binds it; a few attempts make that harmless.
	for range 3 {
		h, err := start(bin, opts)
		if err == nil {
			t.Cleanup(func() {
				h.Stop()
				if t.Failed() {
					t.Logf("hydra output (%s):\n%s", h.publicURL, h.output.String())
				}
			})
			return h
		}
		lastErr = err
		if !errors.Is(err, errExited) {
			break
		}
	}
	t.Fatalf("hydra: %v", lastErr)
	return nil
}

var errExited = errors.New("hydra exited before it was ready")

func start(bin string, opts *Options) (*Hydra, error) {
	publicPort, err := freePort()
	if err != nil {
		return nil, err
	}
	adminPort, err := freePort()
	if err != nil {
		return nil, err
	}
	strategy := opts.AccessTokenStrategy
	if strategy == "" {
		strategy = Opaque
	}
	h := &Hydra{
		publicURL: "http://" + cmp.Or(opts.Host, "127.0.0.1") + ":" + strconv.Itoa(publicPort),
		adminURL:  "http://127.0.0.1:" + strconv.Itoa(adminPort),
		// Nothing listens on port 9 (discard): the browser never loads
		// these pages, it answers the challenges through the admin API.
		loginURL: &url.URL{Scheme: "http", Host: "127.0.0.1:9", Path: "/hydra-harness/login"},
		consent:  &url.URL{Scheme: "http", Host: "127.0.0.1:9", Path: "/hydra-harness/consent"},
		login:    opts.Login,
		admin:    &http.Client{Timeout: 30 * time.Second},
		exited:   make(chan struct{}),
		output:   &tailBuffer{max: 64 << 10},
	}
	if opts.LoginPages {
		if err := h.startLoginApp(cmp.Or(opts.Host, "127.0.0.1")); err != nil {
			return nil, err
		}
	}
	env := []string{
		"HOME=" + os.Getenv("HOME"),
		"PATH=" + os.Getenv("PATH"),
		"TMPDIR=" + os.TempDir(),
		"DSN=memory",
		"SECRETS_SYSTEM=" + randomHex(32),
		"URLS_SELF_ISSUER=" + h.publicURL,
		"URLS_LOGIN=" + h.loginURL.String(),
		"URLS_CONSENT=" + h.consent.String(),
		"SERVE_PUBLIC_HOST=127.0.0.1",
		"SERVE_PUBLIC_PORT=" + strconv.Itoa(publicPort),
		"SERVE_ADMIN_HOST=127.0.0.1",
		"SERVE_ADMIN_PORT=" + strconv.Itoa(adminPort),
		"STRATEGIES_ACCESS_TOKEN=" + string(strategy),
		"LOG_LEAK_SENSITIVE_VALUES=true",
		"SQA_OPT_OUT=true",
	}
	if opts.AccessTokenTTL > 0 {
		env = append(env, "TTL_ACCESS_TOKEN="+opts.AccessTokenTTL.String())
	}
	env = append(env, opts.Env...)

	h.cmd = exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out")
	h.cmd.Env = env
	h.cmd.Stdout = h.output
	h.cmd.Stderr = h.output
	if err := h.cmd.Start(); err != nil {
		h.stopLoginApp()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		_ = h.cmd.Wait()
		close(h.exited)
	}()
	// Generous: on a loaded machine Hydra takes tens of seconds to generate
	// its keys at the first discovery and JWKS requests.
	if err := h.waitReady(90 * time.Second); err != nil {
		h.Stop()
		return nil, fmt.Errorf("%w\n%s", err, h.output.String())
	}
	return h, nil
}

func (h *Hydra) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(h.adminURL + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return h.warmUp(time.Until(deadline))
			}
		}
		select {
		case <-h.exited:
			return fmt.Errorf("%w (%v)", errExited, h.cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("hydra not ready after %v: last error %v", timeout, err)
		}
	}
}

// warmUp makes Hydra generate its signing keys now: it does so on the first
// discovery or JWKS request, which on a loaded machine can take longer
// than a client's timeout. The admin port may be ready a moment before the
// public one listens, so a refused connection is tried again.
func (h *Hydra) warmUp(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: max(timeout, 30*time.Second)}
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/jwks.json"} {
		for {
			resp, err := client.Get(h.publicURL + path)
			if err == nil {
				resp.Body.Close()
				break
			}
			// A connection refused, or closed at once (io.EOF, reset), is a
			// listener not quite up yet: try again.
			early := errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
			if !early || time.Now().After(deadline) {
				return fmt.Errorf("hydra warm-up %s: %w", path, err)
			}
			select {
			case <-h.exited:
				return fmt.Errorf("%w (%v)", errExited, h.cmd.ProcessState)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// Stop kills Hydra and waits for it to exit, as if the identity provider
// went down. It is safe to call more than once; the test's cleanup calls it
// too.
func (h *Hydra) Stop() {
	h.stopOnce.Do(func() {
		_ = h.cmd.Process.Kill()
		<-h.exited
		h.stopLoginApp()
	})
}

// PublicURL returns the base URL of the public API (authorize, token,
// userinfo, discovery), without a trailing slash.
func (h *Hydra) PublicURL() string { return h.publicURL }

// AdminURL returns the base URL of the admin API, without a trailing slash.
func (h *Hydra) AdminURL() string { return h.adminURL }

// Issuer returns the issuer Hydra puts in tokens and in its discovery
// document. It equals PublicURL.
func (h *Hydra) Issuer() string { return h.publicURL }

// ClientOptions describe an OAuth client for [Hydra.CreateClient].
type ClientOptions struct {
	// ID is the client_id; empty lets Hydra generate one.
	ID string
	// RedirectURIs are the allowed redirect URIs.
	RedirectURIs []string
	// TokenEndpointAuthMethod is client_secret_basic (the default),
	// client_secret_post or none (a public client, which gets no secret).
	TokenEndpointAuthMethod string
	// Scope is the space-separated scopes the client may request; empty
	// means "openid email profile offline_access".
	Scope string
	// AccessTokenStrategy, if set, overrides the instance's access token
	// format for this client.
	AccessTokenStrategy TokenStrategy
	// Audience lists the audiences the client may request for its access
	// tokens.
	Audience []string
}

// CreateClient registers an OAuth client allowed the authorization_code and
// refresh_token grants and returns its id and secret (empty for a public
// client).
func (h *Hydra) CreateClient(t testing.TB, opts ClientOptions) (id, secret string) {
	t.Helper()
	body := map[string]any{
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"redirect_uris":              opts.RedirectURIs,
		"scope":                      cmp.Or(opts.Scope, "openid email profile offline_access"),
		"token_endpoint_auth_method": cmp.Or(opts.TokenEndpointAuthMethod, "client_secret_basic"),
	}
	if opts.ID != "" {
		body["client_id"] = opts.ID
	}
	if opts.AccessTokenStrategy != "" {
		body["access_token_strategy"] = string(opts.AccessTokenStrategy)
	}
	if opts.Audience != nil {
		body["audience"] = opts.Audience
	}
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := h.call(context.Background(), http.MethodPost, "/admin/clients", nil, body, &out); err != nil {
		t.Fatalf("hydra: creating client: %v", err)
	}
	return out.ClientID, out.ClientSecret
}

// Introspect asks Hydra whether token (an access or refresh token) is
// active, and returns the whole introspection response.
func (h *Hydra) Introspect(t testing.TB, token string) (active bool, claims map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.adminURL+"/admin/oauth2/introspect",
		strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if err := h.do(req, &claims); err != nil {
		t.Fatalf("hydra: introspecting: %v", err)
	}
	active, _ = claims["active"].(bool)
	return active, claims
}

// RevokeConsentSessions revokes every consent the subject has granted, to
// every client. Hydra then also revokes the tokens issued under those
// consents, so the next refresh fails.
func (h *Hydra) RevokeConsentSessions(t testing.TB, subject string) {
	t.Helper()
	q := url.Values{"subject": {subject}, "all": {"true"}}
	if err := h.call(context.Background(), http.MethodDelete, "/admin/oauth2/auth/sessions/consent", q, nil, nil); err != nil {
		t.Fatalf("hydra: revoking consent sessions of %q: %v", subject, err)
	}
}

// call sends a JSON admin API request and decodes a JSON response into out
// unless out is nil.
func (h *Hydra) call(ctx context.Context, method, path string, query url.Values, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	u := h.adminURL + path
	if query != nil {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return h.do(req, out)
}

func (h *Hydra) do(req *http.Request, out any) error {
	req.Header.Set("Accept", "application/json")
	resp, err := h.admin.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decoding response: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

// ToolsDir returns where scripts/tools.sh installs third-party tools:
// $VMCP_TOOLS, else $XDG_CACHE_HOME/vmcp-tools, else ~/.cache/vmcp-tools.
func ToolsDir() string {
	if d := os.Getenv("VMCP_TOOLS"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "vmcp-tools")
	}
	return filepath.Join(os.Getenv("HOME"), ".cache", "vmcp-tools")
}

// Require reports that a tool a test needs is missing: it fails the test
// when VMCP_E2E=1 and skips it otherwise.
func Require(t testing.TB, format string, args ...any) {
	t.Helper()
	if e2e() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format+" (set VMCP_E2E=1 to make this a failure)", args...)
}

// skipShort skips a test that starts external tools (what says which) when
// it runs with -short, as make test-unit does, unless VMCP_E2E=1 asks for
// the end-to-end tests: then nothing is ever skipped.
func skipShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() && !e2e() {
		t.Skipf("%s: skipped with -short (set VMCP_E2E=1 to run it)", what)
	}
}

// e2e reports whether the end-to-end tests are asked for (VMCP_E2E=1).
func e2e() bool { return os.Getenv("VMCP_E2E") == "1" }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tailBuffer is a goroutine-safe writer that keeps the last max bytes.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
