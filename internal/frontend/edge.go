package frontend

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/frontend/session"
	"github.com/vmcp-dev/vmcp/internal/identity"
	"github.com/vmcp-dev/vmcp/internal/wire"
)

// The edge makes every check of a request that does not depend on what it
// asks for, once, for every request, whichever path then serves it (the
// fast path, the SDK's stateful or stateless handler, a detached stream):
//
//   - before authentication (ServeHTTP): the Host check against DNS
//     rebinding and the Origin check;
//   - after it (admit): the HTTP method, the body (size, time, UTF-8, JSON,
//     no batches, no null id), the protocol version (a known revision), the
//     content type and Accept, the era, and the session: known, owned by
//     the caller, or, for initialize, within the session limits.
//
// Every refusal is a JSON-RPC error (writeError). What the SDK still
// refuses on its own it answers in plain text, which sdkWriter turns into a
// JSON-RPC error too, so that no path answers a client in plain text.

// revisions are the protocol revisions vmcp serves, newest first: the
// go-sdk's. Versions are compared as members of this list, never as strings
// ("garbage" sorts after "2026-07-28").
var revisions = mcp.SupportedProtocolVersions()

// revision is the position of a known protocol revision in revisions (0
// the newest), or -1 for a version vmcp does not know.
func revision(v string) int { return slices.Index(revisions, v) }

// modernRevision reports whether v is a known revision of the stateless era
// (2026-07-28 or later).
func modernRevision(v string) bool {
	i := revision(v)
	return i >= 0 && i <= revision(ModernVersion)
}

// request is what the edge admitted, for the path that serves it.
type request struct {
	body   []byte        // a POST's body (in buf); nil otherwise
	buf    *bytes.Buffer // pooled; released by done
	msg    wire.Request  // the message, parsed once (zero if msgOK is false)
	msgOK  bool          // msg was parsed: a JSON-RPC 2.0 message with an object (or no) params
	id     json.RawMessage
	method string
	modern bool             // a request of the stateless revision
	sess   *session.Session // the 2025-11-25 session it belongs to; nil for initialize and modern requests
	active bool             // a POST of sess, counted in sess.active until done
	slot   string           // the user whose session place this initialize holds; see session.Store.Reserve
	held   bool             // a place is held
}

// done releases what the request held.
func (g *Gateway) done(req *request) {
	if req.active {
		req.sess.End()
	}
	if req.held {
		g.sessions.Release(req.slot)
	}
	if req.buf != nil {
		putBuf(req.buf)
	}
}

// guardHost refuses a request that reached a loopback listener under a
// name that is not a loopback one (nor a configured one): a browser page of
// another site whose DNS name was rebound to 127.0.0.1 (MCP security best
// practices, DNS rebinding). It reports whether the request may go on.
func (g *Gateway) guardHost(w http.ResponseWriter, r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok || local == nil || !loopback(hostOf(local.String())) {
		return true
	}
	host := strings.ToLower(hostOf(r.Host))
	if loopback(host) || g.hosts[host] {
		return true
	}
	writeError(w, http.StatusForbidden, jsonrpc.CodeInvalidRequest, nil,
		fmt.Sprintf("Host %q is not allowed on a loopback listener (DNS rebinding protection): use localhost or set server.publicURL", r.Host))
	return false
}

// hostOf is the host part of host[:port] (IPv6 addresses without brackets).
func hostOf(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// admit makes the edge's checks after authentication and answers a request
// that fails one. The caller serves an admitted request and then calls
// g.done(req).
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request, req *request) bool {
	switch r.Method {
	case http.MethodPost:
		if !g.readBody(w, r, req) {
			return false
		}
	case http.MethodGet, http.MethodDelete:
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeError(w, http.StatusMethodNotAllowed, jsonrpc.CodeInvalidRequest, nil, "method not allowed")
		return false
	}
	version := r.Header.Get("Mcp-Protocol-Version")
	if version != "" && revision(version) < 0 {
		data, _ := json.Marshal(mcp.UnsupportedProtocolVersionData{Supported: revisions, Requested: version})
		writeRPCError(w, http.StatusBadRequest, req.id, &jsonrpc.Error{Code: codeUnsupportedProtocolVersion,
			Message: fmt.Sprintf("unsupported protocol version %q", version), Data: data})
		return false
	}
	req.modern = isModern(r.Header, req.body)
	switch r.Method {
	case http.MethodPost:
		return g.admitPost(w, r, req)
	case http.MethodGet:
		if _, stream := accepts(r.Header); !stream && !req.modern {
			writeError(w, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, nil, "a GET must accept text/event-stream")
			return false
		}
	}
	if req.modern {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, jsonrpc.CodeInvalidRequest, nil, "the "+ModernVersion+" protocol has no "+r.Method+" on the MCP endpoint")
		return false
	}
	if r.Header.Get("Mcp-Session-Id") == "" {
		writeError(w, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, nil, "a "+r.Method+" needs the Mcp-Session-Id of an initialized session")
		return false
	}
	return g.admitSession(w, r, req)
}

// admitPost checks a POST's headers and session.
func (g *Gateway) admitPost(w http.ResponseWriter, r *http.Request, req *request) bool {
	if !jsonContent(r.Header.Get("Content-Type")) {
		writeError(w, http.StatusUnsupportedMediaType, jsonrpc.CodeInvalidRequest, req.id, "the Content-Type of a POST must be application/json")
		return false
	}
	if json, stream := accepts(r.Header); !json || !stream {
		writeError(w, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, req.id, "the Accept header of a POST must list both application/json and text/event-stream")
		return false
	}
	if req.modern {
		// The stateless revision has no sessions and no resumption: both
		// headers are ignored (its transport says so; the SDK would refuse
		// Last-Event-ID).
		r.Header.Del("Last-Event-ID")
		return true
	}
	if len(r.Header.Values("Last-Event-ID")) > 0 {
		writeError(w, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, req.id, "a POST cannot resume a stream: send Last-Event-ID on a GET")
		return false
	}
	if r.Header.Get("Mcp-Session-Id") != "" {
		return g.admitSession(w, r, req)
	}
	if req.method != "initialize" {
		writeError(w, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, req.id,
			"no Mcp-Session-Id: send initialize first (or use the "+ModernVersion+" protocol, which has no sessions)")
		return false
	}
	user := identity.From(r.Context()).Key()
	if err := g.sessions.Reserve(user); err != nil {
		g.refuseSession(w, req, err)
		return false
	}
	req.slot, req.held = user, true
	return true
}

// admitSession finds the request's session and checks that it is the
// caller's: a session belongs to the user who created it.
func (g *Gateway) admitSession(w http.ResponseWriter, r *http.Request, req *request) bool {
	id := r.Header.Get("Mcp-Session-Id")
	sess, err := g.sessions.Lookup(id, identity.From(r.Context()).Key())
	if errors.Is(err, session.ErrNotFound) && g.opts.Sessions != nil {
		// Another replica's, perhaps (shared.go); restore checks the owner.
		if sess = g.restore(w, r, req, id); sess == nil {
			return false
		}
		err = nil
	}
	if err != nil {
		status := http.StatusNotFound
		if errors.Is(err, session.ErrNotOwner) {
			status = http.StatusForbidden
		}
		writeError(w, status, jsonrpc.CodeInvalidRequest, req.id, err.Error())
		return false
	}
	if sess.Stale.Load() && !g.refresh(w, r, req, sess) {
		return false
	}
	if r.Method == http.MethodPost { // a GET stream alone does not keep a session alive
		sess.Begin()
		req.active = true
	}
	req.sess = sess
	return true
}

// readBody reads and checks a POST's body.
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request, req *request) bool {
	req.buf = bufPool.Get().(*bytes.Buffer)
	req.buf.Reset()
	_, err := req.buf.ReadFrom(http.MaxBytesReader(w, r.Body, g.opts.MaxRequestBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			writeError(w, http.StatusRequestEntityTooLarge, jsonrpc.CodeInvalidRequest, nil,
				fmt.Sprintf("request body exceeds %d bytes", tooBig.Limit))
		case errors.Is(err, os.ErrDeadlineExceeded):
			writeError(w, http.StatusRequestTimeout, jsonrpc.CodeInvalidRequest, nil, "the request body did not arrive in time (server.readTimeout)")
		default:
			writeError(w, http.StatusBadRequest, jsonrpc.CodeParseError, nil, "reading request body: "+err.Error())
		}
		return false
	}
	body := req.buf.Bytes()
	if !utf8.Valid(body) {
		writeError(w, http.StatusBadRequest, jsonrpc.CodeParseError, nil, "request body is not valid UTF-8")
		return false
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '[' {
		writeError(w, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, nil, "JSON-RPC batches are not supported: send one message per request")
		return false
	}
	if !json.Valid(body) {
		writeError(w, http.StatusBadRequest, jsonrpc.CodeParseError, nil, "the request body is not valid JSON")
		return false
	}
	req.body = body
	req.parse()
	if wire.IsNull(req.id) {
		writeError(w, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, nil, "the id of a request must be a string or an integer, not null")
		return false
	}
	return true
}

// parse reads the message once: in full for the fast path, or at least its
// id and method when its params do not fit (the SDK then answers).
func (req *request) parse() {
	req.id, req.method, req.msgOK = wire.ParseRequest(req.body, &req.msg)
}

// isModern decides the era of a request: the 2026-07-28 revision is chosen
// by its protocol version header (a known revision; the edge refuses
// others), or, without one, by the protocol version in params._meta that
// every request of that revision carries. Everything else (initialize,
// requests of a session, GET and DELETE without the header) is legacy.
func isModern(h http.Header, body []byte) bool {
	if v := h.Get("Mcp-Protocol-Version"); v != "" {
		return modernRevision(v)
	}
	if !bytes.Contains(body, []byte(metaVersionKey)) {
		return false
	}
	var m struct {
		Params struct {
			Meta map[string]json.RawMessage `json:"_meta"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	_, ok := m.Params.Meta[metaVersionKey]
	return ok
}

// jsonContent reports whether a Content-Type is application/json, as the
// SDK decides it (parameters and case aside).
func jsonContent(ct string) bool {
	if ct == "application/json" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// accepts reports whether the Accept headers take JSON and event streams,
// as the SDK decides it: by base media type, wildcards included.
func accepts(h http.Header) (json, stream bool) {
	for _, v := range h.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			base, _, _ := strings.Cut(part, ";")
			switch strings.ToLower(strings.TrimSpace(base)) {
			case "application/json", "application/*":
				json = true
			case "text/event-stream", "text/*":
				stream = true
			case "*/*":
				json, stream = true, true
			}
		}
	}
	return json, stream
}

// writeError writes a JSON-RPC error answering the request with id (nil:
// null, for failures found before the message is read).
func writeError(w http.ResponseWriter, status int, code int64, id json.RawMessage, msg string) {
	writeRPCError(w, status, id, &jsonrpc.Error{Code: code, Message: msg})
}

func writeRPCError(w http.ResponseWriter, status int, id json.RawMessage, e *jsonrpc.Error) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	h.Del("X-Content-Type-Options")
	w.WriteHeader(status)
	_, _ = w.Write(append(wire.AppendError(nil, id, e), '\n'))
}

// sdkWriter is the response writer the SDK's handlers get: it passes
// everything through, except the plain-text errors the SDK writes with
// http.Error for what the edge did not refuse first, which it turns into
// JSON-RPC errors answering the request (finish writes them).
type sdkWriter struct {
	http.ResponseWriter
	id     json.RawMessage // the request's id, if known
	status int             // of a plain-text error held back; 0 if none
	text   []byte
}

func (w *sdkWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 400 && strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		w.status = code
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *sdkWriter) Write(p []byte) (int, error) {
	if w.status != 0 {
		w.text = append(w.text, p...)
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

func (w *sdkWriter) Flush() {
	if w.status == 0 {
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
}

func (w *sdkWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// errNotHandled begins the SDK's text for a method it does not serve
// (jsonrpc2.ErrNotHandled, unexported).
const errNotHandled = "JSON RPC not handled"

// finish writes the JSON-RPC error of a plain-text error held back.
func (w *sdkWriter) finish() {
	if w.status == 0 {
		return
	}
	msg := strings.TrimSpace(string(w.text))
	code := int64(jsonrpc.CodeInvalidRequest)
	switch {
	case w.status >= 500:
		code = jsonrpc.CodeInternalError
	case strings.HasPrefix(msg, errNotHandled):
		code = jsonrpc.CodeMethodNotFound
	}
	writeError(w.ResponseWriter, w.status, code, w.id, msg)
}
