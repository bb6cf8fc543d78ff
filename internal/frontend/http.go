package frontend

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

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

// ServeHTTP serves the MCP endpoint: the Host and Origin checks and CORS,
// then authentication, then the rest of the edge's checks (edge.go) and the
// path that serves the request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.guardHost(w, r) {
		return
	}
	origin := r.Header.Get("Origin")
	if !g.originAllowed(origin) {
		writeError(w, http.StatusForbidden, jsonrpc.CodeInvalidRequest, nil, fmt.Sprintf("origin %q is not allowed", origin))
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

// GuardHost wraps the gateway's other routes (health, metrics, the
// authorization server) in the Host check of the MCP endpoint, so that no
// page of another site reaches them through DNS rebinding either.
func (g *Gateway) GuardHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.guardHost(w, r) {
			next.ServeHTTP(w, r)
		}
	})
}

// serveEndpoint serves an authenticated request: the edge admits it, then
// the fast path or the SDK's handler of its era serves it.
func (g *Gateway) serveEndpoint(w http.ResponseWriter, r *http.Request) {
	var req request
	defer g.done(&req)
	if !g.admit(w, r, &req) {
		return
	}
	g.noteMethod(w, &req)
	switch r.Method {
	case http.MethodPost:
		if la := g.opts.LargeAnswers; la != nil {
			n := la.Answers()
			defer func() {
				if la.Answers() != n {
					la.Served()
				}
			}()
		}
		g.servePost(w, r, &req)
	case http.MethodGet:
		if !g.detachGET(w, r) {
			g.sdk(g.stateful, w, r, nil)
		}
	case http.MethodDelete:
		if err := g.endShared(r, req.sess.ID()); err != nil {
			g.logger.Warn("ending a session in the store failed", "error", err)
			writeUnavailable(w, nil)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		g.sdk(g.stateful, rec, r, nil)
		if rec.status == http.StatusNoContent {
			g.sessions.Close(req.sess.ID())
		}
	}
}

func (g *Gateway) servePost(w http.ResponseWriter, r *http.Request, req *request) {
	switch {
	case req.modern:
		if g.fastPath(w, r, req) {
			return
		}
	case req.sess != nil:
		if g.fastPath(w, r, req) || fastCancel(w, req) {
			return
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(req.body))
	r.ContentLength = int64(len(req.body))
	if req.modern {
		g.sdk(g.stateless, w, r, req.id)
		return
	}
	g.sdk(g.stateful, w, r, req.id)
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

// Health is the body of /readyz.
type Health struct {
	Ready        bool               `json:"ready"`
	Backends     []any              `json:"backends"`
	Dependencies []DependencyStatus `json:"dependencies,omitempty"`
}

// DependencyStatus is one dependency in /readyz.
type DependencyStatus struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
	Error string `json:"error,omitempty"`
}

// dependencyTimeout bounds each dependency check of /readyz.
const dependencyTimeout = 3 * time.Second

// ServeReady answers /readyz: 200 when [Gateway.Ready] and every
// dependency is, else 503, with the state of every backend and dependency.
func (g *Gateway) ServeReady(w http.ResponseWriter, r *http.Request) {
	h := Health{Ready: g.Ready(), Backends: []any{}}
	for _, s := range g.backends.Statuses() {
		h.Backends = append(h.Backends, s)
	}
	for _, d := range g.opts.Dependencies {
		ctx, cancel := context.WithTimeout(r.Context(), dependencyTimeout)
		err := d.Check(ctx)
		cancel()
		st := DependencyStatus{Name: d.Name, Ready: err == nil}
		if err != nil {
			st.Error = err.Error()
			h.Ready = false
		}
		h.Dependencies = append(h.Dependencies, st)
	}
	w.Header().Set("Content-Type", "application/json")
	if !h.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(h)
}
