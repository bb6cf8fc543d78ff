package frontend

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// decodeObject decodes a JSON object into a map of decoded values (numbers
// as json.Number, so that none loses precision), or nil if raw is not one.
func decodeObject(raw []byte) map[string]any {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if d.Decode(&m) != nil || d.More() {
		return nil
	}
	return m
}

// FuzzClientResult compares clientResult with its definition, read through
// maps: a backend's result object as the client gets it is the same
// object, without reserved _meta keys (and without a _meta left empty), and
// with content present (an empty list if the backend sent none or null).
// Anything but an object is an error.
func FuzzClientResult(f *testing.F) {
	for _, s := range []string{
		`{"content":[{"type":"text","text":"x"}]}`, `{"content":[],"_meta":{"io.modelcontextprotocol/x":1,"com.example/y":2}}`,
		`{"_meta":{"mcp.dev/x":1}}`, `{"content":null,"isError":false}`, `{"structuredContent":{"n":123456789012345678901234567890}}`,
		`{"_meta":null,"content":[]}`, `{"_meta":[1],"content":[]}`, `[]`, `"x"`, ` {"content":[]} `, `{"_met\u0061":{"io.modelcontextprotocol/x":1},"content":[]}`,
		`{"content":[],"content":null}`, `{"_meta":{"a/b":1},"_meta":{"io.modelcontextprotocol/x":1},"content":[]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if !json.Valid([]byte(raw)) {
			return // a backend's result is a parsed JSON value
		}
		want := decodeObject([]byte(raw))
		got, err := clientResult(json.RawMessage(raw))
		if want == nil {
			if err == nil {
				t.Fatalf("%s: not an object, yet passed as %s", raw, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if meta, ok := want["_meta"].(map[string]any); ok {
			own, _ := withoutReserved(meta)
			if len(own) == 0 && len(own) != len(meta) {
				delete(want, "_meta")
			} else {
				want["_meta"] = own
			}
		}
		if c, ok := want["content"]; !ok || c == nil {
			want["content"] = []any{}
		}
		if diff := cmp.Diff(want, decodeObject(got)); diff != "" {
			t.Fatalf("%s: gave %s (-want +got):\n%s", raw, got, diff)
		}
	})
}

// FuzzStatelessResult compares the stateless revision's rewriting of a
// result object with its definition: the same object, with resultType
// ("complete" unless the result has one) and the server's identity in
// _meta, next to what _meta held.
func FuzzStatelessResult(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"content":[]}`, `{ }`, `{"tools":[{"name":"a"}],"nextCursor":"x"}`, `{"_meta":{"a/b":1},"content":[]}`,
		`{"resultType":"complete","content":[]}`, `{"_meta":null}`, `{"_met\u0061":{"k":1}}`, `{"result\u0054ype":"x"}`,
		`{"n":123456789012345678901234567890}`, `{"_meta":{"io.modelcontextprotocol/serverInfo":1}}`,
	} {
		f.Add(s)
	}
	a := &fastAnswer{serverInfo: json.RawMessage(`{"name":"gw","version":"9"}`)}
	f.Fuzz(func(t *testing.T, raw string) {
		want := decodeObject([]byte(raw))
		if want == nil || !json.Valid([]byte(raw)) {
			return // results are JSON objects (clientResult, fastList)
		}
		got := a.stateless(json.RawMessage(raw))
		meta, _ := want["_meta"].(map[string]any)
		meta = maps.Clone(meta)
		if meta == nil {
			meta = map[string]any{}
		}
		meta[serverInfoKey] = map[string]any{"name": "gw", "version": "9"}
		want["_meta"] = meta
		if _, ok := want["resultType"]; !ok {
			want["resultType"] = "complete"
		}
		if diff := cmp.Diff(want, decodeObject(got)); diff != "" {
			t.Fatalf("%s: gave %s (-want +got):\n%s", raw, got, diff)
		}
	})
}

// TestFastRoute: which requests may take the fast path.
func TestFastRoute(t *testing.T) {
	t.Parallel()
	const (
		call      = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{}%s}}`
		list      = `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{%s}}`
		modernMet = `"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}`
	)
	session := fastFacts{sessionVersion: "2025-11-25"}
	modern := fastFacts{modern: true}
	sessionHeader := http.Header{"Mcp-Protocol-Version": {"2025-11-25"}}
	modernCall := http.Header{"Mcp-Protocol-Version": {ModernVersion}, "Mcp-Method": {"tools/call"}, "Mcp-Name": {"t"}}
	modernList := http.Header{"Mcp-Protocol-Version": {ModernVersion}, "Mcp-Method": {"tools/list"}}
	meta := func(format, members string) string {
		if members == "" {
			return sprintf(format, "")
		}
		if format == list {
			return sprintf(format, `"_meta":{`+members+`}`)
		}
		return sprintf(format, `,"_meta":{`+members+`}`)
	}
	with := func(f fastFacts, edit func(*fastFacts)) fastFacts { edit(&f); return f }
	for _, tc := range []struct {
		name   string
		body   string
		header http.Header
		facts  fastFacts
		want   bool
	}{
		{"session call", meta(call, ""), sessionHeader, session, true},
		{"session list", meta(list, ""), sessionHeader, session, true},
		{"session call with own _meta", meta(call, `"com.example/k":1`), sessionHeader, session, true},
		{"_meta null", sprintf(call, `,"_meta":null`), sessionHeader, session, true},
		{"_meta not an object", sprintf(call, `,"_meta":[1]`), sessionHeader, session, false},
		{"progress token", meta(call, `"progressToken":"p"`), sessionHeader, session, false},
		{"other method", `{"jsonrpc":"2.0","id":1,"method":"prompts/list"}`, sessionHeader, session, false},
		{"notification", `{"jsonrpc":"2.0","method":"tools/list"}`, sessionHeader, session, false},
		{"call without a name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}`, sessionHeader, session, false},
		{"params that do not fit", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}`, sessionHeader, session, false},
		{"not JSON-RPC 2.0", `{"jsonrpc":"1.0","id":1,"method":"tools/list"}`, sessionHeader, session, false},
		{"header not the session's version", meta(call, ""), http.Header{"Mcp-Protocol-Version": {"2025-06-18"}}, session, false},
		{"no header", meta(call, ""), http.Header{}, session, false},
		{"session not initialized", meta(call, ""), http.Header{}, fastFacts{}, false},
		{"stateless _meta on a session", meta(call, modernMet), sessionHeader, session, false},
		{"session that relays: call", meta(call, ""), sessionHeader, with(session, func(f *fastFacts) { f.relays = true }), false},
		{"session that relays: list", meta(list, ""), sessionHeader, with(session, func(f *fastFacts) { f.relays = true }), true},
		{"tool search's own tool", meta(call, ""), sessionHeader, with(session, func(f *fastFacts) { f.searchMode, f.searchTool = true, true }), false},
		{"another tool in search mode", meta(call, ""), sessionHeader, with(session, func(f *fastFacts) { f.searchMode = true }), true},
		{"list in search mode", meta(list, ""), sessionHeader, with(session, func(f *fastFacts) { f.searchMode = true }), false},
		{"stateless call", meta(call, modernMet), modernCall, modern, true},
		{"stateless list", meta(list, modernMet), modernList, modern, true},
		{"stateless with client info", meta(call, modernMet+`,"io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"}`), modernCall, modern, true},
		{"stateless, bad client info", meta(call, modernMet+`,"io.modelcontextprotocol/clientInfo":7`), modernCall, modern, false},
		{"stateless with a log level", meta(call, modernMet+`,"io.modelcontextprotocol/logLevel":"debug"`), modernCall, modern, false},
		{"stateless with a progress token", meta(call, modernMet+`,"progressToken":1`), modernCall, modern, false},
		{"stateless without _meta", meta(call, ""), modernCall, modern, false},
		{"stateless without capabilities", meta(call, `"io.modelcontextprotocol/protocolVersion":"2026-07-28"`), modernCall, modern, false},
		{"stateless, capabilities not an object", meta(call, `"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":[]`), modernCall, modern, false},
		{"stateless, _meta version not the header's", meta(call, `"io.modelcontextprotocol/protocolVersion":"2025-11-25","io.modelcontextprotocol/clientCapabilities":{}`), modernCall, modern, false},
		{"stateless, wrong Mcp-Method", meta(call, modernMet), modernList, modern, false},
		{"stateless, wrong Mcp-Name", meta(call, modernMet), http.Header{"Mcp-Protocol-Version": {ModernVersion}, "Mcp-Method": {"tools/call"}, "Mcp-Name": {"u"}}, modern, false},
		{"stateless, session version header", meta(call, modernMet), with2(modernCall, "Mcp-Protocol-Version", "2025-11-25"), modern, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &request{body: []byte(tc.body)}
			req.parse()
			if _, got := fastRoute(req, tc.header, tc.facts); got != tc.want {
				t.Errorf("%s with %v, %+v: fast %v, want %v", tc.body, tc.header, tc.facts, got, tc.want)
			}
		})
	}
}

func sprintf(format, arg string) string {
	return string(bytes.Replace([]byte(format), []byte("%s"), []byte(arg), 1))
}

func with2(h http.Header, k, v string) http.Header {
	h = h.Clone()
	h.Set(k, v)
	return h
}
