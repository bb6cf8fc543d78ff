package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// referenceRequest reads a message as a plain decoder of maps does: exact
// member names, the last of duplicates.
type referenceRequest struct {
	id, method json.RawMessage
	full       bool
	params     map[string]json.RawMessage
}

func readReference(data []byte) (ref referenceRequest, ok bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return ref, false // not an object: no id, no method
	}
	ref.id, ref.method = top["id"], top["method"]
	ref.full = string(top["jsonrpc"]) == `"2.0"` || unquote(top["jsonrpc"]) == "2.0"
	if p, ok := top["params"]; ok && !IsNull(p) {
		if json.Unmarshal(p, &ref.params) != nil {
			ref.full = false // params that are not an object
		}
	}
	for _, k := range []string{"name", "cursor"} {
		if v, ok := ref.params[k]; ok && !IsNull(v) && unquote(v) == "\x00bad" {
			ref.full = false // not a string
		}
	}
	if v, ok := top["method"]; ok && !IsNull(v) && unquote(v) == "\x00bad" {
		ref.full = false
	}
	return ref, true
}

// unquote is the string raw holds, or "\x00bad" if it is not a string.
func unquote(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "\x00bad"
	}
	return s
}

func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return "invalid:" + string(raw)
	}
	return b.String()
}

// FuzzParseRequest compares ParseRequest, the fast path's decoder of a
// client's message, with a reading through maps: the same id (null
// included: the edge refuses a null id, and must see every one), the same
// method, and, for a message read in full, the same params.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"x":[1,2]},"_meta":{"k":1}}}`,
		`{"jsonrpc":"2.0","id":"x","method":"tools/list","params":{"cursor":"c"}}`,
		`{"jsonrpc":"2.0","id":null,"method":"tools/list"}`, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}`,
		`{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}`, `{"jsonrpc":"1.0","id":1,"method":"x"}`,
		`{"jsonrpc":"2.0","id":1,"id":null,"method":"x"}`, `{"jsonrpc":"2.0","ID":null,"method":"x"}`,
		`{"jsonrpc":"2.0","id":true,"method":"x"}`, `{"jsonrpc":"2.0","id":1.5e3,"method":"x","params":{"name":7}}`,
		`{"jsonrpc":"2.0","\u0069d":null,"method":"x"}`, `{"jsonrpc":"2.0","id": null ,"method":"x"}`, `[]`, `"s"`, `null`, `{}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		if !json.Valid([]byte(data)) {
			return // the edge refuses it before
		}
		var m Request
		id, method, full := ParseRequest([]byte(data), &m)
		ref, object := readReference([]byte(data))
		if !object {
			if len(id) != 0 || method != "" || full {
				t.Fatalf("%s: not an object, yet id %s method %q full %v", data, id, method, full)
			}
			return
		}
		if IsNull(ref.id) != IsNull(id) {
			t.Fatalf("%s: id %s, the reference reads %s", data, id, ref.id)
		}
		if (ValidID(ref.id) && compact(ref.id) != compact(id)) || (!ValidID(ref.id) && !IsNull(ref.id) && id != nil) {
			t.Fatalf("%s: id %s, the reference reads %s", data, id, ref.id)
		}
		if len(ref.method) > 0 && ref.method[0] == '"' && method != unquote(ref.method) {
			t.Fatalf("%s: method %q, the reference reads %s", data, method, ref.method)
		}
		if full != ref.full {
			t.Fatalf("%s: read in full %v, the reference says %v", data, full, ref.full)
		}
		if !full {
			return
		}
		for k, got := range map[string]json.RawMessage{"arguments": m.Params.Arguments, "_meta": m.Params.Meta, "requestId": m.Params.RequestID} {
			if want, ok := ref.params[k]; ok && !IsNull(want) && compact(want) != compact(got) {
				t.Fatalf("%s: params.%s %s, the reference reads %s", data, k, got, want)
			}
		}
		if v, ok := ref.params["name"]; ok && !IsNull(v) && unquote(v) != m.Params.Name {
			t.Fatalf("%s: name %q, the reference reads %s", data, m.Params.Name, v)
		}
	})
}

// FuzzParse: what Parse reads of a message that the go-sdk decodes is what
// the go-sdk reads.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":"vmcp-1","result":{"content":[]}}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"x","data":{"a":1}}}`,
		`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}`, `{"jsonrpc":"2.0","id":7,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":null,"method":"x"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		msg, err := jsonrpc.DecodeMessage([]byte(data))
		if err != nil {
			return
		}
		var m Message
		if err := Parse([]byte(data), &m); err != nil {
			t.Fatalf("%s: the go-sdk decodes it, Parse fails: %v", data, err)
		}
		switch msg := msg.(type) {
		case *jsonrpc.Request:
			if m.Method != msg.Method || m.IsRequest() != msg.ID.IsValid() || compact(m.Params) != compact(msg.Params) && len(msg.Params) > 0 {
				t.Fatalf("%s: Parse reads method %q params %s request %v; the go-sdk %q %s %v", data, m.Method, m.Params, m.IsRequest(), msg.Method, msg.Params, msg.ID.IsValid())
			}
		case *jsonrpc.Response:
			if m.Method != "" || (msg.Error == nil) != (m.Error == nil) || msg.Error == nil && compact(m.Result) != compact(msg.Result) {
				t.Fatalf("%s: Parse reads method %q result %s error %v; the go-sdk %s %v", data, m.Method, m.Result, m.Error, msg.Result, msg.Error)
			}
		}
	})
}

// FuzzAppend: the envelopes written around any id, name, method and raw
// parts decode, with the go-sdk's decoder, to what went in.
func FuzzAppend(f *testing.F) {
	f.Add(int64(1), "tool", "tools/call", `{"a":1}`, `{"k":"v"}`, "message")
	f.Add(int64(-5), "t\"<\u2028>\x00", "m\\", `[]`, ``, "\xff bad utf-8")
	f.Fuzz(func(t *testing.T, n int64, name, method, args, meta, message string) {
		if args != "" && !json.Valid([]byte(args)) || meta != "" && !json.Valid([]byte(meta)) {
			return // raw parts are valid JSON
		}
		id, _ := json.Marshal(n)
		if n > 1<<53 || n < -(1<<53) {
			n = 1 << 53 // the go-sdk reads numeric ids as float64: beyond 2^53 it cannot tell them apart
			id, _ = json.Marshal(n)
		}
		check := func(what string, b []byte) jsonrpc.Message {
			t.Helper()
			msg, err := jsonrpc.DecodeMessage(b)
			if err != nil {
				t.Fatalf("%s %s: %v", what, b, err)
			}
			return msg
		}
		req := check("tools/call", AppendToolCall(nil, id, name, json.RawMessage(args), json.RawMessage(meta))).(*jsonrpc.Request)
		var p struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
			Meta      json.RawMessage `json:"_meta"`
		}
		if err := json.Unmarshal(req.Params, &p); err != nil || p.Name != toValidUTF8(name) || compact(p.Arguments) != compact(json.RawMessage(args)) && args != "" || compact(p.Meta) != compact(json.RawMessage(meta)) && meta != "" || req.ID.Raw() != n || req.Method != "tools/call" {
			t.Fatalf("tools/call %q %s %s: decoded as %+v, %v", name, args, meta, p, err)
		}
		req = check("request", AppendRequest(nil, id, method, json.RawMessage(args))).(*jsonrpc.Request)
		if req.Method != toValidUTF8(method) || args != "" && compact(req.Params) != compact(json.RawMessage(args)) {
			t.Fatalf("request %q %s: decoded as %q %s", method, args, req.Method, req.Params)
		}
		req = check("notification", AppendNotification(nil, method, json.RawMessage(meta))).(*jsonrpc.Request)
		if req.ID.IsValid() || req.Method != toValidUTF8(method) {
			t.Fatalf("notification %q: decoded as %+v", method, req)
		}
		if args != "" {
			resp := check("response", AppendResponse(nil, id, json.RawMessage(args))).(*jsonrpc.Response)
			if compact(resp.Result) != compact(json.RawMessage(args)) || resp.ID.Raw() != n {
				t.Fatalf("response %s: decoded as %s", args, resp.Result)
			}
		}
		e := &jsonrpc.Error{Code: n, Message: message}
		if meta != "" {
			e.Data = json.RawMessage(meta)
		}
		resp := check("error", AppendError(nil, id, e)).(*jsonrpc.Response)
		var got *jsonrpc.Error
		if !errorsAs(resp.Error, &got) || got.Code != n || got.Message != toValidUTF8(message) || meta != "" && compact(got.Data) != compact(json.RawMessage(meta)) {
			t.Fatalf("error %d %q %s: decoded as %v", n, message, meta, resp.Error)
		}
		if b := AppendError(nil, nil, e); !bytes.Contains(b, []byte(`"id":null`)) {
			t.Fatalf("error without an id: %s", b)
		}
	})
}

// toValidUTF8 is s with each byte that is not part of valid UTF-8 replaced
// by U+FFFD, as JSON encoders write such strings.
func toValidUTF8(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func errorsAs(err error, target **jsonrpc.Error) bool { return errors.As(err, target) }
