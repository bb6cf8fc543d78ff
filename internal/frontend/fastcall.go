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
	sjson "github.com/segmentio/encoding/json"

	"github.com/vmcp-dev/vmcp/internal/authz"
	"github.com/vmcp-dev/vmcp/internal/backend"
	"github.com/vmcp-dev/vmcp/internal/frontend/session"
	"github.com/vmcp-dev/vmcp/internal/router"
	"github.com/vmcp-dev/vmcp/internal/telemetry"
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
// take, and reports whether it did. The edge admitted it: its headers, its
// session and the session's owner are checked.
func (g *Gateway) fastPath(w http.ResponseWriter, r *http.Request, req *request) bool {
	m := &req.msg
	if !req.msgOK || len(m.ID) == 0 || m.Method != "tools/call" && m.Method != "tools/list" {
		return false
	}
	sess := req.sess // nil: a request of the stateless revision
	if req.modern && r.Header.Get("Mcp-Protocol-Version") != ModernVersion || !req.modern && !fastHeaders(r.Header, sess) {
		return false
	}
	var meta map[string]json.RawMessage // nil without _meta, the usual case on a session
	if len(m.Params.Meta) > 0 && string(m.Params.Meta) != "null" && json.Unmarshal(m.Params.Meta, &meta) != nil {
		return false
	}
	if _, ok := meta[progressKey]; ok {
		return false // the SDK path relays progress
	}
	if req.modern {
		if !modernRequest(r.Header, m, meta) {
			return false
		}
	} else if _, ok := meta[metaVersionKey]; ok { // a 2026-07-28 request on a session: the SDK refuses it
		return false
	}
	a := &fastAnswer{w: w, id: m.ID}
	if req.modern {
		a.serverInfo = g.serverInfo
	}
	switch m.Method {
	case "tools/call":
		return g.fastCall(r, m, meta, sess, a)
	case "tools/list":
		return g.fastList(r, m, sess, a)
	}
	return false
}

// fastCall serves a tools/call if its session takes nothing back during
// calls, and reports whether it did. A tool that is not in the catalog, or
// that the caller may not call, gets its answer here (the SDK path would
// give the same), so that the two look alike on the wire.
func (g *Gateway) fastCall(r *http.Request, m *fastMessage, meta map[string]json.RawMessage, sess *session.Session, a *fastAnswer) bool {
	if m.Params.Name == "" || sess != nil && !g.quiet(sess) || g.opts.ToolSearch.Handles(m.Params.Name) {
		return false
	}
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

// fastHeaders reports whether a request of a session carries the session's
// protocol version.
func fastHeaders(h http.Header, sess *session.Session) bool {
	ip := sess.Server().InitializeParams()
	return ip != nil && h.Get("Mcp-Protocol-Version") == ip.ProtocolVersion
}

// modernRequest checks a stateless request as the SDK would: its _meta
// carries the protocol version of its header and valid client
// capabilities (and client info, if any); Mcp-Method and Mcp-Name match the
// body. A request whose client asked for log messages goes to the SDK,
// which relays them.
func modernRequest(h http.Header, m *fastMessage, meta map[string]json.RawMessage) bool {
	if h.Get(mcpMethodHeader) != m.Method || m.Method == "tools/call" && h.Get(mcpNameHeader) != m.Params.Name {
		return false
	}
	var version string
	if json.Unmarshal(meta[metaVersionKey], &version) != nil || version != h.Get("Mcp-Protocol-Version") {
		return false
	}
	var caps mcp.ClientCapabilities
	if raw, ok := meta[clientCapsKey]; !ok || !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) || json.Unmarshal(raw, &caps) != nil {
		return false
	}
	if raw, ok := meta[clientInfoKey]; ok {
		var info mcp.Implementation
		if json.Unmarshal(raw, &info) != nil {
			return false
		}
	}
	_, logs := meta[clientLogLevel]
	return !logs
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
	if !bytes.Contains(raw, []byte(`"_meta"`)) && bytes.Contains(raw, []byte(`"content"`)) {
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
	e, _ := json.Marshal(rpcErr)
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
	a.write(status, "error", e)
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
	a.write(http.StatusOK, "result", result)
}

// stateless adds resultType and the server's identity to a result object.
func (a *fastAnswer) stateless(result json.RawMessage) json.RawMessage {
	if !bytes.Contains(result, []byte(`"_meta"`)) && !bytes.Contains(result, []byte(`"resultType"`)) {
		out := make([]byte, 0, len(result)+len(a.serverInfo)+96)
		out = append(out, `{"resultType":"complete","_meta":{"io.modelcontextprotocol/serverInfo":`...)
		out = append(out, a.serverInfo...)
		out = append(out, '}')
		if rest := bytes.TrimSpace(result[1:]); len(rest) > 0 && rest[0] != '}' {
			out = append(out, ',')
		}
		return append(out, result[1:]...)
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(result, &m) != nil {
		return result
	}
	meta := map[string]json.RawMessage{}
	if raw, ok := m["_meta"]; ok {
		_ = json.Unmarshal(raw, &meta)
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

// write writes the JSON-RPC response with member ("result" or "error").
func (a *fastAnswer) write(status int, member string, value json.RawMessage) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer putBuf(buf)
	buf.WriteString(`{"jsonrpc":"2.0","id":`)
	buf.Write(a.id)
	buf.WriteString(`,"`)
	buf.WriteString(member)
	buf.WriteString(`":`)
	buf.Write(value)
	buf.WriteString("}\n")
	a.w.Header().Set("Content-Type", "application/json")
	a.w.WriteHeader(status)
	_, _ = a.w.Write(buf.Bytes())
}

// fastCancel serves a notifications/cancelled for a raw call in flight on
// the request's session (the edge checked that it is the caller's), and
// reports whether it did.
func fastCancel(w http.ResponseWriter, req *request) bool {
	if req.sess == nil || req.method != "notifications/cancelled" || !req.sess.HasCalls() {
		return false
	}
	var m struct {
		Params struct {
			RequestID json.RawMessage `json:"requestId"`
		} `json:"params"`
	}
	if _, err := sjson.Parse(req.body, &m, fastParseFlags); err != nil {
		return false
	}
	if !req.sess.Cancel(string(bytes.TrimSpace(m.Params.RequestID))) {
		return false
	}
	w.WriteHeader(http.StatusAccepted)
	return true
}

// fastList serves a tools/list from the tools' encoded definitions.
func (g *Gateway) fastList(r *http.Request, m *fastMessage, sess *session.Session, a *fastAnswer) bool {
	if g.opts.ToolSearch != nil {
		return false // search mode lists a few tools: the SDK path serves it
	}
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
