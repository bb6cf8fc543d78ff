package frontend

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

const (
	// ModernVersion is the first stateless protocol revision.
	ModernVersion  = "2026-07-28"
	metaVersionKey = "io.modelcontextprotocol/protocolVersion"
)

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// putBuf returns b to bufPool, unless it grew large (a large result): a
// pooled buffer would keep that memory for as long as it circulates.
func putBuf(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 {
		bufPool.Put(b)
	}
}

// ServeHTTP serves the MCP endpoint: the Origin check and CORS, then
// authentication, then the era decision and the SDK handler of that era.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if !g.originAllowed(origin) {
		writeError(w, http.StatusForbidden, jsonrpc.CodeInvalidRequest, fmt.Sprintf("origin %q is not allowed", origin))
		return
	}
	if origin != "" {
		setCORS(w.Header(), origin)
	}
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	g.endpoint.ServeHTTP(w, r)
}

// serveEndpoint serves an authenticated request.
func (g *Gateway) serveEndpoint(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		g.servePost(w, r)
	case http.MethodGet, http.MethodDelete:
		if v := r.Header.Get("Mcp-Protocol-Version"); v >= ModernVersion {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, jsonrpc.CodeInvalidRequest, "the "+ModernVersion+" protocol has no "+r.Method+" on the MCP endpoint")
			return
		}
		sid := r.Header.Get("Mcp-Session-Id")
		known := g.sessions.get(sid) != nil
		if r.Method == http.MethodGet && known && g.detachGET(w, r) {
			return
		}
		if r.Method == http.MethodGet || !known {
			g.sdk(g.stateful, w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		g.sdk(g.stateful, rec, r)
		if rec.status == http.StatusNoContent {
			g.sessions.remove(sid)
		}
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeError(w, http.StatusMethodNotAllowed, jsonrpc.CodeInvalidRequest, "method not allowed")
	}
}

func (g *Gateway) servePost(w http.ResponseWriter, r *http.Request) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer putBuf(buf)
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, g.opts.MaxRequestBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, jsonrpc.CodeInvalidRequest,
				fmt.Sprintf("request body exceeds %d bytes", tooBig.Limit))
			return
		}
		writeError(w, http.StatusBadRequest, jsonrpc.CodeParseError, "reading request body: "+err.Error())
		return
	}
	body := buf.Bytes()
	if !utf8.Valid(body) {
		writeError(w, http.StatusBadRequest, jsonrpc.CodeParseError, "request body is not valid UTF-8")
		return
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '[' {
		writeError(w, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, "JSON-RPC batches are not supported: send one message per request")
		return
	}
	if !json.Valid(body) {
		writeError(w, http.StatusBadRequest, jsonrpc.CodeParseError, "the request body is not valid JSON")
		return
	}
	if hasNullID(body) {
		writeError(w, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, "the id of a request must be a string or an integer, not null")
		return
	}
	sid := r.Header.Get("Mcp-Session-Id")
	sess := g.sessions.get(sid)
	if sess != nil {
		sess.begin()
		defer sess.end()
		if g.fastPath(w, r, body, sess) || fastCancel(w, body, sess) {
			return
		}
	} else if sid == "" && g.fastPath(w, r, body, nil) {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	if isModern(r.Header, body) {
		g.sdk(g.stateless, w, r)
		return
	}
	if r.Header.Get("Mcp-Session-Id") == "" && methodOf(body) != "initialize" {
		writeError(w, http.StatusBadRequest, jsonrpc.CodeInvalidRequest,
			"no Mcp-Session-Id: send initialize first (or use the "+ModernVersion+" protocol, which has no sessions)")
		return
	}
	g.sdk(g.stateful, w, r)
}

// methodOf returns the method of a JSON-RPC message ("" for a response).
func methodOf(body []byte) string {
	var m struct {
		Method string `json:"method"`
	}
	_ = json.Unmarshal(body, &m)
	return m.Method
}

// isModern decides the era of a POST: the 2026-07-28 revision is chosen by
// its protocol version header, or by the protocol version in _meta that
// every modern request carries. Everything else (initialize, requests of a
// session) is legacy.
func isModern(h http.Header, body []byte) bool {
	if v := h.Get("Mcp-Protocol-Version"); v != "" {
		return v >= ModernVersion
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

// hasNullID reports whether body is a message whose id is null, which
// JSON-RPC as MCP uses it forbids (-32600); the SDK would answer it with a
// plain-text 400 and no JSON-RPC error.
func hasNullID(body []byte) bool {
	if !bytes.Contains(body, []byte("null")) {
		return false
	}
	var m struct {
		ID json.RawMessage `json:"id"`
	}
	return json.Unmarshal(body, &m) == nil && string(m.ID) == "null"
}

// originAllowed accepts requests without an Origin (non-browser clients),
// loopback origins, and the configured ones.
func (g *Gateway) originAllowed(origin string) bool {
	if origin == "" {
		return true
	}
	o := strings.TrimSuffix(strings.ToLower(origin), "/")
	if g.origins[o] {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	switch u.Hostname() {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
}

func setCORS(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Vary", "Origin")
	h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, Last-Event-ID, Mcp-Session-Id, Mcp-Protocol-Version, Mcp-Method, Mcp-Name")
	h.Set("Access-Control-Expose-Headers", "Mcp-Session-Id, WWW-Authenticate")
}

// writeError writes a JSON-RPC error with a null id, for failures found
// before the message is read.
func writeError(w http.ResponseWriter, status int, code int64, msg string) {
	m, _ := json.Marshal(msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"jsonrpc":"2.0","id":null,"error":{"code":%d,"message":%s}}`+"\n", code, m)
}

// Health is the body of /readyz.
type Health struct {
	Ready    bool  `json:"ready"`
	Backends []any `json:"backends"`
}

// ServeReady answers /readyz: 200 when [Gateway.Ready], else 503, with the
// state of every backend.
func (g *Gateway) ServeReady(w http.ResponseWriter, _ *http.Request) {
	h := Health{Ready: g.Ready(), Backends: []any{}}
	for _, s := range g.backends.Statuses() {
		h.Backends = append(h.Backends, s)
	}
	w.Header().Set("Content-Type", "application/json")
	if !h.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(h)
}
