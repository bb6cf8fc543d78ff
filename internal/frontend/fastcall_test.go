package frontend_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/backend"
	"github.com/vmcp-dev/vmcp/internal/frontend"
	"github.com/vmcp-dev/vmcp/internal/identity"
)

// fastBackend is a go-sdk server whose tools exercise what a raw call
// must handle: plain results, error answers, _meta and missing content,
// and messages the backend sends during the call (a ping, a log message, a
// sampling request the caller cannot take).
func fastBackend(t *testing.T, jsonResponse bool, blocked chan<- error) string {
	s := mcp.NewServer(&mcp.Implementation{Name: "fast"}, &mcp.ServerOptions{Capabilities: &mcp.ServerCapabilities{Logging: &mcp.LoggingCapabilities{}}})
	obj := json.RawMessage(`{"type":"object"}`)
	text := func(s string) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
	}
	s.AddTool(&mcp.Tool{Name: "echo", InputSchema: obj}, func(_ context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return text("args " + string(r.Params.Arguments) + " meta " + fmt.Sprint(r.Params.Meta)), nil
	})
	s.AddTool(&mcp.Tool{Name: "fail", InputSchema: obj}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return nil, &jsonrpc.Error{Code: 4242, Message: "the backend says no", Data: json.RawMessage(`{"why":"test"}`)}
	})
	s.AddTool(&mcp.Tool{Name: "meta", InputSchema: obj}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Meta: mcp.Meta{"com.example/kept": 1, "io.modelcontextprotocol/dropped": 2},
			StructuredContent: map[string]any{"n": 1}}, nil
	})
	s.AddTool(&mcp.Tool{Name: "chatty", InputSchema: obj}, func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		if err := r.Session.Ping(ctx, nil); err != nil {
			return nil, fmt.Errorf("ping: %w", err)
		}
		_ = r.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: "working"})
		_, err := r.Session.CreateMessage(ctx, &mcp.CreateMessageParams{Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "hi"}}}})
		return text(fmt.Sprintf("pinged; sampling: %v", err)), nil
	})
	s.AddTool(&mcp.Tool{Name: "block", InputSchema: obj}, func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		blocked <- nil
		select {
		case <-ctx.Done():
			blocked <- ctx.Err()
		case <-time.After(10 * time.Second):
			blocked <- errors.New("not cancelled")
		}
		return text("late"), nil
	})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{JSONResponse: jsonResponse}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// byHeader authenticates the caller named by X-User (anonymous without).
func byHeader(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := r.Header.Get("X-User"); u != "" {
			r = r.WithContext(identity.With(r.Context(), &identity.Identity{Issuer: "test", Subject: u}))
		}
		next.ServeHTTP(w, r)
	})
}

func fastGateway(t *testing.T, url string, opts *frontend.Options) *frontend.Gateway {
	t.Helper()
	var gw *frontend.Gateway
	set := backend.NewSet([]backend.Spec{{Name: "be", Transport: backend.StreamableHTTP, URL: url, CallTimeout: time.Minute}},
		&backend.Options{OnChange: func() { gw.BackendsChanged() },
			OnResourceUpdated: func(ctx context.Context, name string, p *mcp.ResourceUpdatedNotificationParams) {
				gw.ResourceUpdated(ctx, name, p)
			}})
	gw = frontend.New(set, opts)
	ctx, cancel := context.WithCancel(context.Background())
	set.Start()
	ran := make(chan struct{})
	go func() { gw.Run(ctx); close(ran) }()
	t.Cleanup(func() { cancel(); <-ran; gw.CloseSessions(); set.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for !gw.Ready() || len(gw.Catalog().Tools) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("gateway not ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return gw
}

// rpc sends requests on a session, or in the stateless revision.
type rpc struct {
	h         http.Handler
	sid       string
	user      string
	stateless bool
}

// call sends one request with the given id (a number or a JSON string),
// with the headers its revision needs.
func (c *rpc) call(id any, method, params string) *httptest.ResponseRecorder {
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%v,"method":%q,"params":%s}`, id, method, params)
	if !c.stateless {
		return c.send(body)
	}
	var m struct {
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	_ = json.Unmarshal([]byte(body), &m)
	h := http.Header{"Mcp-Protocol-Version": {"2026-07-28"}, "Mcp-Method": {method}}
	if m.Params.Name != "" {
		h.Set("Mcp-Name", m.Params.Name)
	}
	return c.sendWith(body, h)
}

func (c *rpc) send(body string) *httptest.ResponseRecorder { return c.sendWith(body, nil) }

func (c *rpc) sendWith(body string, h http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
	for k, v := range h {
		r.Header[k] = v
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	if c.user != "" {
		r.Header.Set("X-User", c.user)
		r.Header.Set("Authorization", "Bearer for-the-sdk") // byHeader authenticates; the SDK wants a token
	}
	if c.sid != "" {
		r.Header.Set("Mcp-Session-Id", c.sid)
		r.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	}
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	return w
}

func openRPC(t *testing.T, h http.Handler, user, caps string) *rpc {
	t.Helper()
	c := &rpc{h: h, user: user}
	w := c.send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":` + caps + `,"clientInfo":{"name":"t","version":"1"}}}`)
	if c.sid = w.Header().Get("Mcp-Session-Id"); w.Code != http.StatusOK || c.sid == "" {
		t.Fatalf("initialize: %d %s", w.Code, w.Body)
	}
	if w := c.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`); w.Code != http.StatusAccepted {
		t.Fatalf("initialized: %d %s", w.Code, w.Body)
	}
	return c
}

// answer is a JSON-RPC response read from a JSON body or an event stream.
type answer struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *jsonrpc.Error  `json:"error"`
	status int
}

func readAnswer(t *testing.T, w *httptest.ResponseRecorder) (answer, string) {
	t.Helper()
	body := w.Body.Bytes()
	ct := w.Header().Get("Content-Type")
	if strings.HasPrefix(ct, "text/event-stream") {
		var last []byte
		for line := range bytes.SplitSeq(body, []byte("\n")) {
			if d, ok := bytes.CutPrefix(line, []byte("data: ")); ok && bytes.Contains(d, []byte(`"id"`)) {
				last = d
			}
		}
		body = last
	}
	a := answer{status: w.Code}
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("answer (%d, %s): %v: %s", w.Code, ct, err, w.Body)
	}
	return a, ct
}

// TestFastPathSDKBackend sends each request twice, in both protocol
// revisions: as is (the fast path: a JSON answer) and with a progress token
// (the SDK path: an event stream), to a go-sdk backend: tools/list pages,
// a backend that pings, logs and asks for sampling during a call, a
// backend error, an unknown tool. Both must answer the same.
// TestFastPathDifferential compares the two on results a go-sdk backend
// would never send.
func TestFastPathSDKBackend(t *testing.T) {
	for _, jsonBackend := range []bool{false, true} {
		for _, stateless := range []bool{false, true} {
			t.Run(fmt.Sprintf("backend JSON answers %v, stateless %v", jsonBackend, stateless), func(t *testing.T) {
				gw := fastGateway(t, fastBackend(t, jsonBackend, nil), &frontend.Options{PageSize: 2, Name: "gw", Version: "9"})
				c := &rpc{h: gw, stateless: true}
				if !stateless {
					c = openRPC(t, gw, "", "{}")
				}
				second := encodeCursorLike("be_chatty")
				for i, req := range []struct{ method, params string }{
					{"tools/call", `{"name":"be_echo","arguments":{"a":[1,2,{"b":"ü\u00e9<&>"}]}}`},
					{"tools/call", `{"name":"be_echo","arguments":{},"_meta":{"com.example/x":"y","io.modelcontextprotocol/private":1}}`},
					{"tools/call", `{"name":"be_echo"}`},
					{"tools/call", `{"name":"be_fail","arguments":{}}`},
					{"tools/call", `{"name":"be_meta","arguments":{}}`},
					{"tools/call", `{"name":"be_chatty","arguments":{}}`},
					{"tools/call", `{"name":"be_nosuchtool","arguments":{}}`},
					{"tools/list", `{}`},
					{"tools/list", `{"cursor":"` + second + `"}`},
					{"tools/list", `{"cursor":"not base64!"}`},
				} {
					params := req.params
					if stateless {
						params = withMeta(params, `"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}`)
					}
					fast, fastCT := readAnswer(t, c.call(i, req.method, params))
					slow, slowCT := readAnswer(t, c.call(fmt.Sprintf(`"s%d"`, i), req.method, withMeta(params, `"progressToken":"p"`)))
					what := req.method + " " + params
					// The SDK answers with an event stream, except errors the
					// stateless revision gives an HTTP status (SEP-2575).
					sdkJSON := stateless && slow.status != http.StatusOK
					if fastCT != "application/json" || strings.HasPrefix(slowCT, "text/event-stream") == sdkJSON {
						t.Fatalf("%s: answered as %q and %q; want the fast path's JSON and the SDK's event stream", what, fastCT, slowCT)
					}
					if fast.status != slow.status {
						t.Errorf("%s: HTTP %d on the fast path, %d on the SDK's", what, fast.status, slow.status)
					}
					if string(fast.ID) != fmt.Sprint(i) || string(slow.ID) != fmt.Sprintf(`"s%d"`, i) {
						t.Errorf("%s: ids %s and %s", what, fast.ID, slow.ID)
					}
					if got, want := canonical(t, fast), canonical(t, slow); got != want {
						t.Errorf("%s:\nfast path: %s\nSDK path:  %s", what, got, want)
					}
				}
			})
		}
	}
}

// withMeta adds the members extra to params' _meta.
func withMeta(params, extra string) string {
	if strings.Contains(params, `"_meta":{`) {
		return strings.Replace(params, `"_meta":{`, `"_meta":{`+extra+",", 1)
	}
	if params == "{}" {
		return `{"_meta":{` + extra + `}}`
	}
	return strings.Replace(params, "{", `{"_meta":{`+extra+"},", 1)
}

// encodeCursorLike is the cursor of the page after name (base64url of the
// last name on a page, as the gateway makes them).
func encodeCursorLike(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }

// canonical renders an answer with sorted keys and without the progress
// token the SDK path's echo saw.
func canonical(t *testing.T, a answer) string {
	t.Helper()
	if a.Error != nil {
		b, _ := json.Marshal(a.Error)
		return "error " + string(b)
	}
	var v any
	if err := json.Unmarshal(a.Result, &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	s := progressTok.ReplaceAllString(string(b), "")
	// Both paths refuse the sampling request; the SDK path's message comes
	// from its client session, the fast path's names the reason.
	return samplingErr.ReplaceAllString(s, `sampling: refused","type"`)
}

var (
	progressTok = regexp.MustCompile(` ?progressToken:vmcp-\d+`)
	samplingErr = regexp.MustCompile(`sampling: calling \\"sampling/createMessage\\": (method not found|vmcp: the calling client did not declare the sampling capability)[^,]*","type"`)
)

// TestFastPathKeepsSessionRules: the fast path serves only what the SDK
// would: the session's own user, known sessions, sessions that take nothing
// back during calls.
func TestFastPathKeepsSessionRules(t *testing.T) {
	gw := fastGateway(t, fastBackend(t, false, nil), &frontend.Options{Authenticate: byHeader})
	call := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"be_echo","arguments":{}}}`

	alice := openRPC(t, gw, "alice", "{}")
	if w := alice.send(call); w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("alice's call: %d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	mallory := &rpc{h: gw, sid: alice.sid, user: "mallory"}
	if w := mallory.send(call); w.Code != http.StatusForbidden {
		t.Errorf("a call on alice's session by another user: %d %s; want 403", w.Code, w.Body)
	}
	anon := &rpc{h: gw, sid: alice.sid}
	if w := anon.send(call); w.Code != http.StatusForbidden {
		t.Errorf("an anonymous call on alice's session: %d %s; want 403", w.Code, w.Body)
	}
	unknown := &rpc{h: gw, sid: "no-such-session", user: "alice"}
	if w := unknown.send(call); w.Code != http.StatusNotFound {
		t.Errorf("a call on an unknown session: %d %s; want 404", w.Code, w.Body)
	}
	sampler := openRPC(t, gw, "bob", `{"sampling":{}}`)
	if w := sampler.send(call); !strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") {
		t.Errorf("a session that declared sampling was served by the fast path (%q): its calls need the SDK's relay", w.Header().Get("Content-Type"))
	}
	if w := alice.send(`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"be_nope","arguments":{}}}`); !strings.Contains(w.Body.String(), `unknown tool`) {
		t.Errorf("an unknown tool: %s", w.Body)
	}
	modern := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"be_echo","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`
	if w := alice.send(modern); w.Code == http.StatusOK && strings.Contains(w.Body.String(), `"result"`) {
		t.Errorf("a 2026-07-28 request on a 2025-11-25 session was served: %d %s", w.Code, w.Body)
	}

	r := httptest.NewRequest(http.MethodDelete, "/mcp", nil)
	r.Header.Set("Mcp-Session-Id", alice.sid)
	r.Header.Set("X-User", "alice")
	r.Header.Set("Authorization", "Bearer for-the-sdk")
	w := httptest.NewRecorder()
	gw.ServeHTTP(w, r)
	if w.Code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", w.Code, w.Body)
	}
	if w := alice.send(call); w.Code != http.StatusNotFound {
		t.Errorf("a call after DELETE: %d %s; want 404", w.Code, w.Body)
	}
}

// TestFastPathCancel: a client's notifications/cancelled cancels a call on
// the fast path at the backend.
func TestFastPathCancel(t *testing.T) {
	blocked := make(chan error, 2)
	gw := fastGateway(t, fastBackend(t, false, blocked), nil)
	c := openRPC(t, gw, "", "{}")
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		done <- c.send(`{"jsonrpc":"2.0","id":"slow","method":"tools/call","params":{"name":"be_block","arguments":{}}}`)
	}()
	<-blocked
	if w := c.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"slow","reason":"test"}}`); w.Code != http.StatusAccepted {
		t.Fatalf("cancel: %d %s", w.Code, w.Body)
	}
	select {
	case err := <-blocked:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the backend's handler ended with %v; want it cancelled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the backend never saw the cancellation")
	}
	w := <-done
	if a, _ := readAnswer(t, w); !strings.Contains(string(a.Result), `"isError":true`) {
		t.Errorf("the cancelled call answered %s", w.Body)
	}
}

// TestIdleSessionsExpire: the gateway's own session table closes sessions
// idle for SessionIdleTimeout and keeps used ones.
func TestIdleSessionsExpire(t *testing.T) {
	gw := fastGateway(t, fastBackend(t, false, nil), &frontend.Options{SessionIdleTimeout: 300 * time.Millisecond})
	idle, busy := openRPC(t, gw, "", "{}"), openRPC(t, gw, "", "{}")
	ping := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"be_echo","arguments":{}}}`
	for range 10 {
		time.Sleep(60 * time.Millisecond)
		if w := busy.send(call); w.Code != http.StatusOK {
			t.Fatalf("a session in use was closed: %d %s", w.Code, w.Body)
		}
	}
	if w := idle.send(ping); w.Code != http.StatusNotFound {
		t.Errorf("a session idle for 600ms (timeout 300ms) answered %d %s; want 404", w.Code, w.Body)
	}
	if w := busy.send(ping); w.Code != http.StatusOK {
		t.Errorf("the busy session: %d %s", w.Code, w.Body)
	}
}

// TestFastPathStatelessChecks: stateless requests the SDK refuses are not
// served by the fast path (the SDK answers them), and those that want log
// messages go to the SDK, which relays them.
func TestFastPathStatelessChecks(t *testing.T) {
	gw := fastGateway(t, fastBackend(t, false, nil), nil)
	c := &rpc{h: gw, stateless: true}
	meta := `"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}`
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"be_echo","arguments":{},"_meta":{%s}}}`
	headers := func(name string) http.Header {
		return http.Header{"Mcp-Protocol-Version": {"2026-07-28"}, "Mcp-Method": {"tools/call"}, "Mcp-Name": {name}}
	}
	for _, tc := range []struct {
		what string
		body string
		h    http.Header
	}{
		{"Mcp-Name of another tool", fmt.Sprintf(call, meta), headers("be_fail")},
		{"no Mcp-Method", fmt.Sprintf(call, meta), http.Header{"Mcp-Protocol-Version": {"2026-07-28"}, "Mcp-Name": {"be_echo"}}},
		{"_meta version unlike the header", fmt.Sprintf(call, `"io.modelcontextprotocol/protocolVersion":"2026-08-01","io.modelcontextprotocol/clientCapabilities":{}`), headers("be_echo")},
		{"no client capabilities", fmt.Sprintf(call, `"io.modelcontextprotocol/protocolVersion":"2026-07-28"`), headers("be_echo")},
		{"client capabilities not an object", fmt.Sprintf(call, `"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":7`), headers("be_echo")},
	} {
		w := c.sendWith(tc.body, tc.h)
		if w.Code == http.StatusOK && w.Header().Get("Content-Type") == "application/json" && strings.Contains(w.Body.String(), `"result"`) {
			t.Errorf("%s: served: %s", tc.what, w.Body)
		}
	}
	w := c.sendWith(fmt.Sprintf(call, meta+`,"io.modelcontextprotocol/logLevel":"debug"`), headers("be_echo"))
	if !strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") || !strings.Contains(w.Body.String(), `"result"`) {
		t.Errorf("a call asking for log messages: %d %q %s; want the SDK's event stream", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
}
