package frontend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/audit"
	"github.com/vmcp-dev/vmcp/internal/authz"
	"github.com/vmcp-dev/vmcp/internal/frontend/session"
	"github.com/vmcp-dev/vmcp/internal/identity"
	"github.com/vmcp-dev/vmcp/internal/router"
	"github.com/vmcp-dev/vmcp/internal/telemetry"
)

// The gateway's seams for telemetry (metrics and traces) and the audit log,
// gathered here so that the code serving requests calls each in one line.
// With both off (Options.Telemetry and Options.Audit nil) each is a nil
// check: nothing is allocated, no clock is read.
//
//   - observeSDK, around every message the SDK's path serves: its request
//     span and count (the fast path calls StartRequest itself);
//   - observeDecision, after every decision on an item: its span, a denial
//     for the request's count, its audit record;
//   - startCall and backendCall.end, around every request to a backend (on
//     the fast path too): its span (whose traceparent the backend gets),
//     latency and count by backend and tool, its audit record.

// observeSDK serves a message of the SDK's path (g.handle) under
// telemetry and the audit log: the request's trace context comes through
// the HTTP header (sdk hands it over; a session's handlers run in the
// session's context, not the request's).
func (g *Gateway) observeSDK(ctx context.Context, method string, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	session := ""
	if ss, ok := req.GetSession().(*mcp.ServerSession); ok && ss != nil {
		session = ss.ID()
	}
	if g.opts.Audit != nil {
		ctx = withSession(ctx, session)
	}
	tel := g.opts.Telemetry
	if tel == nil {
		return g.handle(ctx, method, req, next)
	}
	if extra := req.GetExtra(); extra != nil && extra.Header != nil {
		ctx = tel.Adopt(ctx, extra.Header)
	}
	tool := ""
	if r, ok := req.(*mcp.CallToolRequest); ok && g.Catalog().Tool(r.Params.Name) != nil {
		tool = r.Params.Name
	}
	ctx, op := tel.StartRequest(ctx, method, tool, session, "sdk")
	res, err := g.handle(ctx, method, req, next)
	op.End(requestOutcome(ctx, res, err))
	return res, err
}

// requestOutcome is how the SDK path answered.
func requestOutcome(ctx context.Context, res mcp.Result, err error) telemetry.Outcome {
	switch {
	case err != nil && ctx.Err() != nil:
		return telemetry.Cancelled
	case err != nil:
		return telemetry.Error
	}
	if r, ok := res.(*mcp.CallToolResult); ok && r != nil && r.IsError {
		return telemetry.ToolError
	}
	return telemetry.OK
}

// observed reports whether decisions and calls are observed at all.
func (g *Gateway) observed() bool { return g.opts.Telemetry != nil || g.opts.Audit != nil }

// observeDecision records the decision d on one item (kind and name, as
// in authorize) made since start for the caller p.
func (g *Gateway) observeDecision(ctx context.Context, start time.Time, d authz.Decision, p *authz.Principal,
	action authz.Action, kind, name string, args json.RawMessage) {
	tel, log := g.opts.Telemetry, g.opts.Audit
	if !tel.Tracing() && log == nil {
		tel.Decide(ctx, start, &telemetry.Decision{Allowed: d.Allowed}) // a denial, for the request's count
		return
	}
	resource := entityName(kind, name)
	tel.Decide(ctx, start, &telemetry.Decision{Action: string(action), Resource: resource, Allowed: d.Allowed,
		Policies: d.Reasons, Errors: len(d.Errors), ClaimSources: p.Sources()})
	if log == nil {
		return
	}
	rec := &audit.Decision{Who: g.who(ctx), Action: string(action), Resource: resource, Allowed: d.Allowed,
		Policies: d.Reasons, ClaimSources: p.Sources()}
	for _, e := range d.Errors {
		rec.Errors = append(rec.Errors, audit.EvalError{Policy: e.Policy, Position: e.Position})
	}
	if log.Claims() {
		rec.Claims = p.Claims.Values
	}
	if log.Arguments() {
		rec.Arguments = args
	}
	log.Decide(rec)
}

// who is the caller of ctx, for audit records.
func (g *Gateway) who(ctx context.Context) audit.Who {
	id := identity.From(ctx)
	w := audit.Who{Principal: id.Subject, Session: sessionOf(ctx), TraceID: g.opts.Telemetry.TraceID(ctx)}
	for _, k := range []string{"client_id", "azp"} {
		if c, ok := id.Claims[k].(string); ok && c != "" {
			w.ClientID = c
			break
		}
	}
	return w
}

// sessionKey carries the MCP session id of a request into the decisions
// and calls made for it, when the audit log is on.
type sessionKey struct{}

func withSession(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, sessionKey{}, id)
}

func sessionOf(ctx context.Context) string {
	s, _ := ctx.Value(sessionKey{}).(string)
	return s
}

// backendCall is a request to a backend under observation; the zero value
// observes nothing.
type backendCall struct {
	g       *Gateway
	tc      telemetry.Call
	start   time.Time // without telemetry, for the audit record's latency
	action  string
	backend string
	target  string // the audit record's resource
}

// startCall begins observing a request to backendName: method its MCP
// method, tool the catalog's name of the tool (tools/call) or "", original
// the backend's own name of the item, action, kind and name the item as
// decisions name it (Tool, Prompt, Resource; its advertised name). The
// returned context carries the call's span.
func (g *Gateway) startCall(ctx context.Context, backendName, method, tool, original string, action authz.Action, kind, name string) (context.Context, backendCall) {
	if !g.observed() {
		return ctx, backendCall{}
	}
	ctx, tc := g.opts.Telemetry.StartCall(ctx, backendName, method, tool, original)
	c := backendCall{g: g, tc: tc, action: string(action), backend: backendName}
	if g.opts.Audit != nil {
		c.target = entityName(kind, name)
		if g.opts.Telemetry == nil {
			c.start = time.Now() // else the call's latency is tc's
		}
	}
	return ctx, c
}

// entityName is the Cedar name of an item, as decisions and records show
// it: Vmcp::Tool::"name".
func entityName(kind, name string) string {
	return `Vmcp::` + kind + `::"` + name + `"`
}

// end records how the call ended: err its failure, toolError whether its
// result was an isError result, args its arguments (for the audit log).
func (c backendCall) end(ctx context.Context, err error, toolError bool, args json.RawMessage) {
	if c.g == nil {
		return
	}
	o := callOutcome(ctx, err, toolError)
	latency := c.tc.End(o, err)
	if log := c.g.opts.Audit; log != nil {
		if c.g.opts.Telemetry == nil {
			latency = time.Since(c.start)
		}
		rec := &audit.Call{Who: c.g.who(ctx), Action: c.action, Resource: c.target, Backend: c.backend,
			Latency: latency, Outcome: o.String()}
		if log.Arguments() {
			rec.Arguments = args
		}
		log.Called(rec)
	}
}

// callOutcome classifies how a request to a backend ended.
func callOutcome(ctx context.Context, err error, toolError bool) telemetry.Outcome {
	switch {
	case err == nil && toolError:
		return telemetry.ToolError
	case err == nil:
		return telemetry.OK
	case ctx.Err() != nil:
		return telemetry.Cancelled
	}
	if rpcErr := (*jsonrpc.Error)(nil); errors.As(err, &rpcErr) {
		return telemetry.Error
	}
	return telemetry.Failed
}

// noteMethod tells the edge the MCP method of a POST it admitted.
func (g *Gateway) noteMethod(w http.ResponseWriter, req *request) {
	if req.body != nil {
		g.opts.Telemetry.NoteMethod(w, req.method)
	}
}

// startFast begins an MCP request served by the fast path: t is the tool
// it calls (nil: none, or not in the catalog), sess its session (nil: a
// stateless request).
func (g *Gateway) startFast(ctx context.Context, method string, t *router.Tool, sess *session.Session) (context.Context, *telemetry.Request) {
	sid := ""
	if sess != nil {
		sid = sess.ID()
	}
	if g.opts.Audit != nil {
		ctx = withSession(ctx, sid)
	}
	tool := ""
	if t != nil {
		tool = t.Def.Name
	}
	return g.opts.Telemetry.StartRequest(ctx, method, tool, sid, "fast")
}

// observed reports whether the call is observed.
func (c backendCall) observed() bool { return c.g != nil }

// rawIsError reports whether a raw tools/call result is an error result.
func rawIsError(result json.RawMessage) bool {
	if !bytes.Contains(result, []byte(`"isError"`)) {
		return false
	}
	var r struct {
		IsError bool `json:"isError"`
	}
	return json.Unmarshal(result, &r) == nil && r.IsError
}
