package frontend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sjson "github.com/segmentio/encoding/json"

	"github.com/vmcp-dev/vmcp/internal/authz"
	"github.com/vmcp-dev/vmcp/internal/backend"
	"github.com/vmcp-dev/vmcp/internal/identity"
	"github.com/vmcp-dev/vmcp/internal/router"
)

// The fast path serves the two requests that make most of a gateway's
// traffic, tools/call and tools/list on 2025-11-25 sessions, without the
// SDK's typed messages (whose decoding and encoding were most of vmcp's
// cost per request; see docs/benchmarks.md). The request is parsed once
// into raw parts and checked as the SDK would check it.
//
// A tools/call whose client takes nothing back during the call (no
// progress token; it declared neither sampling nor elicitation and set no
// log level) is authorized and sent to the backend as it came
// (backend.CallToolRaw); the result goes back as the backend sent it. A
// tools/list is filtered as the SDK path filters it and written from each
// tool's definition encoded once per catalog. Both answer with one
// application/json response. Everything else, and any request this code is
// unsure of, takes the SDK's path, which answers the same
// (TestFastPathMatchesSDKPath).

// fastMessage is the part of a request the fast path reads. Its raw
// fields point into the request body.
type fastMessage struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
		Cursor    string          `json:"cursor"`
		Meta      json.RawMessage `json:"_meta"`
	} `json:"params"`
}

const fastParseFlags = sjson.DontCopyRawMessage | sjson.DontCopyNumber | sjson.DontMatchCaseInsensitiveStructFields

var (
	emptyObject     = json.RawMessage(`{}`)
	toolsMethods    = []byte(`"tools/`)
	cancelledMethod = []byte(`"notifications/cancelled"`)
)

// fastPath serves r if it is a tools/call or tools/list the fast path can
// take, and reports whether it did.
func (g *Gateway) fastPath(w http.ResponseWriter, r *http.Request, body []byte, sess *liveSession) bool {
	if !bytes.Contains(body, toolsMethods) || !fastHeaders(r.Header, sess) {
		return false
	}
	var m fastMessage
	if _, err := sjson.Parse(body, &m, fastParseFlags); err != nil || m.JSONRPC != "2.0" || len(m.ID) == 0 ||
		bytes.Contains(m.Params.Meta, []byte(metaVersionKey)) { // a 2026-07-28 request on a session: the SDK refuses it
		return false
	}
	if sess.user != "" && sess.user != identity.From(r.Context()).Key() {
		return false // the SDK refuses it
	}
	switch m.Method {
	case "tools/call":
		return g.fastCall(w, r, &m, sess)
	case "tools/list":
		return g.fastList(w, r, &m, sess)
	}
	return false
}

// fastCall serves a tools/call if its session takes nothing back during
// calls, and reports whether it did.
func (g *Gateway) fastCall(w http.ResponseWriter, r *http.Request, m *fastMessage, sess *liveSession) bool {
	if m.Params.Name == "" || !g.quiet(sess) {
		return false
	}
	meta, ok := forwardMeta(m.Params.Meta)
	if !ok {
		return false
	}
	pub := g.pub.Load()
	t := pub.cat.Tool(m.Params.Name)
	if t == nil {
		return false // unknown, or its backend is down: the SDK path says which
	}
	b := g.backends.Get(t.Backend)
	if b == nil {
		return false
	}
	ctx := r.Context()
	if g.opts.Authorizer != nil {
		if err := g.authorize(ctx, pub.targets.tools[t.Def.Name], authz.CallTool, "Tool", t.Def.Name,
			authz.ArgumentsOf(m.Params.Arguments), "tools/call"); err != nil {
			writeAnswer(w, m.ID, nil, err)
			return true
		}
	}
	if !g.calls.start() {
		writeAnswer(w, m.ID, nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "vmcp is shutting down"})
		return true
	}
	defer g.calls.end()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(g.stopCtx, cancel)()
	defer sess.track(string(m.ID), cancel)()

	args := m.Params.Arguments
	if len(args) == 0 || string(args) == "null" {
		args = emptyObject // as the SDK's client sends a call without arguments
	}
	res, err := b.CallToolRaw(ctx, &peer{ss: sess.ss}, backend.RawCall{Name: t.Original, Arguments: args, Meta: meta})
	if err != nil {
		var rpcErr *jsonrpc.Error
		if !errors.As(err, &rpcErr) {
			g.logger.Warn("tool call failed", "tool", t.Def.Name, "backend", t.Backend, "error", err)
			writeAnswer(w, m.ID, errorResult(err.Error()), nil)
			return true
		}
		writeAnswer(w, m.ID, nil, rpcErr)
		return true
	}
	defer res.Release()
	result, err := clientResult(res.Result)
	if err != nil {
		g.logger.Warn("tool call failed", "tool", t.Def.Name, "backend", t.Backend, "error", err)
		result = errorResult(err.Error())
	}
	writeAnswer(w, m.ID, result, nil)
	return true
}

// fastHeaders checks what the SDK would: a JSON body, an Accept of both
// answer types, and the session's protocol version.
func fastHeaders(h http.Header, sess *liveSession) bool {
	ip := sess.ss.InitializeParams()
	if ip == nil || h.Get("Mcp-Protocol-Version") != ip.ProtocolVersion {
		return false
	}
	if ct := h.Get("Content-Type"); ct != "application/json" && !strings.HasPrefix(ct, "application/json;") {
		return false
	}
	if len(h.Values("Last-Event-ID")) > 0 {
		return false
	}
	accept := strings.Join(h.Values("Accept"), ",")
	return strings.Contains(accept, "application/json") && strings.Contains(accept, "text/event-stream")
}

// quiet reports whether calls on sess need nothing relayed back: its client
// declared neither sampling nor elicitation and set no log level.
func (g *Gateway) quiet(sess *liveSession) bool {
	if declaresRelay(sess.ss) {
		return false
	}
	g.peersMu.Lock()
	_, kept := g.peers[sess.ss] // it set a log level
	g.peersMu.Unlock()
	return !kept
}

// forwardMeta returns the client's _meta as it goes to the backend: without
// keys reserved to MCP itself. ok is false if it carries a progress token
// (the SDK path relays progress).
func forwardMeta(raw json.RawMessage) (_ json.RawMessage, ok bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, true
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil, false
	}
	if _, ok := m["progressToken"]; ok {
		return nil, false
	}
	n := len(m)
	for k := range m {
		if reservedMetaKey(k) {
			delete(m, k)
		}
	}
	if len(m) == n {
		return raw, true
	}
	if len(m) == 0 {
		return nil, true
	}
	out, err := json.Marshal(m)
	return out, err == nil
}

// clientResult is a backend's tools/call result as the client gets it: its
// _meta without reserved keys, and content present (as the SDK sends it).
// Most results need neither, and are passed through as they are.
func clientResult(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, errors.New("the backend's tools/call result is not a JSON object")
	}
	if !bytes.Contains(raw, []byte(`"_meta"`)) && bytes.Contains(raw, []byte(`"content"`)) {
		return raw, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("the backend's tools/call result is not valid JSON")
	}
	changed := false
	if meta, ok := m["_meta"]; ok {
		var mm map[string]json.RawMessage
		if json.Unmarshal(meta, &mm) == nil {
			n := len(mm)
			for k := range mm {
				if reservedMetaKey(k) {
					delete(mm, k)
				}
			}
			if len(mm) != n {
				changed = true
				if len(mm) == 0 {
					delete(m, "_meta")
				} else {
					m["_meta"], _ = json.Marshal(mm)
				}
			}
		}
	}
	if c, ok := m["content"]; !ok || string(c) == "null" {
		m["content"] = json.RawMessage("[]")
		changed = true
	}
	if !changed {
		return raw, nil
	}
	return json.Marshal(m)
}

// errorResult is an isError result carrying msg.
func errorResult(msg string) json.RawMessage {
	text, _ := json.Marshal(msg)
	return json.RawMessage(`{"content":[{"type":"text","text":` + string(text) + `}],"isError":true}`)
}

// writeAnswer writes the JSON-RPC response to request id: result, or the
// error (a *jsonrpc.Error, as the SDK would send it).
func writeAnswer(w http.ResponseWriter, id json.RawMessage, result json.RawMessage, err error) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	buf.WriteString(`{"jsonrpc":"2.0","id":`)
	buf.Write(id)
	if err != nil {
		var rpcErr *jsonrpc.Error
		if !errors.As(err, &rpcErr) {
			rpcErr = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: err.Error()}
		}
		e, _ := json.Marshal(rpcErr)
		buf.WriteString(`,"error":`)
		buf.Write(e)
	} else {
		buf.WriteString(`,"result":`)
		buf.Write(result)
	}
	buf.WriteString("}\n")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf.Bytes())
}

// fastCancel serves a notifications/cancelled for a raw call in flight on
// sess, and reports whether it did.
func fastCancel(w http.ResponseWriter, body []byte, sess *liveSession) bool {
	if sess == nil || !bytes.Contains(body, cancelledMethod) || !sess.hasCalls() {
		return false
	}
	var m struct {
		Method string `json:"method"`
		Params struct {
			RequestID json.RawMessage `json:"requestId"`
		} `json:"params"`
	}
	if _, err := sjson.Parse(body, &m, fastParseFlags); err != nil || m.Method != "notifications/cancelled" {
		return false
	}
	if !sess.cancelCall(string(bytes.TrimSpace(m.Params.RequestID))) {
		return false
	}
	w.WriteHeader(http.StatusAccepted)
	return true
}

// fastList serves a tools/list from the tools' encoded definitions.
func (g *Gateway) fastList(w http.ResponseWriter, r *http.Request, m *fastMessage, sess *liveSession) bool {
	if _, ok := forwardMeta(m.Params.Meta); !ok {
		return false
	}
	ctx := r.Context()
	g.discover(ctx, sess.ss)
	pub := g.pub.Load()
	page, next, err := filter(g, ctx, pub, pub.cat.Tools, toolName,
		func(t *router.Tool) *authz.Target { return pub.targets.tools[t.Def.Name] }, authz.CallTool, authz.ListTools, "tools/list", m.Params.Cursor)
	if err != nil {
		writeAnswer(w, m.ID, nil, err)
		return true
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	c := g.cacheable()
	fmt.Fprintf(buf, `{"ttlMs":%d,"cacheScope":%q,"tools":[`, c.TTLMs, c.CacheScope)
	for i, t := range page {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(pub.wire[t])
	}
	buf.WriteByte(']')
	if next != "" {
		fmt.Fprintf(buf, `,"nextCursor":%q`, next)
	}
	buf.WriteByte('}')
	writeAnswer(w, m.ID, buf.Bytes(), nil)
	return true
}

func toolName(t *router.Tool) string { return t.Def.Name }

// wireTools encodes every tool's definition as clients get it, once per
// catalog.
func wireTools(c *router.Catalog) map[*router.Tool]json.RawMessage {
	out := make(map[*router.Tool]json.RawMessage, len(c.Tools))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, t := range c.Tools {
		buf.Reset()
		if err := enc.Encode(t.Def); err != nil {
			continue // left out of fast lists; the SDK path reports it
		}
		out[t] = bytes.Clone(bytes.TrimSpace(buf.Bytes()))
	}
	return out
}
