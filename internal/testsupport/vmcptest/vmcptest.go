// Package vmcptest runs a vmcp gateway in the test process and connects MCP
// clients to it, for tests of the whole gateway.
package vmcptest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/app"
	"github.com/vmcp-dev/vmcp/internal/config"
	"github.com/vmcp-dev/vmcp/internal/testsupport/conformance"
	"github.com/vmcp-dev/vmcp/internal/testsupport/hydra"
)

// FreeAddr returns a loopback address nothing listens on (to put in a
// configuration before the gateway binds it).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// FixtureBackend serves the conformance fixtures (internal/testsupport/
// conformance) over streamable HTTP on loopback until the test ends, and
// returns its MCP endpoint: a backend for gateways under test.
func FixtureBackend(t testing.TB) string {
	t.Helper()
	s := conformance.New(nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/mcp"
}

// New makes a gateway for the configuration document, not yet started,
// and returns it with its configuration.
func New(t testing.TB, doc string, opts *app.Options) (*app.App, *config.Config) {
	t.Helper()
	cfg, err := config.Parse([]byte(doc), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var o app.Options
	if opts != nil {
		o = *opts
	}
	if o.StateDir == "" && cfg.Storage.Type == config.StorageEmbedded && cfg.Storage.StateDir == "" {
		o.StateDir = t.TempDir() // never the user's own state directory
	}
	a, err := app.New(cfg, &o)
	if err != nil {
		t.Fatal(err)
	}
	return a, cfg
}

// Start runs a gateway for the configuration document until the test ends
// and waits until it is ready. The document must set server.listen.
func Start(t testing.TB, doc string, opts *app.Options) *app.App {
	t.Helper()
	a, cfg := New(t, doc, opts)
	a.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	WaitReady(t, "http://"+cfg.Server.Listen)
	return a
}

// WaitReady waits until the gateway at base answers /readyz with 200.
func WaitReady(t testing.TB, base string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway at %s did not become ready", base)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bearer adds a bearer token to every request.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// Connect opens a 2025-11-25 session to endpoint, with a bearer token if
// token is not empty, closed when the test ends.
func Connect(t testing.TB, endpoint, token string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	transport := &mcp.StreamableClientTransport{Endpoint: endpoint}
	if token != "" {
		transport.HTTPClient = &http.Client{Transport: bearer{token, http.DefaultTransport}}
	}
	s, err := mcp.NewClient(&mcp.Implementation{Name: "vmcptest"}, opts).Connect(context.Background(), transport,
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Initialize opens a 2025-11-25 session at the MCP endpoint at addr with a
// raw initialize POST declaring the client capabilities caps (a JSON
// object), and returns its id. The session is not closed: the test decides
// what becomes of it.
func Initialize(t testing.TB, addr, caps string) string {
	t.Helper()
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":` + caps +
		`,"clientInfo":{"name":"t","version":"1"}}}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/mcp", strings.NewReader(init))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d, session %q", resp.StatusCode, sid)
	}
	return sid
}

// OpenStream sends a 2025-11-25 session's GET to the MCP endpoint at addr
// over HTTP/1.1, on a connection of its own closed when the test ends, with
// an allowed Origin and body (nil: none; a GET should have none), and
// returns the response with its head read.
func OpenStream(t testing.TB, addr, sid string, body io.Reader) (*http.Response, net.Conn) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/mcp", body)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	req.Header.Set("Origin", "http://localhost:3000")
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, conn
}

// Stateless sends one 2026-07-28 request (no session) to the MCP endpoint
// with a bearer token (if not empty): method, and params as a JSON object
// without its braces ("" for none; _meta is added). It returns the status
// and body.
func Stateless(t testing.TB, endpoint, token, method, name, params string) (int, string) {
	t.Helper()
	if params != "" {
		params += ","
	}
	body := `{"jsonrpc":"2.0","id":1,"method":"` + method + `","params":{` + params +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"vmcptest","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}`
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", method)
	if name != "" {
		req.Header.Set("Mcp-Name", name)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Tokens are what a login through vmcp's authorization server gave a
// client.
type Tokens struct {
	Client  string // the registered client's id
	Access  string
	Refresh string
}

// Login registers a public client at vmcp's authorization server at base
// (dynamic client registration) and runs the authorization code flow with
// PKCE for the resource base/mcp through a headless browser that approves
// vmcp's consent page and follows redirects: the upstream IdP must let
// the user in on its own, as fakeidp does. It returns the client's id and
// tokens.
func Login(t testing.TB, base string) Tokens {
	t.Helper()
	const redirect = "http://127.0.0.1:7777/cb"
	body := `{"redirect_uris":["` + redirect + `"],"client_name":"vmcptest","grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none"}`
	resp, err := http.Post(base+"/oauth/register", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var reg map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	clientID, _ := reg["client_id"].(string)
	if clientID == "" {
		t.Fatalf("registration: %d %v", resp.StatusCode, reg)
	}
	verifier := "v-0123456789-0123456789-0123456789-0123456789"
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect}, "state": {"st-12345678"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}, "resource": {base + "/mcp"}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	back, err := hydra.NewBrowser().Authorize(ctx, base+"/oauth/authorize?"+q.Encode(), redirect)
	if err != nil {
		t.Fatal(err)
	}
	tok := PostForm(t, base+"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")},
		"redirect_uri": {redirect}, "client_id": {clientID}, "code_verifier": {verifier}})
	if tok.Status != http.StatusOK {
		t.Fatalf("token: %d %v", tok.Status, tok.Body)
	}
	return Tokens{Client: clientID, Access: tok.Str("access_token"), Refresh: tok.Str("refresh_token")}
}

// FormAnswer is the status and JSON body of an answer to PostForm.
type FormAnswer struct {
	Status int
	Body   map[string]any
}

// Str is the body's string member k ("" if there is none).
func (f FormAnswer) Str(k string) string { s, _ := f.Body[k].(string); return s }

// PostForm posts a form (to an OAuth endpoint) and returns the answer.
func PostForm(t testing.TB, u string, form url.Values) FormAnswer {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return FormAnswer{resp.StatusCode, body}
}
