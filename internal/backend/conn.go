package backend

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strconv"
	"strings"
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
	token any        // the client's progress token, or nil
	fault *callFault // the guard's count of progress notifications sent ahead of the answer, or nil
	busy  int        // notifications being relayed to the call's stream; guarded by Conn.mu
	// progressed counts the progress notifications relayed; guarded by
	// Conn.mu.
	progressed int32
}

// The SDK hands a backend's answer over at once, but the notifications the
// backend sent before it on another goroutine, so the last ones can still be
// on their way when the call returns; relayed after the answer, they could
// no longer go on the call's stream, where the client expects them. So a
// call ends only when what was sent ahead of its answer is relayed:
//
//   - progress notifications exactly: the guard counts those it passes to
//     the SDK ahead of the answer (callFault.progress) and the call waits
//     until as many are relayed, at most progressWaitMax (a client that
//     does not read its stream);
//   - log messages, which cannot be told apart per call on a shared
//     connection, by a grace of progressGrace, and relays already under
//     way up to progressGraceMax.
const (
	progressGrace    = 2 * time.Millisecond
	progressGraceMax = 50 * time.Millisecond
	progressWaitMax  = 5 * time.Second
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
	cl.fault, _ = ctx.Value(faultKey{}).(*callFault)
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
				if cl.fault != nil {
					t := progressToken(cl.id)
					cl.fault.token.Store(&t)
				}
			}
		}
	}
	return func() {
		if peer.LogLevel() != "" {
			time.Sleep(progressGrace)
		}
		// Relays that found the call in flight finish on its stream before
		// the call is forgotten; the check and the removal are one step
		// under c.mu, where relays take the call.
		var deadline time.Time
		progressDeadline := time.Now().Add(progressWaitMax)
		for {
			c.mu.Lock()
			now := time.Now()
			behind := cl.fault != nil && cl.progressed < cl.fault.progress.Load() && now.Before(progressDeadline)
			if !behind && (cl.busy == 0 || !deadline.IsZero() && now.After(deadline)) {
				delete(c.calls, cl.id)
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			if deadline.IsZero() {
				deadline = now.Add(progressGraceMax)
			}
			time.Sleep(progressGrace / 4)
		}
	}
}

func progressToken(id uint64) string { return "vmcp-" + strconv.FormatUint(id, 10) }

// target returns the call a backend-initiated message belongs to: on an
// owned connection, the newest call in flight (or the session itself); on a
// shared one, the only call in flight. The call is nil when the message
// goes to the owner outside any call.
func (c *Conn) target() (*call, Peer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.targetLocked()
}

func (c *Conn) targetLocked() (*call, Peer, bool) {
	var newest *call
	for _, cl := range c.calls {
		if newest == nil || cl.id > newest.id {
			newest = cl
		}
	}
	switch {
	case c.owner != nil:
		return newest, c.owner, true
	case len(c.calls) == 1:
		return newest, newest.peer, true
	}
	return nil, nil, false
}

// callContext is the context a message for cl is relayed with: the call's,
// so that it goes on the call's stream, or none outside a call.
func callContext(cl *call) context.Context {
	if cl == nil {
		return context.Background()
	}
	return cl.ctx
}

func (c *Conn) progress(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
	tok, _ := r.Params.ProgressToken.(string)
	c.mu.Lock()
	var cl *call
	for _, x := range c.calls {
		if x.token != nil && progressToken(x.id) == tok {
			cl = x
			cl.busy++
			break
		}
	}
	c.mu.Unlock()
	if cl == nil {
		return // the call has ended: nothing is sent after its response
	}
	defer c.relayed(cl, true)
	p := *r.Params
	p.ProgressToken = cl.token
	if err := cl.peer.Progress(cl.ctx, &p); err != nil {
		c.backend.logger.Debug("progress not relayed", "error", err)
	}
}

// relayed ends a relay to cl begun under c.mu; progress counts it as one
// of the call's progress notifications.
func (c *Conn) relayed(cl *call, progress bool) {
	c.mu.Lock()
	cl.busy--
	if progress {
		cl.progressed++
	}
	c.mu.Unlock()
}

// logMessage relays a backend's log message to the client that asked for
// it: on the stream of the call in flight, or (after the call, or if its
// stream is gone) on the session's own stream.
func (c *Conn) logMessage(_ context.Context, r *mcp.LoggingMessageRequest) {
	c.mu.Lock()
	cl, peer, ok := c.targetLocked()
	if ok && cl != nil {
		cl.busy++
	}
	c.mu.Unlock()
	if cl != nil {
		defer c.relayed(cl, false)
	}
	if !ok || peer.LogLevel() == "" {
		c.backend.logger.Debug("backend log message not relayed: no client asked for it", "level", r.Params.Level)
		return
	}
	err := peer.Log(callContext(cl), r.Params)
	if err != nil && cl != nil {
		err = peer.Log(context.Background(), r.Params)
	}
	if err != nil {
		c.backend.logger.Debug("log message not relayed", "error", err)
	}
}

func (c *Conn) createMessage(_ context.Context, r *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
	cl, peer, ok := c.target()
	if !ok {
		return nil, errNoPeer
	}
	ctx := callContext(cl)
	if caps := peer.Capabilities(); caps == nil || caps.Sampling == nil {
		return nil, refused("sampling")
	}
	return peer.CreateMessage(ctx, r.Params)
}

func (c *Conn) elicit(_ context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
	cl, peer, ok := c.target()
	if !ok {
		return nil, errNoPeer
	}
	ctx := callContext(cl)
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
	if err == nil || isAnswer(err) {
		return false
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// isAnswer reports whether err is an error answer of the backend (a
// JSON-RPC error it sent). The go-sdk's client marks a request that did
// not get through (a network error, an HTTP error) with a JSON-RPC error
// of its own, -32005 "rejected by transport": that is no answer.
func isAnswer(err error) bool {
	var rpcErr *jsonrpc.Error
	return errors.As(err, &rpcErr) && !sdkRejected(rpcErr)
}

func sdkRejected(e *jsonrpc.Error) bool {
	return e.Code == -32005 && e.Message == "rejected by transport"
}

// noAnswer returns err without the go-sdk's JSON-RPC marker of a request
// that did not get through (see isAnswer), so that no one takes it for
// the backend's answer.
func noAnswer(err error) error {
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || !sdkRejected(rpcErr) {
		return err
	}
	return errors.New(strings.Replace(err.Error(), " rejected by transport:", "", 1))
}
