package frontend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/authz"
	"github.com/vmcp-dev/vmcp/internal/frontend"
	"github.com/vmcp-dev/vmcp/internal/identity"
)

// scriptedBackend is a streamable HTTP MCP server written by hand, not
// with the go-sdk: its tools/call answers are whatever the test sets, sent
// as a JSON body or as an event stream, byte for byte.
type scriptedBackend struct {
	mu     sync.Mutex
	answer string // the next tools/call's answer: a "result" or "error" member and its value
	stream bool   // send it as an event stream
}

func (s *scriptedBackend) set(answer string, stream bool) {
	s.mu.Lock()
	s.answer, s.stream = answer, stream
	s.mu.Unlock()
}

func (s *scriptedBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	if json.Unmarshal(body, &m) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if len(m.ID) == 0 {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	var member string
	stream := false
	switch m.Method {
	case "initialize":
		w.Header().Set("Mcp-Session-Id", "s1")
		member = `"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"scripted","version":"1"}}`
	case "tools/list":
		member = `"result":{"tools":[{"name":"any","inputSchema":{"type":"object"}},{"name":"secret","inputSchema":{"type":"object"}}]}`
	case "tools/call":
		s.mu.Lock()
		member, stream = s.answer, s.stream
		s.mu.Unlock()
	case "ping":
		member = `"result":{}`
	default:
		member = `"error":{"code":-32601,"message":"no"}`
	}
	msg := fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,%s}`, m.ID, member)
	if stream {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: message\r\nid: 1\r\ndata: %s\r\n\r\n", msg)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, msg)
}

// randomJSON writes a random JSON value: big integers, decimals, unicode
// and escapes, nesting, empty containers.
func randomJSON(r *rand.Rand, depth int) string {
	switch k := r.IntN(9); {
	case k == 0 || depth > 3:
		return []string{`123456789012345678901234567890`, `-9007199254740993`, `18446744073709551616`, `1.000000000000000000001`,
			`0.1`, `-0`, `1e300`, `42`, `3.25E-7`}[r.IntN(9)]
	case k == 1:
		return randomString(r)
	case k == 2:
		return []string{`true`, `false`, `null`}[r.IntN(3)]
	case k < 6:
		n := r.IntN(4)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = randomJSON(r, depth+1)
		}
		return "[" + strings.Join(parts, ",") + "]"
	default:
		n := r.IntN(4)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`"k%d%s":%s`, i, []string{"", "é", "_x"}[r.IntN(3)], randomJSON(r, depth+1))
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
}

func randomString(r *rand.Rand) string {
	return []string{`"ü\u00e9<&>"`, `"\ud83d\ude00 emoji"`, `"line\nbreak\t\"q\""`, `""`, `"\u2028"`, `"日本語"`}[r.IntN(6)]
}

// randomResult is a random tools/call result, with what a backend other
// than the go-sdk may send: unknown members, isError false, _meta of its
// own and reserved, content items with unknown members, structured content
// of any shape.
func randomResult(r *rand.Rand) string {
	var members []string
	if r.IntN(5) > 0 {
		var items []string
		for range r.IntN(3) {
			item := fmt.Sprintf(`{"type":"text","text":%s`, []string{`"plain"`, `"ü\u00e9 <b>"`, `"\ud83d\ude00"`}[r.IntN(3)])
			if r.IntN(2) == 0 {
				item += `,"annotations":{"priority":0.5}`
			}
			if r.IntN(3) == 0 {
				item += `,"x-unknown":` + randomJSON(r, 2)
			}
			if r.IntN(3) == 0 {
				item += `,"_meta":{"com.example/n":` + randomJSON(r, 3) + `}`
			}
			items = append(items, item+"}")
		}
		members = append(members, `"content":[`+strings.Join(items, ",")+`]`)
	}
	if r.IntN(2) == 0 {
		members = append(members, `"structuredContent":`+randomJSON(r, 0))
	}
	switch r.IntN(3) {
	case 0:
		members = append(members, `"isError":false`)
	case 1:
		members = append(members, `"isError":true`)
	}
	if r.IntN(2) == 0 {
		members = append(members, `"x-extension":`+randomJSON(r, 1))
	}
	if r.IntN(2) == 0 {
		members = append(members, `"_meta":{"com.example/own":`+randomJSON(r, 2)+`,"io.modelcontextprotocol/reserved":1}`)
	}
	r.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	return "{" + strings.Join(members, ",") + "}"
}

// client talks to the gateway over a real listener.
type client struct {
	t         *testing.T
	url, sid  string
	stateless bool
}

func (c *client) post(id, method, params string) (answer, string) {
	c.t.Helper()
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"method":%q,"params":%s}`, id, method, params)
	req, _ := http.NewRequest(http.MethodPost, c.url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("X-User", "alice")
	req.Header.Set("Authorization", "Bearer for-the-sdk") // byHeader authenticates; the SDK wants a token
	if c.stateless {
		req.Header.Set("Mcp-Protocol-Version", frontend.ModernVersion)
		req.Header.Set("Mcp-Method", method)
		var p struct {
			Name string `json:"name"`
		}
		if json.Unmarshal([]byte(params), &p) == nil && p.Name != "" {
			req.Header.Set("Mcp-Name", p.Name)
		}
	} else if c.sid != "" {
		req.Header.Set("Mcp-Session-Id", c.sid)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	rec := httptest.NewRecorder()
	for k, v := range resp.Header {
		rec.Header()[k] = v
	}
	rec.Code = resp.StatusCode
	_, _ = io.Copy(rec.Body, resp.Body)
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		c.sid = id
	}
	return readAnswer(c.t, rec)
}

// throughSDK is a result as the go-sdk's types carry it: decoded into
// mcp.CallToolResult and encoded again.
func throughSDK(t *testing.T, raw json.RawMessage) json.RawMessage {
	t.Helper()
	var r mcp.CallToolResult
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	out, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// decoded is a JSON value decoded without loss (numbers as json.Number).
func decoded(t *testing.T, raw []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return v
}

// faithful is what a client must get for a backend's result: the backend's
// result itself, without reserved _meta keys, content present, and, in
// the stateless revision, resultType and the server's identity.
func faithful(t *testing.T, result string, stateless bool) any {
	t.Helper()
	m := decoded(t, []byte(result)).(map[string]any)
	if meta, ok := m["_meta"].(map[string]any); ok {
		delete(meta, "io.modelcontextprotocol/reserved")
		if len(meta) == 0 {
			delete(m, "_meta")
		}
	}
	if m["content"] == nil {
		m["content"] = []any{}
	}
	if stateless {
		meta, _ := m["_meta"].(map[string]any)
		if meta == nil {
			meta = map[string]any{}
		}
		meta["io.modelcontextprotocol/serverInfo"] = map[string]any{"name": "gw", "version": "9"}
		m["_meta"] = meta
		m["resultType"] = "complete"
	}
	return m
}

// TestFastPathDifferential sends the same tools/call twice, in both
// revisions, through a gateway on a real listener with Cedar policies, to
// a backend that is not the go-sdk (scriptedBackend): as is (the fast
// path) and with a progress token (the SDK path). The results are random:
// big integers, decimals, unicode, unknown members, isError false, nested
// values, reserved _meta keys; and backend errors, and a tool the policies
// forbid.
//
// The fast path must relay the backend's result faithfully (faithful). The
// SDK path carries the result in the go-sdk's types: its answer must be
// the fast path's answer after that round trip (throughSDK), nothing
// else; where the round trip changes nothing, the two answers are the
// same. docs/design.md ("The fast path") says which members differ.
func TestFastPathDifferential(t *testing.T) {
	be := &scriptedBackend{answer: `"result":{"content":[]}`}
	beSrv := httptest.NewServer(be)
	t.Cleanup(beSrv.Close)
	_, url := secretGateway(t, beSrv.URL)
	seed := uint64(rand.Uint32())
	if s := os.Getenv("VMCP_DIFF_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 12))
	same, lossy := 0, 0
	for _, stateless := range []bool{false, true} {
		c := &client{t: t, url: url, stateless: stateless}
		if !stateless {
			if a, _ := c.post("0", "initialize", `{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}`); a.Error != nil || c.sid == "" {
				t.Fatalf("initialize: %+v", a)
			}
		}
		metaFor := func(extra string) string {
			m := `"com.example/trace":"t1"`
			if stateless {
				m += `,"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}`
			}
			if extra != "" {
				m += "," + extra
			}
			return m
		}
		for i := range 150 {
			tool := "be_any"
			if i%25 == 24 {
				tool = "be_secret"
			}
			var result string
			switch {
			case i%10 == 9:
				be.set(fmt.Sprintf(`"error":{"code":%d,"message":%s,"data":%s}`, -32000-r.IntN(8), randomString(r), randomJSON(r, 0)), r.IntN(2) == 0)
			default:
				result = randomResult(r)
				be.set(`"result":`+result, r.IntN(2) == 0)
			}
			args := randomJSON(r, 1)
			if !strings.HasPrefix(args, "{") {
				args = `{"v":` + args + `}`
			}
			params := func(extra string) string {
				return fmt.Sprintf(`{"name":%q,"arguments":%s,"_meta":{%s}}`, tool, args, metaFor(extra))
			}
			fast, fastCT := c.post(fmt.Sprint(i+1), "tools/call", params(""))
			slow, slowCT := c.post(fmt.Sprintf(`"s%d"`, i+1), "tools/call", params(`"progressToken":"p"`))
			what := fmt.Sprintf("stateless %v, call %d to %s, backend answer %s", stateless, i, tool, be.answer)
			if fastCT != "application/json" || !strings.HasPrefix(slowCT, "text/event-stream") && slow.status == http.StatusOK {
				t.Fatalf("%s: answered as %q and %q; want the fast path's JSON and the SDK's event stream", what, fastCT, slowCT)
			}
			if fast.status != slow.status {
				t.Errorf("%s: HTTP %d on the fast path, %d on the SDK's", what, fast.status, slow.status)
			}
			if code := errorCode(be.answer); tool != "be_secret" && (code == -32003 || code == -32004) {
				// The go-sdk's client reads these codes as its connection
				// closing (jsonrpc2.ErrClientClosing, ErrServerClosing):
				// the SDK path answers an isError result saying so, the
				// fast path relays the backend's error (docs/design.md).
				if fast.Error.Code != code || slow.Error != nil || !bytes.Contains(slow.Result, []byte("connection closed")) {
					t.Errorf("%s: fast path %+v, SDK path %s %+v", what, fast.Error, slow.Result, slow.Error)
				}
				continue
			}
			if fast.Error != nil || slow.Error != nil {
				fe, _ := json.Marshal(fast.Error)
				se, _ := json.Marshal(slow.Error)
				if diff := cmp.Diff(decoded(t, fe), decoded(t, se)); diff != "" {
					t.Errorf("%s: errors differ (-fast +SDK):\n%s\nSDK result %s", what, diff, slow.Result)
				}
				if tool == "be_secret" && (fast.Error == nil || fast.Error.Code != -32602) {
					t.Errorf("%s: a forbidden tool answered %+v", what, fast.Error)
				}
				continue
			}
			if tool == "be_secret" {
				t.Fatalf("%s: a forbidden tool was called", what)
			}
			if diff := cmp.Diff(faithful(t, result, stateless), decoded(t, fast.Result)); diff != "" {
				t.Errorf("%s: the fast path did not relay the result faithfully (-want +got):\n%s", what, diff)
			}
			if diff := cmp.Diff(decoded(t, throughSDK(t, fast.Result)), decoded(t, slow.Result)); diff != "" {
				t.Errorf("%s: the SDK path's answer is not the fast path's through the go-sdk's types (-want +got):\n%s", what, diff)
			}
			if cmp.Equal(decoded(t, throughSDK(t, fast.Result)), decoded(t, fast.Result)) {
				same++
			} else {
				lossy++
			}
		}
	}
	t.Logf("results the go-sdk's types carry unchanged: %d; changed by them: %d", same, lossy)
	if same == 0 || lossy == 0 {
		t.Errorf("the random results should include both kinds: %d unchanged, %d changed", same, lossy)
	}
}

// errorCode is the code of a scripted error answer, or 0.
func errorCode(answer string) int64 {
	var m struct {
		Error struct {
			Code int64 `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal([]byte("{"+answer+"}"), &m)
	return m.Error.Code
}

// secretGateway serves the backend at url through a gateway with
// secretPolicies, users named by X-User, on a real loopback listener.
func secretGateway(t *testing.T, url string) (*frontend.Gateway, string) {
	t.Helper()
	az, err := authz.New(&authz.Options{Policies: authz.Policies{Inline: secretPolicies}})
	if err != nil {
		t.Fatal(err)
	}
	gw := fastGateway(t, url, &frontend.Options{Name: "gw", Version: "9", Authorizer: az, Authenticate: byHeader,
		Claims: func(context.Context, *identity.Identity) (authz.Claims, error) { return authz.Claims{}, nil }})
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return gw, srv.URL + "/mcp"
}
