package frontend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/authz"
	"github.com/vmcp-dev/vmcp/internal/backend"
	"github.com/vmcp-dev/vmcp/internal/frontend/session"
	"github.com/vmcp-dev/vmcp/internal/router"
	"github.com/vmcp-dev/vmcp/internal/telemetry"
	"github.com/vmcp-dev/vmcp/internal/wire"
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
// unsure of, takes the SDK's path, which answers the same except where
// go-sdk's types cannot carry a backend's result (docs/design.md, "What the
// two paths answer"; TestFastPathDifferential).

// Keys of the stateless revision's request _meta.
const (
	serverInfoKey   = "io.modelcontextprotocol/serverInfo"
	clientCapsKey   = "io.modelcontextprotocol/clientCapabilities"
	clientInfoKey   = "io.modelcontextprotocol/clientInfo"
	clientLogLevel  = "io.modelcontextprotocol/logLevel"
	progressKey     = "progressToken"
	mcpMethodHeader = "Mcp-Method"
	mcpNameHeader   = "Mcp-Name"
)

var (
	mcpHeaderKey = []byte(`"x-mcp-header"`)
	emptyObject  = json.RawMessage(`{}`)
)

// fastPath serves req if it is a tools/call or tools/list the fast path can
// take (fastRoute), and reports whether it did. The edge admitted it: its
// headers, its session and the session's owner are checked.
func (g *Gateway) fastPath(w http.ResponseWriter, r *http.Request, req *request) bool {
	f := fastFacts{modern: req.modern, searchMode: g.opts.ToolSearch != nil}
	if sess := req.sess; sess != nil {
		if ip := sess.Server().InitializeParams(); ip != nil {
			f.sessionVersion = ip.ProtocolVersion
		}
		f.relays = req.msg.Method == "tools/call" && !g.quiet(sess)
	}
	if f.searchMode && req.msg.Method == "tools/call" {
		f.searchTool = g.opts.ToolSearch.Handles(req.msg.Params.Name)
	}
	meta, ok := fastRoute(req, r.Header, f)
	if !ok {
		return false
	}
	m := &req.msg
	a := &fastAnswer{w: w, id: m.ID}
	if req.modern {
		a.serverInfo = g.serverInfo
	}
	if m.Method == "tools/call" {
		return g.fastCall(r, m, meta, req.sess, a)
	}
	return g.fastList(r, m, req.sess, a)
}

// fastFacts is what fastRoute needs to know of the gateway and the
// request's session.
type fastFacts struct {
	modern         bool   // a request of the stateless revision (no session)
	sessionVersion string // the protocol version the session initialized with
	relays         bool   // the session's client takes something back during calls (quiet)
	searchMode     bool   // tool search is on: tools/list shows its few tools
	searchTool     bool   // the call is to one of tool search's own tools
}

// fastRoute decides whether req may take the fast path, and returns its
// params' _meta, decoded (nil without one). It may if it is a tools/call
// (of a named tool) or tools/list request, parsed in full, and:
//
//   - its Mcp-Protocol-Version header is its session's version, or, in
//     the stateless revision, 2026-07-28 and its _meta is what the SDK
//     requires there (modernRequest);
//   - a request on a session carries no stateless protocol version in
//     _meta (the SDK refuses it);
//   - its _meta, if any, is a JSON object without a progress token (the
//     SDK path relays progress), and in the stateless revision without a
//     log level (the SDK path relays log messages);
//   - a tools/call's session relays nothing (quiet) and the tool is not
//     tool search's own; a tools/list is not in tool search mode.
//
// Everything else takes the SDK's path. TestFastRoute has the table.
func fastRoute(req *request, h http.Header, f fastFacts) (map[string]json.RawMessage, bool) {
	m := &req.msg
	if !req.msgOK || len(m.ID) == 0 {
		return nil, false
	}
	switch m.Method {
	case "tools/call":
		if m.Params.Name == "" || f.relays || f.searchTool {
			return nil, false
		}
	case "tools/list":
		if f.searchMode {
			return nil, false
		}
	default:
		return nil, false
	}
	version := h.Get("Mcp-Protocol-Version")
	if f.modern && version != ModernVersion || !f.modern && (f.sessionVersion == "" || version != f.sessionVersion) {
		return nil, false
	}
	var meta map[string]json.RawMessage // nil without _meta, the usual case on a session
	if len(m.Params.Meta) > 0 && !wire.IsNull(m.Params.Meta) && json.Unmarshal(m.Params.Meta, &meta) != nil {
		return nil, false
	}
	if _, ok := meta[progressKey]; ok {
		return nil, false
	}
	if f.modern {
		return meta, modernRequest(h, m, meta)
	}
	_, stateless := meta[metaVersionKey]
	return meta, !stateless
}

// fastCall serves a tools/call if its session takes nothing back during
// calls, and reports whether it did. A tool that is not in the catalog, or
// that the caller may not call, gets its answer here (the SDK path would
// give the same), so that the two look alike on the wire.
func (g *Gateway) fastCall(r *http.Request, m *wire.Request, meta map[string]json.RawMessage, sess *session.Session, a *fastAnswer) bool {
	ctx := r.Context()
	pub := g.pub.Load()
	t := pub.cat.Tool(m.Params.Name)
	var op *telemetry.Request
	if g.observed() {
		ctx, op = g.startFast(ctx, "tools/call", t, sess)
		defer func() { op.End(a.outcome) }()
	}
	if t == nil {
		res, err := g.missingTool(ctx, pub, m.Params.Name, m.Params.Arguments)
		if err != nil {
			a.fail(err)
			return true
		}
		out, err := json.Marshal(res)
		if err != nil {
			op.Abandon()
			return false
		}
		a.toolResult(out, res.IsError)
		return true
	}
	if g.opts.Authorizer != nil {
		if err := g.authorize(ctx, pub.targets.tools[t.Def.Name], authz.CallTool, "Tool", t.Def.Name,
			m.Params.Arguments, "tools/call"); err != nil {
			a.fail(err)
			return true
		}
	}
	forward, ok := forwardMeta(m.Params.Meta, meta)
	if !ok {
		op.Abandon()
		return false
	}
	if a.serverInfo != nil && bytes.Contains(pub.wire[t], mcpHeaderKey) {
		// The SDK checks the Mcp-Param-* headers of such a tool; it
		// decides the call again, so that the checks it makes before the
		// handler never reach a tool the caller may not call. (With the
		// audit log on, such a call has two decision records.)
		op.Abandon()
		return false
	}
	b := g.backends.Get(t.Backend)
	if b == nil {
		op.Abandon()
		return false
	}
	if !g.calls.start() {
		a.fail(&jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "vmcp is shutting down"})
		return true
	}
	defer g.calls.end()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(g.stopCtx, cancel)()
	var p backend.Peer = noRelay{}
	if sess != nil {
		defer sess.Track(string(m.ID), cancel)()
		p = &peer{ss: sess.Server()}
	}

	args := m.Params.Arguments
	if len(args) == 0 {
		args = emptyObject // as the SDK's client sends a call without arguments
	}
	bctx, call := g.startCall(ctx, t.Backend, "tools/call", t.Def.Name, t.Original, authz.CallTool, "Tool", t.Def.Name)
	res, err := b.CallToolRaw(bctx, p, backend.RawCall{Name: t.Original, Arguments: args, Meta: forward})
	if err != nil {
		call.end(bctx, err, false, m.Params.Arguments)
		var rpcErr *jsonrpc.Error
		if !errors.As(err, &rpcErr) {
			g.logger.Warn("tool call failed", "tool", t.Def.Name, "backend", t.Backend, "error", err)
			a.toolResult(errorResult(err.Error()), true)
			return true
		}
		a.fail(rpcErr)
		return true
	}
	defer res.Release()
	result, err := clientResult(res.Result)
	if err != nil {
		call.end(bctx, err, false, m.Params.Arguments)
		g.logger.Warn("tool call failed", "tool", t.Def.Name, "backend", t.Backend, "error", err)
		a.toolResult(errorResult(err.Error()), true)
		return true
	}
	isError := call.observed() && rawIsError(result)
	call.end(bctx, nil, isError, m.Params.Arguments)
	a.toolResult(result, isError)
	return true
}

// modernRequest checks a stateless request as the SDK would: its _meta
// carries the protocol version of its header and valid client
// capabilities (and client info, if any); Mcp-Method and Mcp-Name match the
// body. A request whose client asked for log messages goes to the SDK,
// which relays them.
func modernRequest(h http.Header, m *wire.Request, meta map[string]json.RawMessage) bool {
	if h.Get(mcpMethodHeader) != m.Method || m.Method == "tools/call" && h.Get(mcpNameHeader) != m.Params.Name {
		return false
	}
	if !isString(meta[metaVersionKey], h.Get("Mcp-Protocol-Version")) {
		return false
	}
	raw, ok := meta[clientCapsKey]
	if raw = bytes.TrimSpace(raw); !ok || !bytes.HasPrefix(raw, []byte("{")) {
		return false
	}
	if string(raw) != "{}" { // what most clients send: valid without decoding
		var caps mcp.ClientCapabilities
		if wire.Unmarshal(raw, &caps) != nil {
			return false
		}
	}
	if raw, ok := meta[clientInfoKey]; ok {
		var info mcp.Implementation
		if wire.Unmarshal(raw, &info) != nil {
			return false
		}
	}
	_, logs := meta[clientLogLevel]
	return !logs
}

// isString reports whether raw is the JSON string s.
func isString(raw json.RawMessage, s string) bool {
	if len(raw) == len(s)+2 && raw[0] == '"' && raw[len(raw)-1] == '"' && string(raw[1:len(raw)-1]) == s {
		return true
	}
	var v string
	return bytes.IndexByte(raw, '\\') >= 0 && wire.Unmarshal(raw, &v) == nil && v == s
}

// quiet reports whether calls on sess need nothing relayed back: its client
// declared neither sampling nor elicitation and set no log level.
func (g *Gateway) quiet(sess *session.Session) bool {
	if declaresRelay(sess.Server()) {
		return false
	}
	g.peersMu.Lock()
	_, kept := g.peers[sess.Server()] // it set a log level
	g.peersMu.Unlock()
	return !kept
}

// forwardMeta returns the client's _meta (raw, decoded as meta) as it goes
// to the backend: without keys reserved to MCP itself.
func forwardMeta(raw json.RawMessage, meta map[string]json.RawMessage) (_ json.RawMessage, ok bool) {
	own, dropped := withoutReserved(meta)
	switch {
	case len(own) == 0:
		return nil, true
	case !dropped:
		return raw, true
	}
	out, err := json.Marshal(own)
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
	var top resultMembers
	if err := wire.ParseMembers(raw, &top); err != nil {
		return nil, errors.New("the backend's tools/call result is not valid JSON")
	}
	if top.Meta == nil && len(top.Content) > 0 && !wire.IsNull(top.Content) {
		return raw, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("the backend's tools/call result is not valid JSON")
	}
	changed := false
	if raw, ok := m["_meta"]; ok {
		var meta map[string]json.RawMessage
		if json.Unmarshal(raw, &meta) == nil {
			if own, dropped := withoutReserved(meta); dropped {
				changed = true
				if len(own) == 0 {
					delete(m, "_meta")
				} else {
					m["_meta"], _ = json.Marshal(own)
				}
			}
		}
	}
	if c, ok := m["content"]; !ok || wire.IsNull(c) {
		m["content"] = json.RawMessage("[]")
		changed = true
	}
	if !changed {
		return raw, nil
	}
	return json.Marshal(m)
}

// resultMembers are the members of a result object the gateway may have to
// change, raw (nil: absent).
type resultMembers struct {
	Meta       json.RawMessage `json:"_meta"`
	Content    json.RawMessage `json:"content"`
	ResultType json.RawMessage `json:"resultType"`
}

// errorResult is an isError result carrying msg.
func errorResult(msg string) json.RawMessage {
	text, _ := json.Marshal(msg)
	return json.RawMessage(`{"content":[{"type":"text","text":` + string(text) + `}],"isError":true}`)
}

// fastAnswer writes the answer to one request. In the stateless revision
// results carry what the SDK adds to them there: "resultType" and the
// server's identity in _meta (there is no initialize to learn it from).
type fastAnswer struct {
	w          http.ResponseWriter
	id         json.RawMessage
	serverInfo json.RawMessage   // {"name":…,"version":…}; nil on a session
	outcome    telemetry.Outcome // how it was answered, for telemetry
}

// fail answers with err (a *jsonrpc.Error, as the SDK would send it).
func (a *fastAnswer) fail(err error) {
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) {
		rpcErr = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: err.Error()}
	}
	a.outcome = telemetry.Error
	status := http.StatusOK
	if a.serverInfo != nil { // the stateless revision gives some errors an HTTP status (SEP-2575)
		switch rpcErr.Code {
		case jsonrpc.CodeMethodNotFound:
			status = http.StatusNotFound
		case jsonrpc.CodeInvalidParams, codeUnsupportedProtocolVersion, codeMissingClientCapabilities:
			status = http.StatusBadRequest
		}
	}
	a.write(status, nil, rpcErr)
}

// JSON-RPC error codes of the stateless revision (go-sdk's
// CodeUnsupportedProtocolVersion and CodeMissingRequiredClientCapabilities).
const (
	codeUnsupportedProtocolVersion = -32022
	codeMissingClientCapabilities  = -32021
)

// toolResult answers a tools/call with a result object, isError telling
// whether it is an error result.
func (a *fastAnswer) toolResult(result json.RawMessage, isError bool) {
	if isError {
		a.outcome = telemetry.ToolError
	}
	a.result(result)
}

// result answers with a result object.
func (a *fastAnswer) result(result json.RawMessage) {
	if a.serverInfo != nil {
		result = a.stateless(result)
	}
	a.write(http.StatusOK, result, nil)
}

// stateless adds resultType and the server's identity to a result object.
func (a *fastAnswer) stateless(result json.RawMessage) json.RawMessage {
	var top resultMembers
	if wire.ParseMembers(result, &top) == nil && top.Meta == nil && top.ResultType == nil {
		out := make([]byte, 0, len(result)+len(a.serverInfo)+96)
		out = append(out, `{"resultType":"complete","_meta":{"io.modelcontextprotocol/serverInfo":`...)
		out = append(out, a.serverInfo...)
		out = append(out, '}')
		rest := bytes.TrimSpace(result)[1:]
		if r := bytes.TrimSpace(rest); len(r) > 0 && r[0] != '}' {
			out = append(out, ',')
		}
		return append(out, rest...)
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(result, &m) != nil {
		return result
	}
	var meta map[string]json.RawMessage
	if raw, ok := m["_meta"]; ok {
		_ = json.Unmarshal(raw, &meta)
	}
	if meta == nil { // none, null, or not an object
		meta = map[string]json.RawMessage{}
	}
	meta[serverInfoKey] = a.serverInfo
	m["_meta"], _ = json.Marshal(meta)
	if _, ok := m["resultType"]; !ok {
		m["resultType"] = json.RawMessage(`"complete"`)
	}
	out, err := json.Marshal(m)
	if err != nil {
		return result
	}
	return out
}

// write writes the JSON-RPC response: an error if e is not nil, else
// result.
func (a *fastAnswer) write(status int, result json.RawMessage, e *jsonrpc.Error) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer putBuf(buf)
	// Room for the whole answer, so that the appends stay in buf.
	buf.Grow(len(a.id) + len(result) + 64)
	b := buf.AvailableBuffer()
	if e != nil {
		b = wire.AppendError(b, a.id, e)
	} else {
		b = wire.AppendResponse(b, a.id, result)
	}
	b = append(b, '\n')
	a.w.Header().Set("Content-Type", "application/json")
	a.w.WriteHeader(status)
	_, _ = a.w.Write(b)
}

// fastCancel serves a notifications/cancelled for a raw call in flight on
// the request's session (the edge checked that it is the caller's), and
// reports whether it did.
func fastCancel(w http.ResponseWriter, req *request) bool {
	if req.sess == nil || req.method != "notifications/cancelled" || !req.sess.HasCalls() {
		return false
	}
	if !req.msgOK || !req.sess.Cancel(string(bytes.TrimSpace(req.msg.Params.RequestID))) {
		return false
	}
	w.WriteHeader(http.StatusAccepted)
	return true
}

// fastList serves a tools/list from the tools' encoded definitions.
func (g *Gateway) fastList(r *http.Request, m *wire.Request, sess *session.Session, a *fastAnswer) bool {
	ctx := r.Context()
	if g.observed() {
		var op *telemetry.Request
		ctx, op = g.startFast(ctx, "tools/list", nil, sess)
		defer func() { op.End(a.outcome) }()
	}
	var ss *mcp.ServerSession
	if sess != nil {
		ss = sess.Server()
	}
	g.discover(ctx, ss)
	pub := g.pub.Load()
	page, next, err := filter(g, ctx, pub, pub.cat.Tools, toolName,
		func(t *router.Tool) *authz.Target { return pub.targets.tools[t.Def.Name] }, authz.CallTool, authz.ListTools, "tools/list", m.Params.Cursor)
	if err != nil {
		a.fail(err)
		return true
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer putBuf(buf)
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
	a.result(buf.Bytes())
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
