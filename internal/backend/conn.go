package backend

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/identity"
)

// Conn is one MCP client session to a backend. It tracks the calls in
// flight on it, so that what the backend sends during a call (progress, log
// messages, sampling and elicitation requests) reaches the right client.
type Conn struct {
	backend *Backend
	owner   Peer               // the only client session using this connection, or nil
	user    *identity.Identity // the user whose credentials it carries, or nil
	session *mcp.ClientSession
	cancel  context.CancelFunc // ends the context the connection was made with
	raw     *rawConn           // for requests sent without the SDK; nil if not streamable HTTP

	unauthorized atomic.Bool  // the backend answered 401
	lastUsed     atomic.Int64 // unix nanoseconds, for closing idle per-user connections

	mu       sync.Mutex // guards the fields below
	calls    map[uint64]*call
	nextID   uint64
	logLevel mcp.LoggingLevel // last level sent to the backend
}

// call is one request in flight on a connection.
type call struct {
	id    uint64
	ctx   context.Context // the client's request context, for the call's lifetime only
	peer  Peer
	token any          // the client's progress token, or nil
	busy  atomic.Int32 // progress notifications being relayed
}

// progressGrace is how long a call that asked for progress waits, after
// the backend's answer, for progress the backend sent just before it: the
// SDK hands answers over at once but notifications on another goroutine,
// so the last one can still be on its way. Waiting keeps it ahead of the
// answer, where the client expects it.
const (
	progressGrace    = 2 * time.Millisecond
	progressGraceMax = 50 * time.Millisecond
)

// errNoPeer is returned to a backend whose request cannot be attributed to
// one client.
var errNoPeer = &jsonrpc.Error{
	Code:    jsonrpc.CodeInvalidRequest,
	Message: "vmcp: this request cannot be relayed: no single client call it belongs to is in flight on this connection",
}

// clientOptions returns the client options of a connection: shared
// connections declare sampling and elicitation (so that backends which
// adapt their tools to client capabilities show every tool) and refuse them
// per call when the caller lacks them; an owned connection declares exactly
// what its client declared.
func (c *Conn) clientOptions(logger *slog.Logger) *mcp.ClientOptions {
	opts := &mcp.ClientOptions{
		Logger:                      logger,
		CreateMessageHandler:        c.createMessage,
		ElicitationHandler:          c.elicit,
		LoggingMessageHandler:       c.logMessage,
		ProgressNotificationHandler: c.progress,
	}
	caps := &mcp.ClientCapabilities{
		Sampling:    &mcp.SamplingCapabilities{},
		Elicitation: &mcp.ElicitationCapabilities{Form: &mcp.FormElicitationCapabilities{}},
	}
	if c.owner != nil {
		caps = &mcp.ClientCapabilities{}
		if pc := c.owner.Capabilities(); pc != nil {
			caps.Sampling, caps.Elicitation = pc.Sampling, pc.Elicitation
		}
		if caps.Sampling == nil {
			opts.CreateMessageHandler = nil
		}
		if caps.Elicitation == nil {
			opts.ElicitationHandler = nil
		}
	} else {
		opts.ToolListChangedHandler = func(context.Context, *mcp.ToolListChangedRequest) { c.backend.refreshSoon() }
		opts.PromptListChangedHandler = func(context.Context, *mcp.PromptListChangedRequest) { c.backend.refreshSoon() }
		opts.ResourceListChangedHandler = func(context.Context, *mcp.ResourceListChangedRequest) { c.backend.refreshSoon() }
		opts.ResourceUpdatedHandler = func(ctx context.Context, r *mcp.ResourceUpdatedNotificationRequest) {
			c.backend.resourceUpdated(ctx, r.Params)
		}
	}
	opts.Capabilities = caps
	return opts
}

// begin registers a call made for peer. If params carry the client's
// progress token, it is replaced (in a copy of _meta) by one unique on this
// connection. The returned func must be called when the call ends; after it,
// nothing more is relayed for the call.
func (c *Conn) begin(ctx context.Context, peer Peer, params mcp.Params) func() {
	if peer == nil {
		return func() {}
	}
	c.mu.Lock()
	c.nextID++
	cl := &call{id: c.nextID, ctx: ctx, peer: peer}
	if c.calls == nil {
		c.calls = map[uint64]*call{}
	}
	c.calls[cl.id] = cl
	c.mu.Unlock()
	if params != nil { // nil for a raw call, which carries no progress token
		if meta := params.GetMeta(); meta != nil {
			if tok, ok := meta["progressToken"]; ok && tok != nil {
				cl.token = tok
				m := maps.Clone(meta)
				m["progressToken"] = progressToken(cl.id)
				params.SetMeta(m)
			}
		}
	}
	return func() {
		if cl.token != nil {
			time.Sleep(progressGrace)
			for deadline := time.Now().Add(progressGraceMax); cl.busy.Load() > 0 && time.Now().Before(deadline); {
				time.Sleep(progressGrace / 4)
			}
		}
		c.mu.Lock()
		delete(c.calls, cl.id)
		c.mu.Unlock()
	}
}

func progressToken(id uint64) string { return "vmcp-" + strconv.FormatUint(id, 10) }

// target returns the call a backend-initiated message belongs to: on an
// owned connection, the newest call in flight (or the session itself); on a
// shared one, the only call in flight.
func (c *Conn) target() (context.Context, Peer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var newest *call
	for _, cl := range c.calls {
		if newest == nil || cl.id > newest.id {
			newest = cl
		}
	}
	switch {
	case c.owner != nil && newest != nil:
		return newest.ctx, c.owner, true
	case c.owner != nil:
		return context.Background(), c.owner, true
	case len(c.calls) == 1:
		return newest.ctx, newest.peer, true
	}
	return nil, nil, false
}

func (c *Conn) progress(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
	tok, _ := r.Params.ProgressToken.(string)
	c.mu.Lock()
	var cl *call
	for _, x := range c.calls {
		if x.token != nil && progressToken(x.id) == tok {
			cl = x
			cl.busy.Add(1)
			break
		}
	}
	c.mu.Unlock()
	if cl == nil {
		return // the call has ended: nothing is sent after its response
	}
	defer cl.busy.Add(-1)
	p := *r.Params
	p.ProgressToken = cl.token
	if err := cl.peer.Progress(cl.ctx, &p); err != nil {
		c.backend.logger.Debug("progress not relayed", "error", err)
	}
}

func (c *Conn) logMessage(_ context.Context, r *mcp.LoggingMessageRequest) {
	ctx, peer, ok := c.target()
	if !ok || peer.LogLevel() == "" {
		c.backend.logger.Debug("backend log message not relayed: no client asked for it", "level", r.Params.Level)
		return
	}
	if err := peer.Log(ctx, r.Params); err != nil {
		c.backend.logger.Debug("log message not relayed", "error", err)
	}
}

func (c *Conn) createMessage(_ context.Context, r *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
	ctx, peer, ok := c.target()
	if !ok {
		return nil, errNoPeer
	}
	if caps := peer.Capabilities(); caps == nil || caps.Sampling == nil {
		return nil, refused("sampling")
	}
	return peer.CreateMessage(ctx, r.Params)
}

func (c *Conn) elicit(_ context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
	ctx, peer, ok := c.target()
	if !ok {
		return nil, errNoPeer
	}
	if caps := peer.Capabilities(); caps == nil || caps.Elicitation == nil {
		return nil, refused("elicitation")
	}
	return peer.Elicit(ctx, r.Params)
}

func refused(capability string) *jsonrpc.Error {
	return &jsonrpc.Error{
		Code:    jsonrpc.CodeMethodNotFound,
		Message: "vmcp: the calling client did not declare the " + capability + " capability",
	}
}

// syncLogLevel sends the owner's log level to the backend when it changed.
func (c *Conn) syncLogLevel(ctx context.Context) {
	if c.owner == nil {
		return
	}
	want := c.owner.LogLevel()
	c.mu.Lock()
	same := want == c.logLevel
	c.logLevel = want
	c.mu.Unlock()
	if same || want == "" {
		return
	}
	if caps := c.session.InitializeResult().Capabilities; caps == nil || caps.Logging == nil {
		return
	}
	if err := c.session.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: want}); err != nil {
		c.backend.logger.Debug("setting backend log level", "error", err)
	}
}

// isConnectionError reports whether err means the connection is gone (as
// opposed to an error answer from a live backend).
func isConnectionError(err error) bool {
	if err == nil {
		return false
	}
	var rpcErr *jsonrpc.Error
	if errors.As(err, &rpcErr) {
		return false
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}
