package frontend_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/authz"
	"github.com/vmcp-dev/vmcp/internal/frontend"
	"github.com/vmcp-dev/vmcp/internal/identity"
	"github.com/vmcp-dev/vmcp/internal/testsupport/logbuf"
)

// world is a backend with something of every kind, each in a public and a
// "secret" variant that the policies of secretPolicies forbid, and a record
// of the subscriptions vmcp makes.
type world struct {
	url string

	mu     sync.Mutex // guards events
	events []string   // "subscribe URI", "unsubscribe URI"
	server *mcp.Server
	// block is where the "block" tool reports that it runs, then how it
	// ended (nil, or the context's error once cancelled).
	block chan error
}

func startWorld(t *testing.T) *world {
	t.Helper()
	w := &world{block: make(chan error, 4)}
	record := func(ev string) {
		w.mu.Lock()
		w.events = append(w.events, ev)
		w.mu.Unlock()
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "world"}, &mcp.ServerOptions{
		SubscribeHandler: func(_ context.Context, r *mcp.SubscribeRequest) error {
			record("subscribe " + r.Params.URI)
			return nil
		},
		UnsubscribeHandler: func(_ context.Context, r *mcp.UnsubscribeRequest) error {
			record("unsubscribe " + r.Params.URI)
			return nil
		},
		CompletionHandler: func(context.Context, *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
			return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: []string{"a"}}}, nil
		},
	})
	obj := json.RawMessage(`{"type":"object"}`)
	text := func(s string) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
	}
	for _, name := range []string{"echo", "secret"} {
		s.AddTool(&mcp.Tool{Name: name, InputSchema: obj}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return text(name), nil
		})
		s.AddPrompt(&mcp.Prompt{Name: name, Arguments: []*mcp.PromptArgument{{Name: "who", Required: true}}},
			func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
				return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: name}}}}, nil
			})
	}
	s.AddTool(&mcp.Tool{Name: "block", InputSchema: obj}, func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		w.block <- nil
		select {
		case <-ctx.Done():
			w.block <- ctx.Err()
		case <-time.After(20 * time.Second):
			w.block <- nil
		}
		return text("done"), nil
	})
	for _, uri := range []string{"file:///public", "file:///secret"} {
		s.AddResource(&mcp.Resource{URI: uri, Name: uri}, func(_ context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: r.Params.URI, Text: uri}}}, nil
		})
	}
	for _, tmpl := range []string{"docs:///{x}", "secret:///{x}"} {
		s.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: tmpl, Name: tmpl}, func(_ context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: r.Params.URI, Text: tmpl}}}, nil
		})
	}
	w.server = s
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	w.url = srv.URL
	return w
}

func (w *world) recorded() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.events...)
}

// secretPolicies allow everything but what is named "secret".
var secretPolicies = []string{
	`permit(principal, action, resource);`,
	`forbid(principal, action, resource) when { resource has name && resource.name like "*secret*" };`,
	`forbid(principal, action, resource) when { resource has uri && resource.uri like "*secret*" };`,
}

// worldGateway serves w through a gateway with secretPolicies, users named
// by X-User (byHeader), on a real loopback listener.
func worldGateway(t *testing.T, w *world, opts *frontend.Options) (*frontend.Gateway, string) {
	t.Helper()
	az, err := authz.New(&authz.Options{Policies: authz.Policies{Inline: secretPolicies}})
	if err != nil {
		t.Fatal(err)
	}
	o := frontend.Options{}
	if opts != nil {
		o = *opts
	}
	o.Authorizer = az
	o.Claims = func(context.Context, *identity.Identity) (authz.Claims, error) { return authz.Claims{}, nil }
	if o.Authenticate == nil {
		o.Authenticate = byHeader
	}
	gw := fastGateway(t, w.url, &o)
	deadline := time.Now().Add(10 * time.Second)
	for len(gw.Catalog().Templates) < 2 || len(gw.Catalog().Prompts) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the catalog lacks the world's prompts or templates")
		}
		time.Sleep(5 * time.Millisecond)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return gw, srv.URL + "/mcp"
}

// wire is an answer as it was on the wire.
type wire struct {
	status  int
	header  http.Header
	length  int64    // Content-Length; -1 if none
	framing []string // Transfer-Encoding
	body    string
}

// send sends one request over a real connection; headers "Name: value"
// (an empty value deletes the header).
func send(t *testing.T, method, url, body string, headers ...string) wire {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		switch {
		case k == "Host":
			req.Host = v
		case v == "":
			req.Header.Del(k)
		default:
			req.Header.Set(k, v)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return wire{status: resp.StatusCode, header: resp.Header, length: resp.ContentLength, framing: resp.TransferEncoding, body: string(b)}
}

// openStream opens a session's GET stream, closed when the test ends or
// after 15 s, so that reading it never blocks a test for longer.
func openStream(t *testing.T, url string, headers ...string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// rpcError reads the answer as a JSON-RPC error, from a JSON body or the
// last message of an event stream.
func (w wire) rpcError() (id string, e *jsonrpc.Error, ok bool) {
	body := w.body
	if strings.HasPrefix(w.header.Get("Content-Type"), "text/event-stream") {
		for line := range strings.SplitSeq(body, "\n") {
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				body = d
			}
		}
	}
	var m struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   *jsonrpc.Error  `json:"error"`
	}
	if json.Unmarshal([]byte(body), &m) != nil || m.JSONRPC != "2.0" || m.Error == nil {
		return "", nil, false
	}
	return string(m.ID), m.Error, true
}

// openSession opens a 2025-11-25 session for user over the real listener and
// returns the headers its requests carry.
func openSession(t *testing.T, url, user, caps string) []string {
	t.Helper()
	h := []string{"X-User: " + user}
	if user != "" {
		h = append(h, "Authorization: Bearer for-the-sdk")
	}
	w := send(t, http.MethodPost, url, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":`+caps+`,"clientInfo":{"name":"t","version":"1"}}}`, h...)
	if w.status != http.StatusOK {
		t.Fatalf("initialize: %d %s", w.status, w.body)
	}
	sid := w.header.Get("Mcp-Session-Id")
	h = append(h, "Mcp-Session-Id: "+sid, "Mcp-Protocol-Version: 2025-11-25")
	if w := send(t, http.MethodPost, url, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, h...); w.status != http.StatusAccepted {
		t.Fatalf("initialized: %d %s", w.status, w.body)
	}
	return slices.Clip(h) // callers append their own headers
}

const modernMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`

// modern are the headers of a 2026-07-28 request.
func modern(method, name string) []string {
	return []string{"Mcp-Protocol-Version: 2026-07-28", "Mcp-Method: " + method, "Mcp-Name: " + name}
}

// TestHiddenLooksMissing: an item the caller may not use and an item that
// does not exist get the same answer on the wire — status, headers,
// framing and body, but for the name — on every path, for every method
// that names an item, so that hidden names cannot be enumerated. "secret"
// names are forbidden; "absent" names (of the same length) do not exist.
func TestHiddenLooksMissing(t *testing.T) {
	t.Parallel()
	w := startWorld(t)
	_, url := worldGateway(t, w, nil)
	legacy := openSession(t, url, "alice", "{}")
	relaying := openSession(t, url, "alice", `{"sampling":{}}`)
	call := func(name string, meta string) string {
		return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + name + `","arguments":{}` + meta + `}}`
	}
	tests := []struct {
		name           string
		body           string // with NAME for the item
		hidden, absent string
		headers        func(item string) []string
	}{
		{"tools/call, fast path", call("NAME", ""), "be_secret", "be_absent",
			func(string) []string { return legacy }},
		{"tools/call with a progress token, SDK path", call("NAME", `,"_meta":{"progressToken":"p"}`), "be_secret", "be_absent",
			func(string) []string { return legacy }},
		{"tools/call on a session that relays, SDK path", call("NAME", ""), "be_secret", "be_absent",
			func(string) []string { return relaying }},
		{"tools/call, 2026-07-28, fast path", call("NAME", ","+modernMeta), "be_secret", "be_absent",
			func(n string) []string { return modern("tools/call", n) }},
		{"prompts/get", `{"jsonrpc":"2.0","id":7,"method":"prompts/get","params":{"name":"NAME"}}`, "be_secret", "be_absent",
			func(string) []string { return legacy }},
		{"prompts/get, 2026-07-28", `{"jsonrpc":"2.0","id":7,"method":"prompts/get","params":{"name":"NAME",` + modernMeta + `}}`, "be_secret", "be_absent",
			func(n string) []string { return modern("prompts/get", n) }},
		{"resources/read", `{"jsonrpc":"2.0","id":7,"method":"resources/read","params":{"uri":"NAME"}}`, "file:///secret", "file:///absent",
			func(string) []string { return legacy }},
		{"resources/read through a template", `{"jsonrpc":"2.0","id":7,"method":"resources/read","params":{"uri":"NAME"}}`, "secret:///x", "absent:///x",
			func(string) []string { return legacy }},
		{"resources/read, 2026-07-28", `{"jsonrpc":"2.0","id":7,"method":"resources/read","params":{"uri":"NAME",` + modernMeta + `}}`, "file:///secret", "file:///absent",
			func(n string) []string { return modern("resources/read", n) }},
		{"resources/subscribe", `{"jsonrpc":"2.0","id":7,"method":"resources/subscribe","params":{"uri":"NAME"}}`, "file:///secret", "file:///absent",
			func(string) []string { return legacy }},
		{"resources/unsubscribe", `{"jsonrpc":"2.0","id":7,"method":"resources/unsubscribe","params":{"uri":"NAME"}}`, "file:///secret", "file:///absent",
			func(string) []string { return legacy }},
		{"completion/complete of a prompt", `{"jsonrpc":"2.0","id":7,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"NAME"},"argument":{"name":"who","value":""}}}`, "be_secret", "be_absent",
			func(string) []string { return legacy }},
		{"completion/complete of a template", `{"jsonrpc":"2.0","id":7,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"NAME"},"argument":{"name":"x","value":""}}}`, "secret:///{x}", "absent:///{x}",
			func(string) []string { return legacy }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ask := func(item string) wire {
				got := send(t, http.MethodPost, url, strings.ReplaceAll(tc.body, "NAME", item), tc.headers(item)...)
				got.body = strings.ReplaceAll(got.body, item, "NAME")
				got.header.Del("Date")
				return got
			}
			hidden, absent := ask(tc.hidden), ask(tc.absent)
			if _, e, ok := absent.rpcError(); !ok {
				t.Fatalf("the absent item's answer is not a JSON-RPC error: %d %s", absent.status, absent.body)
			} else if e.Code == jsonrpc.CodeInternalError {
				t.Fatalf("the absent item's answer is an internal error: %s", absent.body)
			}
			opts := cmp.AllowUnexported(wire{})
			if diff := cmp.Diff(absent, hidden, opts); diff != "" {
				t.Errorf("a forbidden item is told from a missing one on the wire (-missing +forbidden):\n%s", diff)
			}
		})
	}
}

// TestEdgeHostCheck: a request that reached a loopback listener under a
// name that is not a loopback one (a page whose DNS name was rebound to
// 127.0.0.1) is refused before anything else, whichever path would serve
// it; loopback names and the configured host are served.
func TestEdgeHostCheck(t *testing.T) {
	t.Parallel()
	w := startWorld(t)
	_, url := worldGateway(t, w, &frontend.Options{AllowedHosts: []string{"mcp.example.com"}})
	s := openSession(t, url, "alice", "{}")
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"be_echo","arguments":{}}}`
	init := `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	evil := "Host: evil.example"
	tests := []struct {
		name    string
		method  string
		body    string
		headers []string
	}{
		{"tools/call, fast path", http.MethodPost, call, append(s, evil)},
		{"tools/list, fast path", http.MethodPost, list, append(s, evil)},
		{"tools/call, SDK path", http.MethodPost, strings.Replace(call, `"arguments":{}`, `"arguments":{},"_meta":{"progressToken":1}`, 1), append(s, evil)},
		{"initialize", http.MethodPost, init, []string{evil}},
		{"2026-07-28 tools/call", http.MethodPost, strings.Replace(call, `"arguments":{}`, `"arguments":{},`+modernMeta, 1),
			append(modern("tools/call", "be_echo"), evil)},
		{"GET stream", http.MethodGet, "", append(s, evil, "Accept: text/event-stream")},
		{"DELETE", http.MethodDelete, "", append(s, "Host: evil.example:80")},
		{"evil name with a loopback port", http.MethodPost, list, append(s, "Host: 127.0.0.1.evil.example")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := send(t, tc.method, url, tc.body, tc.headers...)
			if _, e, ok := got.rpcError(); got.status != http.StatusForbidden || !ok || e.Code != jsonrpc.CodeInvalidRequest {
				t.Errorf("%d %q %s; want 403 with a JSON-RPC error -32600", got.status, got.header.Get("Content-Type"), got.body)
			}
		})
	}
	for _, host := range []string{"localhost", "LOCALHOST:4483", "127.0.0.1", "[::1]:9", "mcp.example.com", "MCP.example.com:443"} {
		if got := send(t, http.MethodPost, url, list, append(s, "Host: "+host)...); got.status != http.StatusOK || !strings.Contains(got.body, `"be_echo"`) {
			t.Errorf("Host %s: %d %s; want the list", host, got.status, got.body)
		}
	}
}

// TestEdgeAnswersJSONRPC: every refusal, on every path and for every
// method, is a JSON-RPC error (not the SDK's plain text), with the
// request's id once the body is read, and the status of the transport.
func TestEdgeAnswersJSONRPC(t *testing.T) {
	t.Parallel()
	w := startWorld(t)
	_, url := worldGateway(t, w, nil)
	alice := openSession(t, url, "alice", "{}")
	ping := `{"jsonrpc":"2.0","id":5,"method":"ping"}`
	tests := []struct {
		name       string
		method     string
		body       string
		headers    []string
		wantStatus int
		wantCode   int64
		wantID     string
	}{
		{"unknown method", http.MethodPost, `{"jsonrpc":"2.0","id":5,"method":"nope/nope","params":{}}`, alice, 400, -32601, "5"},
		{"not a JSON-RPC message", http.MethodPost, `{"id":5,"method":"ping"}`, alice, 400, -32600, "5"},
		{"a JSON value that is not a message", http.MethodPost, `42`, alice, 400, -32600, "null"},
		{"a notification with an id", http.MethodPost, `{"jsonrpc":"2.0","id":5,"method":"notifications/initialized"}`, alice, 400, -32600, "5"},
		{"protocol version garbage", http.MethodPost, ping, append(alice, "Mcp-Protocol-Version: garbage"), 400, -32022, "5"},
		{"protocol version too old", http.MethodPost, ping, append(alice, "Mcp-Protocol-Version: 1999-01-01"), 400, -32022, "5"},
		{"protocol version garbage on GET", http.MethodGet, "", append(alice, "Mcp-Protocol-Version: zzz", "Accept: text/event-stream"), 400, -32022, "null"},
		{"no Accept", http.MethodPost, ping, append(alice, "Accept: "), 400, -32600, "5"},
		{"Accept without event streams", http.MethodPost, ping, append(alice, "Accept: application/json"), 400, -32600, "5"},
		{"Content-Type text/plain", http.MethodPost, ping, append(alice, "Content-Type: text/plain"), 415, -32600, "5"},
		{"Last-Event-ID on a POST", http.MethodPost, ping, append(alice, "Last-Event-ID: 1"), 400, -32600, "5"},
		{"unknown session", http.MethodPost, ping, append(alice, "Mcp-Session-Id: nope"), 404, -32600, "5"},
		{"another user's session", http.MethodPost, ping, append(alice, "X-User: bob"), 403, -32600, "5"},
		{"an anonymous caller on a user's session", http.MethodPost, ping, append(alice, "X-User: ", "Authorization: "), 403, -32600, "5"},
		{"GET without a session", http.MethodGet, "", []string{"Accept: text/event-stream"}, 400, -32600, "null"},
		{"GET of an unknown session", http.MethodGet, "", []string{"Accept: text/event-stream", "Mcp-Session-Id: nope"}, 404, -32600, "null"},
		{"GET of another user's session", http.MethodGet, "", append(alice, "X-User: bob", "Accept: text/event-stream"), 403, -32600, "null"},
		{"GET without Accept", http.MethodGet, "", alice, 400, -32600, "null"},
		{"GET with a malformed Last-Event-ID", http.MethodGet, "", append(alice, "Accept: text/event-stream", "Last-Event-ID: x"), 400, -32600, "null"},
		{"DELETE without a session", http.MethodDelete, "", nil, 400, -32600, "null"},
		{"DELETE of an unknown session", http.MethodDelete, "", []string{"Mcp-Session-Id: nope"}, 404, -32600, "null"},
		{"DELETE of another user's session", http.MethodDelete, "", append(alice, "X-User: bob"), 403, -32600, "null"},
		{"PUT", http.MethodPut, ping, alice, 405, -32600, "null"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := send(t, tc.method, url, tc.body, tc.headers...)
			id, e, ok := got.rpcError()
			switch {
			case got.header.Get("Content-Type") != "application/json" || !ok:
				t.Errorf("%d %q %q; want a JSON-RPC error", got.status, got.header.Get("Content-Type"), got.body)
			case got.status != tc.wantStatus || e.Code != tc.wantCode || id != tc.wantID:
				t.Errorf("%d, code %d, id %s (%s); want %d, code %d, id %s", got.status, e.Code, id, e.Message, tc.wantStatus, tc.wantCode, tc.wantID)
			}
		})
	}
	t.Run("an unknown version names the known ones", func(t *testing.T) {
		got := send(t, http.MethodPost, url, ping, append(alice, "Mcp-Protocol-Version: 2099-01-01")...)
		_, e, _ := got.rpcError()
		var data mcp.UnsupportedProtocolVersionData
		if e == nil || json.Unmarshal(e.Data, &data) != nil || data.Requested != "2099-01-01" || !cmp.Equal(data.Supported, mcp.SupportedProtocolVersions()) {
			t.Errorf("%d %s; want -32022 with the supported revisions", got.status, got.body)
		}
	})
	t.Run("a second GET stream of a session", func(t *testing.T) {
		resp := openStream(t, url, alice...)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("first GET: %d", resp.StatusCode)
		}
		got := send(t, http.MethodGet, url, "", append(alice, "Accept: text/event-stream")...)
		if _, _, ok := got.rpcError(); got.status != http.StatusConflict || !ok {
			t.Errorf("%d %q %s; want 409 with a JSON-RPC error", got.status, got.header.Get("Content-Type"), got.body)
		}
	})
	t.Run("a 2026-07-28 POST ignores Last-Event-ID and Mcp-Session-Id", func(t *testing.T) {
		got := send(t, http.MethodPost, url, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{`+modernMeta+`}}`,
			append(modern("tools/list", ""), "Last-Event-ID: 1", "Mcp-Session-Id: nope")...)
		if got.status != http.StatusOK || !strings.Contains(got.body, `"be_echo"`) || got.header.Get("Mcp-Session-Id") != "" {
			t.Errorf("%d %s", got.status, got.body)
		}
	})
}

// TestSessionOwnerOnly: another user can neither cancel a call on a
// session (bob cannot cancel alice's call) nor end it, and the session's
// owner still can.
func TestSessionOwnerOnly(t *testing.T) {
	t.Parallel()
	w := startWorld(t)
	_, url := worldGateway(t, w, nil)
	alice := openSession(t, url, "alice", "{}")
	answered := make(chan wire, 1)
	go func() {
		answered <- send(t, http.MethodPost, url, `{"jsonrpc":"2.0","id":"slow","method":"tools/call","params":{"name":"be_block","arguments":{}}}`, alice...)
	}()
	select {
	case <-w.block:
	case <-time.After(10 * time.Second):
		t.Fatal("the call never reached the backend")
	}
	cancel := `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"slow","reason":"mallory"}}`
	if got := send(t, http.MethodPost, url, cancel, append(alice, "X-User: bob")...); got.status != http.StatusForbidden {
		t.Errorf("bob's notifications/cancelled on alice's session: %d %s; want 403", got.status, got.body)
	}
	if got := send(t, http.MethodDelete, url, "", append(alice, "X-User: bob")...); got.status != http.StatusForbidden {
		t.Errorf("bob's DELETE of alice's session: %d %s; want 403", got.status, got.body)
	}
	// The call still runs: alice's own cancellation is the first the
	// backend sees.
	if got := send(t, http.MethodPost, url, cancel, alice...); got.status != http.StatusAccepted {
		t.Fatalf("alice's notifications/cancelled: %d %s", got.status, got.body)
	}
	select {
	case err := <-w.block:
		if err == nil {
			t.Error("the call ended without being cancelled")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("alice's cancellation never reached the backend")
	}
	<-answered
}

// TestUnsubscribeIsTheSubscribers: a session ends only its own
// subscriptions (another session's unsubscribe never reaches the backend,
// and the subscriber keeps its updates), a resource the caller may not
// read is unknown to unsubscribe too, and a session's subscriptions end
// with it.
func TestUnsubscribeIsTheSubscribers(t *testing.T) {
	t.Parallel()
	w := startWorld(t)
	_, url := worldGateway(t, w, nil)
	alice, bob := openSession(t, url, "alice", "{}"), openSession(t, url, "bob", "{}")
	sub := func(method string) string {
		return `{"jsonrpc":"2.0","id":3,"method":"resources/` + method + `","params":{"uri":"file:///public"}}`
	}
	ok := func(w wire) bool { return w.status == http.StatusOK && strings.Contains(w.body, `"result"`) }
	if got := send(t, http.MethodPost, url, sub("subscribe"), alice...); !ok(got) {
		t.Fatalf("alice subscribes: %d %s", got.status, got.body)
	}
	if got := send(t, http.MethodPost, url, sub("unsubscribe"), bob...); !ok(got) {
		t.Errorf("bob unsubscribes from what he never subscribed to: %d %s; want a no-op", got.status, got.body)
	}
	if got := send(t, http.MethodPost, url, sub("subscribe"), alice...); !ok(got) {
		t.Fatalf("alice subscribes again: %d %s", got.status, got.body)
	}
	if got, want := w.recorded(), []string{"subscribe file:///public"}; !cmp.Equal(got, want) {
		t.Errorf("the backend saw %q, want %q: alice's subscription, not ended by bob", got, want)
	}

	// Alice still gets updates.
	stream := openStream(t, url, alice...)
	if err := w.server.ResourceUpdated(t.Context(), &mcp.ResourceUpdatedNotificationParams{URI: "file:///public"}); err != nil {
		t.Fatal(err)
	}
	readUntil(t, stream.Body, "notifications/resources/updated")

	if got := send(t, http.MethodPost, url, sub("unsubscribe"), alice...); !ok(got) {
		t.Fatalf("alice unsubscribes: %d %s", got.status, got.body)
	}
	if got, want := w.recorded(), []string{"subscribe file:///public", "unsubscribe file:///public"}; !cmp.Equal(got, want) {
		t.Errorf("the backend saw %q, want %q: one unsubscribe ends a session's subscription, however often it subscribed", got, want)
	}

	// A session's subscriptions end with it.
	if got := send(t, http.MethodPost, url, sub("subscribe"), bob...); !ok(got) {
		t.Fatalf("bob subscribes: %d %s", got.status, got.body)
	}
	if got := send(t, http.MethodDelete, url, "", bob...); got.status != http.StatusNoContent {
		t.Fatalf("bob's DELETE: %d %s", got.status, got.body)
	}
	want := []string{"subscribe file:///public", "unsubscribe file:///public", "subscribe file:///public", "unsubscribe file:///public"}
	deadline := time.Now().Add(10 * time.Second)
	for !cmp.Equal(w.recorded(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the backend saw %q, want %q: a closed session's subscription was never ended", w.recorded(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestResourceNotFoundCode: an unknown resource gets the code of the
// caller's revision: -32002 on a 2025-11-25 session, -32602 in the
// stateless revision (which forbids -32002).
func TestResourceNotFoundCode(t *testing.T) {
	t.Parallel()
	w := startWorld(t)
	_, url := worldGateway(t, w, nil)
	s := openSession(t, url, "alice", "{}")
	for _, tc := range []struct {
		name    string
		body    string
		headers []string
		want    int64
	}{
		{"2025-11-25 read", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///absent"}}`, s, -32002},
		{"2025-11-25 read of a forbidden resource", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///secret"}}`, s, -32002},
		{"2025-11-25 subscribe", `{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"file:///absent"}}`, s, -32002},
		{"2026-07-28 read", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///absent",` + modernMeta + `}}`,
			modern("resources/read", "file:///absent"), -32602},
	} {
		got := send(t, http.MethodPost, url, tc.body, tc.headers...)
		if _, e, ok := got.rpcError(); !ok || e.Code != tc.want || e.Message != "Resource not found" {
			t.Errorf("%s: %d %s; want Resource not found with code %d", tc.name, got.status, got.body, tc.want)
		}
	}
}

// TestModernRemovedMethodsAreNotErrors: a 2026-07-28 ping (a method that
// revision removed) is the client's mistake: it gets 404 and -32601, and
// vmcp logs nothing at ERROR.
func TestModernRemovedMethodsAreNotErrors(t *testing.T) {
	t.Parallel()
	logs := &logbuf.Buffer{}
	w := startWorld(t)
	_, url := worldGateway(t, w, &frontend.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	for _, method := range []string{"ping", "logging/setLevel", "resources/subscribe"} {
		got := send(t, http.MethodPost, url, `{"jsonrpc":"2.0","id":1,"method":"`+method+`","params":{"level":"info","uri":"file:///public",`+modernMeta+`}}`,
			modern(method, "")...)
		if _, e, ok := got.rpcError(); got.status != http.StatusNotFound || !ok || e.Code != jsonrpc.CodeMethodNotFound {
			t.Errorf("2026-07-28 %s: %d %s; want 404 with -32601", method, got.status, got.body)
		}
	}
	if out := logs.String(); strings.Contains(out, "level=ERROR") {
		t.Errorf("a client's removed method was logged as vmcp's error:\n%s", out)
	}
}

// TestSessionLimits: initializes beyond server.maxSessions, or beyond
// server.maxSessionsPerPrincipal for one user, are refused with a JSON-RPC
// error carrying the request's id and are counted; ending a session frees
// its slot.
func TestSessionLimits(t *testing.T) {
	t.Parallel()
	w := startWorld(t)
	gw, url := worldGateway(t, w, &frontend.Options{MaxSessions: 4, MaxSessionsPerPrincipal: 2})
	init := `{"jsonrpc":"2.0","id":"i","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	open := func(user string) wire {
		return send(t, http.MethodPost, url, init, "X-User: "+user, "Authorization: Bearer for-the-sdk")
	}
	refused := func(got wire, status int) bool {
		id, e, ok := got.rpcError()
		return got.status == status && ok && id == `"i"` && strings.Contains(e.Message, "sessions") && got.header.Get("Mcp-Session-Id") == ""
	}
	a1, a2 := open("alice"), open("alice")
	if a1.status != http.StatusOK || a2.status != http.StatusOK {
		t.Fatalf("alice's first two sessions: %d %d", a1.status, a2.status)
	}
	if got := open("alice"); !refused(got, http.StatusTooManyRequests) {
		t.Errorf("alice's third session: %d %s; want 429 with a JSON-RPC error", got.status, got.body)
	}
	if got := open("bob"); got.status != http.StatusOK {
		t.Errorf("bob's first session: %d %s; want it (the per-user limit is alice's)", got.status, got.body)
	}
	if got := open("carol"); got.status != http.StatusOK {
		t.Errorf("carol's first session: %d %s", got.status, got.body)
	}
	if got := open("dave"); !refused(got, http.StatusServiceUnavailable) {
		t.Errorf("a fifth session: %d %s; want 503 with a JSON-RPC error", got.status, got.body)
	}
	if got := send(t, http.MethodDelete, url, "", "X-User: alice", "Authorization: Bearer for-the-sdk",
		"Mcp-Session-Id: "+a1.header.Get("Mcp-Session-Id")); got.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", got.status, got.body)
	}
	if got := open("alice"); got.status != http.StatusOK {
		t.Errorf("alice after ending a session: %d %s; want a new one", got.status, got.body)
	}
	st := gw.SessionStats()
	if want := (frontend.SessionStats{Open: 4, RefusedTotal: 1, RefusedPrincipal: 1}); st != want {
		t.Errorf("SessionStats = %+v, want %+v", st, want)
	}
}

// TestSessionLimitsUnderAFlood: many concurrent initializes, some of them
// failing, never leave more sessions than the limit; every one gets a
// session, a refusal or its error; once they end, the full limit is free
// again (no place is lost to an initialize that made no session).
func TestSessionLimitsUnderAFlood(t *testing.T) {
	t.Parallel()
	w := startWorld(t)
	gw, url := worldGateway(t, w, &frontend.Options{MaxSessions: 10, Authenticate: func(h http.Handler) http.Handler { return h }})
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	bad := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":7}`
	var wg sync.WaitGroup
	results := make(chan wire, 60)
	for i := range 60 {
		body := init
		if i%3 == 0 {
			body = bad
		}
		wg.Go(func() { results <- send(t, http.MethodPost, url, body) })
	}
	wg.Wait()
	close(results)
	var sids []string
	for got := range results {
		switch sid := got.header.Get("Mcp-Session-Id"); {
		case got.status == http.StatusOK && sid != "" && !strings.Contains(got.body, `"error"`):
			sids = append(sids, sid)
		case got.status == http.StatusServiceUnavailable:
		case strings.Contains(got.body, `"error"`): // the bad ones
		default:
			t.Errorf("an initialize got %d %s", got.status, got.body)
		}
	}
	if len(sids) > 10 || len(sids) == 0 {
		t.Errorf("%d sessions opened, want 1 to 10 (the limit)", len(sids))
	}
	for _, sid := range sids {
		send(t, http.MethodDelete, url, "", "Mcp-Session-Id: "+sid)
	}
	for i := range 10 {
		if got := send(t, http.MethodPost, url, init); got.status != http.StatusOK {
			t.Fatalf("initialize %d after the flood ended: %d %s (a place was lost)", i, got.status, got.body)
		}
	}
	if st := gw.SessionStats(); st.Open != 10 {
		t.Errorf("%d sessions open, want 10", st.Open)
	}
}
