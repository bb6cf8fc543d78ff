package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// slowBackend is an MCP server with a tool that sends one progress
// notification and then waits until release is closed, and a way to change
// its tool list.
type slowBackend struct {
	url     string
	server  *mcp.Server
	release chan struct{}
}

func startSlowBackend(t *testing.T) *slowBackend {
	t.Helper()
	b := &slowBackend{server: mcp.NewServer(&mcp.Implementation{Name: "slow"}, nil), release: make(chan struct{})}
	b.server.AddTool(&mcp.Tool{Name: "wait", InputSchema: map[string]any{"type": "object"}},
		func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if tok := r.Params.GetProgressToken(); tok != nil {
				_ = r.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: 1, Message: "started"})
			}
			select {
			case <-b.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "released"}}}, nil
		})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return b.server }, nil))
	t.Cleanup(srv.Close)
	b.url = srv.URL
	return b
}

// shortTimeouts are server limits far below anything a test waits for.
const shortTimeouts = "readHeaderTimeout: 200ms, readTimeout: 300ms, idleTimeout: 300ms"

// closedWithin reads conn until the server closes it, and reports whether
// it did within d (conn's deadline is set to d).
func closedWithin(conn net.Conn, r io.Reader, d time.Duration) bool {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, r)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestSlowClientsAreCut: a client that trickles its headers, trickles its
// body, or keeps an idle connection open is cut off after
// server.readHeaderTimeout, server.readTimeout and server.idleTimeout; a
// body cut off gets a JSON-RPC error first.
func TestSlowClientsAreCut(t *testing.T) {
	t.Parallel()
	addr := vmcptest.FreeAddr(t)
	vmcptest.Start(t, fmt.Sprintf("backends: []\nserver: {listen: %s, %s}\n", addr, shortTimeouts), nil)
	const bound = 20 * time.Second // the timeouts are 200-300ms; a bound far beyond them holds on a loaded machine

	// trickle writes a byte every 20ms until the server closes conn or the
	// bound passes, and reports whether the server closed it.
	trickle := func(conn net.Conn, done <-chan struct{}) bool {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(bound)
		for {
			select {
			case <-done:
				return true
			case <-deadline:
				return false
			case <-tick.C:
				_, _ = conn.Write([]byte("a")) // fails once the server is gone; done then tells
			}
		}
	}
	dial := func(t *testing.T) net.Conn {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}

	t.Run("headers", func(t *testing.T) {
		conn := dial(t)
		fmt.Fprintf(conn, "POST /mcp HTTP/1.1\r\nHost: %s\r\nX-Slow: ", addr)
		done := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, conn); close(done) }()
		if !trickle(conn, done) {
			t.Fatalf("a client trickling its headers was kept for %s (readHeaderTimeout 200ms)", bound)
		}
	})

	t.Run("body", func(t *testing.T) {
		conn := dial(t)
		fmt.Fprintf(conn, "POST /mcp HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 100000\r\n\r\n", addr)
		type answer struct {
			resp *http.Response
			body []byte
			err  error
		}
		got := make(chan answer, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				got <- answer{err: err}
				return
			}
			body, _ := io.ReadAll(resp.Body)
			got <- answer{resp: resp, body: body}
			_, _ = io.Copy(io.Discard, br)
		}()
		if !trickle(conn, done) {
			t.Fatalf("a client trickling its body was kept for %s (readTimeout 300ms)", bound)
		}
		a := <-got
		if a.err != nil {
			t.Fatalf("no answer before the connection closed: %v", a.err)
		}
		var m struct {
			Error struct{ Code int } `json:"error"`
		}
		if a.resp.StatusCode != http.StatusRequestTimeout || json.Unmarshal(a.body, &m) != nil || m.Error.Code != -32600 {
			t.Errorf("answer %d %s; want 408 with a JSON-RPC error -32600", a.resp.StatusCode, a.body)
		}
	})

	t.Run("idle keep-alive connection", func(t *testing.T) {
		conn := dial(t)
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("GET /healthz: %d, close %v; want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
		}
		if !closedWithin(conn, br, bound) {
			t.Fatalf("an idle keep-alive connection was kept for %s (idleTimeout 300ms)", bound)
		}
	})

	t.Run("idle HTTP/2 connection", func(t *testing.T) {
		closed := make(chan struct{})
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		tr.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, a)
			if err != nil {
				return nil, err
			}
			return &notifyClose{Conn: c, closed: closed}, nil
		}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("answered over HTTP/%d", resp.ProtoMajor)
		}
		select {
		case <-closed: // the server's GOAWAY and close made the client drop it
		case <-time.After(bound):
			t.Fatalf("an idle HTTP/2 connection was kept for %s (idleTimeout 300ms)", bound)
		}
	})

	t.Run("HTTP/2 body", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+"/mcp", pr)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		done := make(chan struct{})
		go func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					if _, err := pw.Write([]byte(" ")); err != nil {
						return
					}
				}
			}
		}()
		ctx, cancel := context.WithTimeout(t.Context(), bound)
		defer cancel()
		resp, err := h2cClient().Do(req.WithContext(ctx))
		close(done)
		if err != nil {
			t.Fatalf("a client trickling its body over HTTP/2: %v (was it kept for %s? readTimeout 300ms)", err, bound)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), `"code":-32600`) {
			t.Errorf("HTTP/%d %d %s; want HTTP/2 408 with a JSON-RPC error", resp.ProtoMajor, resp.StatusCode, body)
		}
	})
}

// notifyClose closes closed when the connection is closed.
type notifyClose struct {
	net.Conn
	closed chan struct{}
	once   sync.Once
}

func (c *notifyClose) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func h2cClient() *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr}
}

// TestStreamsOutliveTimeouts: a session's GET stream and a call's event
// stream stay open far longer than server.readTimeout and
// server.idleTimeout, over HTTP/1.1 and HTTP/2: those bound what a client
// sends, never a response.
func TestStreamsOutliveTimeouts(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			be := startSlowBackend(t)
			addr := vmcptest.FreeAddr(t)
			vmcptest.Start(t, fmt.Sprintf("backends: [{name: be, url: %s}]\nserver: {listen: %s, %s}\n", be.url, addr, shortTimeouts), nil)
			client := http.DefaultClient
			if proto == "HTTP/2" {
				client = h2cClient()
			}
			endpoint := "http://" + addr + "/mcp"
			do := func(method, body string, h ...string) *http.Response {
				req, _ := http.NewRequestWithContext(t.Context(), method, endpoint, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				for i := 0; i+1 < len(h); i += 2 {
					req.Header.Set(h[i], h[i+1])
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { resp.Body.Close() })
				if resp.ProtoMajor != map[string]int{"HTTP/1.1": 1, "HTTP/2": 2}[proto] {
					t.Fatalf("answered over %s", resp.Proto)
				}
				return resp
			}
			init := do(http.MethodPost, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
			_, _ = io.Copy(io.Discard, init.Body)
			sess := []string{"Mcp-Session-Id", init.Header.Get("Mcp-Session-Id"), "Mcp-Protocol-Version", "2025-11-25"}
			_, _ = io.Copy(io.Discard, do(http.MethodPost, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, sess...).Body)

			stream := do(http.MethodGet, "", append(sess, "Accept", "text/event-stream")...)
			call := do(http.MethodPost, `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"be_wait","arguments":{},"_meta":{"progressToken":"p"}}}`, sess...)
			if stream.StatusCode != http.StatusOK || call.StatusCode != http.StatusOK {
				t.Fatalf("GET %d, call %d", stream.StatusCode, call.StatusCode)
			}
			callEvents := bufio.NewScanner(call.Body)
			until(t, callEvents, `"notifications/progress"`)

			time.Sleep(1500 * time.Millisecond) // five times readTimeout and idleTimeout, with nothing sent either way

			be.server.AddTool(&mcp.Tool{Name: "new", InputSchema: map[string]any{"type": "object"}},
				func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
					return &mcp.CallToolResult{}, nil
				})
			until(t, bufio.NewScanner(stream.Body), "notifications/tools/list_changed")
			close(be.release)
			until(t, callEvents, `"released"`)
		})
	}
}

// until reads events until one contains want; the stream ending first
// fails the test.
func until(t *testing.T, sc *bufio.Scanner, want string) {
	t.Helper()
	for sc.Scan() {
		if strings.Contains(sc.Text(), want) {
			return
		}
	}
	t.Fatalf("the stream ended before %s: %v", want, sc.Err())
}

// TestHeaderLimit: request headers are bounded by server.maxHeaderBytes
// (64 KiB by default); the longest legitimate requests — a large bearer
// token, an authorization request with long client, redirect and state
// values and the browser's cookies — fit well within it.
func TestHeaderLimit(t *testing.T) {
	idp := fakeidp.Start(t, fakeidp.Options{Subject: "alice"})
	_, base := authGateway(t, idp)

	get := func(target string, h http.Header) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	// A large token (an IdP's JWT with hundreds of group claims) reaches
	// authentication, which refuses it as a token, not as a header.
	bigToken := strings.Repeat("x", 32<<10)
	if resp := get(base+"/mcp", http.Header{"Authorization": {"Bearer " + bigToken}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a 32 KiB bearer token: %d, want 401 from authentication", resp.StatusCode)
	}

	// The longest authorization request a client makes: a 2 KiB client
	// metadata document URL or a registered client, a 4 KiB redirect URI,
	// a 2 KiB state, scopes and resource, plus 8 KiB of cookies.
	redirect := "http://127.0.0.1:7777/cb/" + strings.Repeat("r", 4<<10)
	reg, err := http.Post(base+"/oauth/register", "application/json", strings.NewReader(`{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none","grant_types":["authorization_code"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var client struct {
		ID string `json:"client_id"`
	}
	_ = json.NewDecoder(reg.Body).Decode(&client)
	reg.Body.Close()
	q := url.Values{"response_type": {"code"}, "client_id": {client.ID}, "redirect_uri": {redirect},
		"state": {strings.Repeat("s", 2<<10)}, "scope": {strings.Repeat("scope ", 200)}, "resource": {base + "/mcp"},
		"code_challenge": {strings.Repeat("c", 43)}, "code_challenge_method": {"S256"}}
	cookies := http.Header{"Cookie": {"a=" + strings.Repeat("c", 4000), "b=" + strings.Repeat("d", 4000)}}
	if resp := get(base+"/oauth/authorize?"+q.Encode(), cookies); resp.StatusCode == http.StatusRequestHeaderFieldsTooLarge || resp.StatusCode >= 500 {
		t.Errorf("a long authorization request: %d; want it to reach the authorization server", resp.StatusCode)
	}

	// Beyond the limit: refused before any handler runs.
	if resp := get(base+"/mcp", http.Header{"X-Pad": {strings.Repeat("p", 100<<10)}}); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("100 KiB of headers: %d, want 431", resp.StatusCode)
	}
}

// TestEdgeGuardsEveryRoute: the Host check against DNS rebinding covers
// every route of the listener, not only /mcp; the host of server.publicURL
// is accepted.
func TestEdgeGuardsEveryRoute(t *testing.T) {
	t.Parallel()
	addr := vmcptest.FreeAddr(t)
	vmcptest.Start(t, fmt.Sprintf("backends: []\nserver: {listen: %s, publicURL: https://mcp.example.com/mcp}\n", addr), nil)
	get := func(path, host string) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/readyz", "/healthz", "/metrics", "/no/such/path"} {
		if got := get(path, "evil.example"); got != http.StatusForbidden {
			t.Errorf("GET %s with Host evil.example: %d, want 403", path, got)
		}
	}
	if got := get("/readyz", "mcp.example.com"); got != http.StatusOK {
		t.Errorf("GET /readyz with the public host: %d, want 200", got)
	}
	if got := get("/readyz", addr); got != http.StatusOK {
		t.Errorf("GET /readyz with the listener's address: %d, want 200", got)
	}
}

// TestSessionLimitMetrics: with server.maxSessions reached, an initialize
// is refused with a JSON-RPC error, and /metrics counts it beside the open
// sessions.
func TestSessionLimitMetrics(t *testing.T) {
	t.Parallel()
	addr := vmcptest.FreeAddr(t)
	vmcptest.Start(t, fmt.Sprintf("backends: []\nserver: {listen: %s, maxSessions: 1}\n", addr), nil)
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	var statuses []int
	for range 2 {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+"/mcp", strings.NewReader(init))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode == http.StatusServiceUnavailable && !strings.Contains(string(body), `"error"`) {
			t.Errorf("the refusal: %s; want a JSON-RPC error", body)
		}
	}
	if statuses[0] != http.StatusOK || statuses[1] != http.StatusServiceUnavailable {
		t.Fatalf("two initializes with maxSessions 1: %v, want [200 503]", statuses)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"vmcp_sessions 1\n", `vmcp_sessions_refused_total{limit="total"} 1` + "\n", `vmcp_sessions_refused_total{limit="principal"} 0` + "\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
