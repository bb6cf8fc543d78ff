package frontend

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/frontend/session"
)

// The gateway's side of the session table (package session): its counts
// for metrics, the answer to a refused initialize, and the idle expiry.

// SessionStats are the numbers the session limits act on.
type SessionStats = session.Stats

// SessionStats returns the session counts, for metrics.
func (g *Gateway) SessionStats() SessionStats { return g.sessions.Stats() }

// refuseSession answers an initialize refused by a session limit.
func (g *Gateway) refuseSession(w http.ResponseWriter, req *request, err error) {
	status := http.StatusServiceUnavailable
	if errors.Is(err, session.ErrTooManyForUser) {
		status = http.StatusTooManyRequests
	}
	if now := time.Now().Unix(); g.sessionWarned.Load() <= now-60 {
		g.sessionWarned.Store(now)
		g.logger.Warn("session limit reached: initialize refused (logged once a minute; counted in vmcp_sessions_refused_total)", "error", err)
	}
	w.Header().Set("Retry-After", "60")
	writeError(w, status, codeServerError, req.id, "vmcp: "+err.Error())
}

// codeServerError is JSON-RPC's generic implementation-defined server
// error, for refusals that are no fault of the request.
const codeServerError = -32000

// expireSessions closes idle sessions until ctx is done; with a shared
// store it also moves the records' expiry of the sessions used (touch).
func (g *Gateway) expireSessions(ctx context.Context) {
	session.Expire(ctx, g.sessions, g.opts.SessionIdleTimeout, func() map[*mcp.ServerSession]bool {
		m := map[*mcp.ServerSession]bool{}
		for ss := range g.server.Sessions() {
			m[ss] = true
		}
		return m
	}, g.touch)
}

// statusRecorder notes the status of a response.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
