package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Protocol revisions.
const (
	legacyVersion = "2025-11-25"
	modernVersion = "2026-07-28"
)

// vmcp is a running `vmcp serve` process.
type vmcp struct {
	*proc
	URL  string // the MCP endpoint, http://127.0.0.1:PORT/mcp
	Base string // http://127.0.0.1:PORT
}

// startVMCP writes config to a file and serves it with the vmcp binary on a
// port of the kernel's choosing; it returns once vmcp says it is serving.
// Backends may still be connecting: see [vmcp.waitBackends].
func startVMCP(t *testing.T, config string) *vmcp {
	t.Helper()
	return startBinary(t, bins.vmcp, config)
}

// startBinary is startVMCP with another vmcp binary.
func startBinary(t *testing.T, binary, config string) *vmcp {
	t.Helper()
	file := writeFile(t, "vmcp.yaml", config)
	cmd := exec.Command(binary, "serve", "--config", file, "--listen", "127.0.0.1:0")
	cmd.Env = childEnv()
	p, url := startProc(t, "vmcp", cmd, func(line string) (string, bool) {
		// vmcp VERSION serving "NAME" with N backends on URL
		if _, rest, ok := strings.Cut(line, " serving "); ok && strings.HasPrefix(line, "vmcp ") {
			f := strings.Fields(rest)
			return f[len(f)-1], true
		}
		return "", false
	})
	return &vmcp{proc: p, URL: url, Base: strings.TrimSuffix(url, "/mcp")}
}

// backendStatus and health are the body of /readyz.
type backendStatus struct {
	Name     string    `json:"name"`
	State    string    `json:"state"`
	Error    string    `json:"error"`
	Restarts int       `json:"restarts"`
	Since    time.Time `json:"since"`
}

type health struct {
	Ready    bool            `json:"ready"`
	Backends []backendStatus `json:"backends"`
}

func (h health) backend(name string) backendStatus {
	for _, b := range h.Backends {
		if b.Name == name {
			return b
		}
	}
	return backendStatus{Name: name, State: "(not listed)"}
}

// health reads /readyz.
func (v *vmcp) health(t *testing.T) health {
	t.Helper()
	resp, err := http.Get(v.Base + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	var h health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	return h
}

// waitBackends waits until each named backend is in state (ready, down...).
func (v *vmcp) waitBackends(t *testing.T, state string, names ...string) health {
	t.Helper()
	var h health
	eventually(t, waitTimeout, fmt.Sprintf("backends %v %s", names, state), func() (bool, string) {
		h = v.health(t)
		for _, n := range names {
			if h.backend(n).State != state {
				return false, fmt.Sprintf("%+v", h.Backends)
			}
		}
		return true, ""
	})
	return h
}

// connect opens a go-sdk client session to url: a legacy one (initialize,
// Mcp-Session-Id) for legacyVersion, or a modern stateless one (the
// go-sdk's default: server/discover first) for modernVersion. It is closed
// when the test ends.
func connect(t *testing.T, url, version string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "vmcp-e2e", Version: "1.0.0"}, opts)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connecting to %s (%s): %v", url, version, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	if got := cs.InitializeResult().ProtocolVersion; got != version {
		t.Fatalf("negotiated protocol version %q, want %q", got, version)
	}
	return cs
}

// call calls a tool and returns the result's text blocks, joined by
// newlines, and its isError flag; a protocol error fails the test.
func call(t *testing.T, cs *mcp.ClientSession, name string, args any) (string, bool) {
	t.Helper()
	text, isError, err := tryCall(t.Context(), cs, name, args)
	if err != nil {
		t.Fatalf("calling %s: %v", name, err)
	}
	return text, isError
}

// callOK calls a tool that must succeed and returns its text.
func callOK(t *testing.T, cs *mcp.ClientSession, name string, args any) string {
	t.Helper()
	text, isError := call(t, cs, name, args)
	if isError {
		t.Fatalf("calling %s: isError result: %s", name, text)
	}
	return text
}

func tryCall(ctx context.Context, cs *mcp.ClientSession, name string, args any) (string, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return "", false, err
	}
	return resultText(res), res.IsError, nil
}

func resultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// connectWithProgress is connect with a channel that receives a value for
// each progress notification of the session (dropped when it is full).
func connectWithProgress(t *testing.T, url, version string) (*mcp.ClientSession, <-chan struct{}) {
	t.Helper()
	progress := make(chan struct{}, 100)
	cs := connect(t, url, version, &mcp.ClientOptions{
		ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) {
			select {
			case progress <- struct{}{}:
			default:
			}
		},
	})
	return cs, progress
}

// callOutcome is how a call ended: a protocol error, or a result.
type callOutcome struct {
	text    string
	isError bool
	err     error
}

func (o callOutcome) String() string {
	switch {
	case o.err != nil:
		return "error: " + o.err.Error()
	case o.isError:
		return "isError result: " + o.text
	}
	return "success: " + o.text
}

// startSlowCall starts, on cs, a call of server-everything's
// trigger-long-running-operation (a backend named "everything") that runs
// for a minute reporting progress every second, and returns once the first
// progress arrived on progress (from connectWithProgress): the backend is
// working on the call. The call's outcome arrives on the returned channel.
func startSlowCall(t *testing.T, cs *mcp.ClientSession, progress <-chan struct{}) <-chan callOutcome {
	t.Helper()
	done := make(chan callOutcome, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{
			Meta:      mcp.Meta{"progressToken": "slow"},
			Name:      "everything_trigger-long-running-operation",
			Arguments: map[string]any{"duration": 60, "steps": 60},
		})
		if err != nil {
			done <- callOutcome{err: err}
			return
		}
		done <- callOutcome{text: resultText(res), isError: res.IsError}
	}()
	select {
	case <-progress: // the backend is working on the call
	case <-time.After(waitTimeout):
		t.Fatal("no progress from the slow call")
	}
	return done
}

// toolNames lists every tool of the session, following cursors.
func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatalf("listing tools: %v", err)
		}
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

// withPrefix returns the names that start with prefix.
func withPrefix(names []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// directToolNames lists the tools of an MCP server started as a stdio
// child of the test itself, without vmcp in between.
func directToolNames(t *testing.T, name string, args ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.Command(name, args...)
	cmd.Env = childEnv()
	c := mcp.NewClient(&mcp.Implementation{Name: "vmcp-e2e-direct", Version: "1.0.0"}, nil)
	cs, err := c.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connecting to %s directly: %v", name, err)
	}
	defer cs.Close()
	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatalf("listing the tools of %s directly: %v", name, err)
		}
		names = append(names, tool.Name)
	}
	return names
}

// rawResponse is an HTTP answer of the MCP endpoint.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

// rpc returns the JSON-RPC message of the answer: the body if it is JSON,
// or the data of the first SSE message event.
func (r rawResponse) rpc() (rpcMessage, bool) {
	data := r.body
	if strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
		data = nil
		sc := bufio.NewScanner(bytes.NewReader(r.body))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok && d != "" {
				data = []byte(d)
				break
			}
		}
	}
	var m rpcMessage
	if json.Unmarshal(data, &m) != nil || m.JSONRPC != "2.0" {
		return rpcMessage{}, false
	}
	return m, true
}

type rpcMessage struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int64  `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (r rawResponse) String() string {
	return fmt.Sprintf("%d %s %q", r.status, r.header.Get("Content-Type"), r.body)
}

// do sends one raw HTTP request to url. Headers given as "Name: value"
// strings are added to the defaults of an MCP POST (Content-Type and
// Accept); an empty value removes a default.
func do(t *testing.T, method, url string, body []byte, headers ...string) rawResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		switch v = strings.TrimSpace(v); {
		case k == "Host":
			req.Host = v
		case v == "":
			req.Header.Del(k)
		default:
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: data}
}

// initializeBody is a legacy initialize request.
const initializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"vmcp-e2e-raw","version":"1.0.0"}}}`

// rawSession initializes a legacy session by hand and returns its id.
func rawSession(t *testing.T, url string) string {
	t.Helper()
	r := do(t, http.MethodPost, url, []byte(initializeBody))
	id := r.header.Get("Mcp-Session-Id")
	if r.status != http.StatusOK || id == "" {
		t.Fatalf("initialize: %v (session id %q)", r, id)
	}
	n := do(t, http.MethodPost, url, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`),
		"Mcp-Session-Id: "+id, "Mcp-Protocol-Version: "+legacyVersion)
	if n.status != http.StatusAccepted {
		t.Fatalf("notifications/initialized: %v", n)
	}
	return id
}
