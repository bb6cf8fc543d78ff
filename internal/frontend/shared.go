package frontend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/frontend/session"
	"github.com/vmcp-dev/vmcp/internal/identity"
	"github.com/vmcp-dev/vmcp/internal/mcpsession"
)

// Sessions on any replica. With Options.Sessions set, every 2025-11-25
// session is also a record in the shared store (mcpsession.Record: owner,
// protocol version, initialize parameters, log level, subscriptions), and
// a replica that does not hold a session it is asked for connects a copy
// of it from its record (restore): a go-sdk session with the record's
// state on a transport of vmcp's own, served by serveStateful. Backend
// sessions are made lazily on the replica that serves a call, as for any
// new session.
//
// The request path does not wait for the store: a replica holding a copy
// serves it from memory. Copies stay right through the store's change
// announcements: a copy whose record changed elsewhere (log level,
// subscriptions) is marked stale and brought up to date before its next
// request (refresh, one read); one whose record ended (DELETE anywhere) is
// closed at once. Uses move the record's expiry in batches, from the
// sweep (touch), never on the request path.

// storeTimeout bounds the store calls of a request (restore, refresh,
// writes) and of each sweep's touches.
const storeTimeout = 5 * time.Second

// record is what the store keeps of a session that was just initialized.
func (g *Gateway) record(ss *mcp.ServerSession, user, version string) (*mcpsession.Record, error) {
	init, err := json.Marshal(ss.InitializeParams())
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &mcpsession.Record{ID: ss.ID(), Owner: user, ProtocolVersion: version, Initialize: init,
		Created: now, ExpiresAt: now.Add(g.opts.SessionIdleTimeout)}, nil
}

// share stores a new session's record; on failure the session is ended
// (the client is told to try again: an initialize that the other replicas
// cannot see would fail there).
func (g *Gateway) share(ctx context.Context, ss *mcp.ServerSession, user string, res mcp.Result) error {
	st := g.opts.Sessions
	if st == nil {
		return nil
	}
	version := ""
	if ir, ok := res.(*mcp.InitializeResult); ok {
		version = ir.ProtocolVersion
	}
	rec, err := g.record(ss, user, version)
	s := g.sessions.ByKey(mcpsession.Key(ss.ID()))
	if s != nil {
		s.Version.Store(1) // what the put makes it: its own announcement is not a change
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		err = st.PutSession(ctx, rec)
		cancel()
	}
	if err != nil {
		g.logger.Warn("storing a new session failed; the session is ended", "error", err)
		g.sessions.Close(ss.ID())
		// Ended once the error answer is out (serveStateful): closed now,
		// the answer's stream could close before the answer is written.
		g.unshared.Store(ss.ID(), ss)
		return &jsonrpc.Error{Code: codeServerError, Message: "vmcp: session storage unavailable; try again"}
	}
	return nil
}

// writeUnavailable answers a request that needs the store while it is
// down.
func writeUnavailable(w http.ResponseWriter, id json.RawMessage) {
	w.Header().Set("Retry-After", "5")
	writeError(w, http.StatusServiceUnavailable, codeServerError, id, "vmcp: session storage unavailable; try again")
}

// writeNoSession answers a request for a session that is not there.
func writeNoSession(w http.ResponseWriter, id json.RawMessage) {
	writeError(w, http.StatusNotFound, jsonrpc.CodeInvalidRequest, id, "session not found: it ended or never existed; send initialize to start a new one")
}

// restore makes a local copy of a session this replica does not hold,
// from its record, for a caller that owns it. It answers the request
// itself when it cannot (no record: 404; another owner: 403; the store
// down: 503).
func (g *Gateway) restore(w http.ResponseWriter, r *http.Request, req *request, id string) *session.Session {
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	rec, err := g.opts.Sessions.GetSession(ctx, id)
	cancel()
	switch {
	case errors.Is(err, mcpsession.ErrNotFound):
		writeNoSession(w, req.id)
		return nil
	case err != nil:
		g.logger.Warn("reading a session from the store failed", "error", err)
		writeUnavailable(w, req.id)
		return nil
	case rec.Owner != "" && rec.Owner != identity.From(r.Context()).Key():
		writeError(w, http.StatusForbidden, jsonrpc.CodeInvalidRequest, req.id, "the session belongs to another user")
		return nil
	}
	var init mcp.InitializeParams
	if err := json.Unmarshal(rec.Initialize, &init); err != nil {
		g.logger.Error("a stored session cannot be read; it is ended", "error", err)
		writeNoSession(w, req.id)
		return nil
	}
	t := &mcp.StreamableServerTransport{SessionID: id}
	ss, err := g.server.Connect(context.Background(), t, &mcp.ServerSessionOptions{State: &mcp.ServerSessionState{
		InitializeParams: &init, InitializedParams: &mcp.InitializedParams{},
		NegotiatedProtocolVersion: rec.ProtocolVersion, LogLevel: mcp.LoggingLevel(rec.LogLevel),
	}})
	if err != nil {
		g.logger.Error("connecting a stored session failed", "error", err)
		writeError(w, http.StatusInternalServerError, jsonrpc.CodeInternalError, req.id, "vmcp: the session could not be resumed")
		return nil
	}
	sess, added := g.sessions.Adopt(ss, t, rec.Owner, rec.Version)
	if !added { // another request restored it first
		go ss.Close()
		return sess
	}
	g.logger.Debug("session resumed from the store", "subscriptions", len(rec.Subscriptions))
	if rec.LogLevel != "" {
		g.keepPeer(ss, func(p *peer) { p.logLevel = mcp.LoggingLevel(rec.LogLevel) })
	}
	for _, uri := range rec.Subscriptions {
		g.replay(r.Context(), sess, "resources/subscribe", &mcp.SubscribeParams{URI: uri})
	}
	return sess
}

// refresh brings a stale copy up to date with its record before a request
// of the owner is served; it answers the request itself (404) if the
// session ended. While the store is down the copy serves as it is.
func (g *Gateway) refresh(w http.ResponseWriter, r *http.Request, req *request, sess *session.Session) bool {
	sess.Stale.Store(false) // a change announced from now on marks it again
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	rec, err := g.opts.Sessions.GetSession(ctx, sess.Server().ID())
	cancel()
	switch {
	case errors.Is(err, mcpsession.ErrNotFound):
		g.endCopy(sess)
		writeNoSession(w, req.id)
		return false
	case err != nil:
		sess.Stale.Store(true)
		return true
	case rec.Version == sess.Version.Load():
		return true
	}
	if lvl := mcp.LoggingLevel(rec.LogLevel); lvl != "" && lvl != g.logLevel(sess.Server()) {
		g.replay(r.Context(), sess, "logging/setLevel", &mcp.SetLoggingLevelParams{Level: lvl})
	}
	held := g.subs.uris(sess.Server())
	for _, uri := range rec.Subscriptions {
		if !slices.Contains(held, uri) {
			g.replay(r.Context(), sess, "resources/subscribe", &mcp.SubscribeParams{URI: uri})
		}
	}
	for _, uri := range held {
		if !slices.Contains(rec.Subscriptions, uri) {
			g.replay(r.Context(), sess, "resources/unsubscribe", &mcp.UnsubscribeParams{URI: uri})
		}
	}
	sess.Version.Store(rec.Version)
	return true
}

// logLevel is the log level this replica's copy of ss has ("" for none).
func (g *Gateway) logLevel(ss *mcp.ServerSession) mcp.LoggingLevel {
	g.peersMu.Lock()
	p := g.peers[ss]
	g.peersMu.Unlock()
	if p == nil {
		return ""
	}
	return p.LogLevel()
}

// replayKey marks, in a request's TokenInfo, a request vmcp sends to its
// own copy of a session to bring it to the state of its record: the
// handlers apply it and do not store it again.
const replayKey = "vmcp.replay"

var replayID atomic.Int64

// replay sends a request to this replica's copy of sess through its
// transport, as the client's own would arrive, with the caller's identity
// (the owner's), and waits for the answer.
func (g *Gateway) replay(ctx context.Context, sess *session.Session, method string, params any) {
	p, _ := json.Marshal(params)
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "vmcp-replay-" + strconv.FormatInt(replayID.Add(1), 10),
		"method": method, "params": json.RawMessage(p)})
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	r, _ := http.NewRequestWithContext(context.WithValue(ctx, replayCtxKey{}, true), http.MethodPost, "/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	r.Header.Set("Mcp-Session-Id", sess.Server().ID())
	r.Header.Set("Authorization", "Bearer vmcp-replay") // for the SDK's bearer middleware; the identity is the context's
	if ip := sess.Server().InitializeParams(); ip != nil && revision(ip.ProtocolVersion) >= 0 {
		r.Header.Set("Mcp-Protocol-Version", ip.ProtocolVersion)
	}
	rec := httptest.NewRecorder()
	g.statefulAuthed.ServeHTTP(rec, r)
	if out := rec.Body.String(); rec.Code != http.StatusOK || bytes.Contains(rec.Body.Bytes(), []byte(`"error"`)) {
		g.logger.Warn("bringing a session copy up to date failed", "method", method, "status", rec.Code, "answer", out)
	}
}

type replayCtxKey struct{}

// replayed reports whether req was sent by replay.
func replayed(req mcp.Request) bool {
	extra := req.GetExtra()
	return extra != nil && extra.TokenInfo != nil && extra.TokenInfo.Extra[replayKey] == true
}

// storeChange records a change of a session's state in its record (not
// for replayed requests). It returns an error for the client if the store
// could not take it.
func (g *Gateway) storeChange(ctx context.Context, req mcp.Request, change func(*mcpsession.Record)) error {
	st := g.opts.Sessions
	ss, _ := req.GetSession().(*mcp.ServerSession)
	if st == nil || ss == nil || ss.ID() == "" || replayed(req) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	rec, err := mcpsession.Update(ctx, st, ss.ID(), change)
	if err != nil {
		g.logger.Warn("storing a session change failed", "error", err)
		return &jsonrpc.Error{Code: codeServerError, Message: fmt.Sprintf("vmcp: the change was made on this replica but could not be stored for the others (%v); try again", err)}
	}
	if s := g.sessions.ByKey(mcpsession.Key(ss.ID())); s != nil {
		s.Version.Store(rec.Version)
	}
	return nil
}

// sessionChanged applies a change the store announces: a session ended
// anywhere ends here; a copy whose record changed is refreshed before its
// next request; after a gap in the announcements every copy is.
func (g *Gateway) sessionChanged(c mcpsession.Change) {
	if c.All {
		for _, s := range g.sessions.List() {
			s.Stale.Store(true)
		}
		return
	}
	s := g.sessions.ByKey(c.Key)
	switch {
	case s == nil:
	case c.Version == 0:
		go g.endCopy(s)
	case c.Version > s.Version.Load(): // announcements of older versions may come late
		s.Stale.Store(true)
	}
}

// endCopy closes this replica's copy of a session that ended elsewhere.
func (g *Gateway) endCopy(s *session.Session) {
	g.sessions.Close(s.Server().ID())
	_ = s.Server().Close()
}

// endShared ends a session everywhere (DELETE): its record first, so that
// no replica restores it again; the local copy is closed by the caller.
func (g *Gateway) endShared(r *http.Request, id string) error {
	if g.opts.Sessions == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	return g.opts.Sessions.DeleteSession(ctx, id)
}

// touch moves the records' expiry of the sessions used here since the last
// touch; a session whose record is gone (expired, deleted while this
// replica missed it) ends here.
func (g *Gateway) touch(ctx context.Context) {
	st := g.opts.Sessions
	if st == nil {
		return
	}
	var used []*session.Session
	for _, s := range g.sessions.List() {
		if s.LastUsed() > s.Touched.Load() {
			used = append(used, s)
		}
	}
	for _, s := range used {
		last := s.LastUsed()
		tctx, cancel := context.WithTimeout(ctx, storeTimeout)
		err := st.TouchSession(tctx, s.Server().ID(), time.Unix(0, last).Add(g.opts.SessionIdleTimeout))
		cancel()
		switch {
		case err == nil:
			s.Touched.Store(last)
		case errors.Is(err, mcpsession.ErrNotFound):
			g.endCopy(s)
		default:
			if ctx.Err() == nil {
				g.logger.Warn("moving the expiry of used sessions failed; trying again at the next sweep", "error", err)
			}
			return
		}
	}
}

// serveStateful serves a request of the stateful era: a session this
// replica restored from the store on its own transport, everything else
// with the SDK's handler.
func (g *Gateway) serveStateful(w http.ResponseWriter, r *http.Request) {
	var s *session.Session
	if id := r.Header.Get("Mcp-Session-Id"); id != "" && g.opts.Sessions != nil {
		// By ID, not by record key: no hash per request. The edge has
		// checked the owner already; a session of another owner (none
		// reaches here) would go to the SDK, which refuses it.
		s, _ = g.sessions.Lookup(id, identity.From(r.Context()).Key())
	}
	if s == nil || s.Transport() == nil {
		g.stateful.ServeHTTP(w, r)
		if id := w.Header().Get("Mcp-Session-Id"); id != "" {
			if ss, ok := g.unshared.LoadAndDelete(id); ok {
				_ = ss.(*mcp.ServerSession).Close()
			}
		}
		return
	}
	if r.Method == http.MethodDelete {
		g.sessions.Close(s.ID())
		_ = s.Server().Close()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.Transport().ServeHTTP(w, r)
}
