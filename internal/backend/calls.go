package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/backendauth"
	"github.com/vmcp-dev/vmcp/internal/identity"
)

// UnavailableError is returned for a call to a backend that is not ready.
type UnavailableError struct {
	Backend string
	State   State
	Cause   error     // why it is down; nil while connecting
	NextTry time.Time // zero if unknown
}

func (e *UnavailableError) Error() string {
	msg := fmt.Sprintf("backend %q is unavailable (%s)", e.Backend, e.State)
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	if !e.NextTry.IsZero() {
		if d := time.Until(e.NextTry).Round(100 * time.Millisecond); d > 0 {
			msg += fmt.Sprintf("; next attempt in %s", d)
		}
	}
	return msg
}

func (e *UnavailableError) Unwrap() error { return e.Cause }

// CallError is a request to a backend that failed without an answer: the
// connection broke, or the backend did not answer in time. An error answer
// from a live backend is returned as is (a *jsonrpc.Error).
type CallError struct {
	Backend string
	Err     error
}

func (e *CallError) Error() string { return fmt.Sprintf("backend %q: %v", e.Backend, e.Err) }
func (e *CallError) Unwrap() error { return e.Err }

// Unavailable returns the error calls to the backend get while it is not
// ready, or nil if it is ready.
func (b *Backend) Unavailable() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shared != nil {
		return nil
	}
	return b.unavailable()
}

func (b *Backend) unavailable() error {
	return &UnavailableError{Backend: b.spec.Name, State: b.state, Cause: b.lastErr, NextTry: b.nextTry}
}

// perUser reports whether a call by id goes with id's own credentials.
func (b *Backend) perUser(id *identity.Identity) bool {
	return b.spec.Transport != Stdio && b.auth().PerUser() && !id.IsAnonymous()
}

// connFor returns the connection a call uses: a user's own connection if
// the backend's credentials are per user, a client session's own if it
// relays backend traffic (remote backends only), both if both, else the
// shared one.
func (b *Backend) connFor(ctx context.Context, peer Peer, id *identity.Identity) (*Conn, error) {
	relay := b.spec.Transport != Stdio && peer != nil && peer.Relays()
	perUser := b.perUser(id)
	b.mu.Lock()
	if b.shared == nil && !(b.state == StateAuthRequired && perUser) {
		err := b.unavailable()
		b.mu.Unlock()
		return nil, err
	}
	if !relay && !perUser {
		c := b.shared
		b.mu.Unlock()
		return c, nil
	}
	var key ownedKey
	var owner Peer
	var user *identity.Identity
	if perUser {
		key.issuer, key.subject, user = id.Issuer, id.Subject, id
	}
	if relay {
		key.session, owner = peer.ID(), peer
	}
	oc, found := b.owned[key]
	if !found {
		oc = &ownedConn{ready: make(chan struct{})}
		b.owned[key] = oc
	}
	b.mu.Unlock()
	if !found {
		b.dialOwned(key, owner, user, oc)
	}
	select {
	case <-oc.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if oc.err != nil {
		return nil, oc.err
	}
	oc.conn.lastUsed.Store(time.Now().UnixNano())
	return oc.conn, nil
}

// Discover fetches the lists of a backend that needs callers' credentials,
// with the credentials of the caller in ctx.
func (b *Backend) Discover(ctx context.Context, peer Peer) error {
	_, err := b.connFor(ctx, peer, identity.From(ctx))
	return err
}

// dialOwned opens an owned connection and closes it when its client
// session ends or the connection dies; a failed dial is forgotten so the
// next call tries again. The first per-user connection to a backend that
// needs callers' credentials also fetches its lists.
func (b *Backend) dialOwned(key ownedKey, owner Peer, user *identity.Identity, oc *ownedConn) {
	ctx, cancel := context.WithTimeout(identity.With(context.Background(), user), b.set.opts.ConnectTimeout)
	defer cancel()
	oc.conn, oc.err = b.dial(ctx, owner, user)
	if oc.err == nil && b.NeedsUser() {
		if inv, err := b.list(ctx, oc.conn); err == nil {
			b.inv.Store(inv)
			b.logger.Info("backend lists fetched with a caller's credentials", "tools", len(inv.Tools))
			b.set.changed()
		}
	}
	if oc.err != nil {
		oc.err = &UnavailableError{Backend: b.spec.Name, State: b.Status().State, Cause: b.redact.err(oc.err)}
		b.forgetOwned(key, oc)
		close(oc.ready)
		return
	}
	close(oc.ready)
	var done <-chan struct{}
	if owner != nil {
		done = owner.Done()
	}
	go func() {
		dead := make(chan struct{})
		go func() { _ = oc.conn.session.Wait(); close(dead) }()
		select {
		case <-done:
		case <-dead:
		}
		b.closeConn(oc.conn)
		b.forgetOwned(key, oc)
	}()
}

// closeIdle closes per-user connections unused for idle (those of a
// relaying client session close with the session).
func (b *Backend) closeIdle(idle time.Duration) {
	cutoff := time.Now().Add(-idle).UnixNano()
	var stale []*Conn
	b.mu.Lock()
	for key, oc := range b.owned {
		select {
		case <-oc.ready:
		default:
			continue
		}
		if oc.conn != nil && oc.conn.owner == nil && oc.conn.lastUsed.Load() < cutoff {
			stale = append(stale, oc.conn)
			delete(b.owned, key)
		}
	}
	b.mu.Unlock()
	for _, c := range stale {
		b.closeConn(c)
	}
}

// sessionLost handles a backend that no longer knows c's session (HTTP
// 404): the shared connection is checked by its supervisor at once (and
// replaced); an owned one is closed, so that the next call of its user or
// client session dials a new one, as the shared connection is replaced.
func (c *Conn) sessionLost() {
	b := c.backend
	if c.owner == nil && c.user == nil {
		signal(b.suspect)
		return
	}
	b.mu.Lock()
	found := false
	for key, oc := range b.owned {
		select {
		case <-oc.ready:
		default:
			continue // still dialing: not c
		}
		if oc.conn == c {
			delete(b.owned, key)
			found = true
			break
		}
	}
	b.mu.Unlock()
	if found {
		b.logger.Info("the backend lost a connection's session; the next call makes a new one")
		go b.closeConn(c) // its DELETE is bounded by the SDK
	}
}

func (b *Backend) forgetOwned(key ownedKey, oc *ownedConn) {
	b.mu.Lock()
	if b.owned[key] == oc {
		delete(b.owned, key)
	}
	b.mu.Unlock()
}

// do sends one request on the right connection, relays what comes back
// during it to peer, and classifies failures.
func do[P mcp.Params, R any](ctx context.Context, b *Backend, peer Peer, p P, send func(*mcp.ClientSession, context.Context, P) (R, error)) (R, error) {
	var zero R
	ctx, c, finish, err := b.open(ctx, peer)
	if err != nil {
		return zero, err
	}
	c.syncLogLevel(ctx)
	ctx, fault := withFault(ctx)
	end := c.begin(ctx, peer, p)
	r, err := send(c.session, ctx, p)
	end()
	if f := fault.get(); f != nil {
		err = f // the guard refused the answer (guard.go): the SDK got a stand-in error
	}
	if err = finish(err); err != nil {
		return zero, err
	}
	return r, nil
}

// open prepares a request by the caller in ctx: it gets the caller's
// credentials (per-user backends), the connection, and a context bounded by
// the backend's call timeout. finish must be called with the request's
// error: it releases the context and turns a failure into a *CallError
// (an error answer from the backend stays as it is), noting a broken shared
// connection.
func (b *Backend) open(ctx context.Context, peer Peer) (_ context.Context, c *Conn, finish func(error) error, err error) {
	id := identity.From(ctx)
	if b.perUser(id) {
		// Get the credentials first, so that a failure to get them is
		// reported as such rather than as a broken connection; the
		// request then carries them ([credentialTransport]).
		h := http.Header{}
		if err := b.auth().Apply(ctx, id, h); err != nil {
			return nil, nil, nil, &backendauth.Error{Backend: b.spec.Name, Err: err}
		}
		ctx = context.WithValue(ctx, appliedKey{}, &applied{id: id, header: h})
	}
	if c, err = b.connFor(ctx, peer, id); err != nil {
		return nil, nil, nil, err
	}
	parent, cancel := ctx, context.CancelFunc(nil)
	if b.spec.CallTimeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, b.spec.CallTimeout)
	}
	return ctx, c, func(err error) error {
		if cancel != nil {
			cancel()
		}
		if err == nil {
			return nil
		}
		if isAnswer(err) {
			return err // the backend's own error answer
		}
		if isConnectionError(err) {
			switch {
			case c.user == nil && c.owner == nil:
				signal(b.suspect) // the supervisor checks the shared connection
			case errors.Is(err, mcp.ErrSessionMissing) || errors.Is(err, mcp.ErrConnectionClosed):
				c.sessionLost() // an owned one is replaced by the next call
			}
		}
		if errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil {
			err = fmt.Errorf("no answer within %s (the request was cancelled at the backend)", b.spec.CallTimeout)
		}
		return &CallError{Backend: b.spec.Name, Err: b.redact.err(noAnswer(err))}
	}, nil
}

// CallTool calls a tool by the backend's own name.
func (b *Backend) CallTool(ctx context.Context, peer Peer, p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	return do(ctx, b, peer, p, (*mcp.ClientSession).CallTool)
}

// ReadResource reads a resource by the backend's own URI.
func (b *Backend) ReadResource(ctx context.Context, peer Peer, p *mcp.ReadResourceParams) (*mcp.ReadResourceResult, error) {
	return do(ctx, b, peer, p, (*mcp.ClientSession).ReadResource)
}

// GetPrompt gets a prompt by the backend's own name.
func (b *Backend) GetPrompt(ctx context.Context, peer Peer, p *mcp.GetPromptParams) (*mcp.GetPromptResult, error) {
	return do(ctx, b, peer, p, (*mcp.ClientSession).GetPrompt)
}

// Complete asks the backend for argument completions.
func (b *Backend) Complete(ctx context.Context, peer Peer, p *mcp.CompleteParams) (*mcp.CompleteResult, error) {
	return do(ctx, b, peer, p, (*mcp.ClientSession).Complete)
}

// Subscribe subscribes vmcp to updates of uri at the backend, once however
// many clients subscribe; it is renewed after a reconnect.
func (b *Backend) Subscribe(ctx context.Context, uri string) error {
	b.mu.Lock()
	b.subs[uri]++
	first, c := b.subs[uri] == 1, b.shared
	b.mu.Unlock()
	if !first || c == nil {
		return nil
	}
	return b.subscribe(ctx, c, uri)
}

// Unsubscribe drops one subscriber of uri.
func (b *Backend) Unsubscribe(ctx context.Context, uri string) error {
	b.mu.Lock()
	if b.subs[uri] > 0 {
		b.subs[uri]--
	}
	last, c := b.subs[uri] == 0, b.shared
	if last {
		delete(b.subs, uri)
	}
	b.mu.Unlock()
	if !last || c == nil {
		return nil
	}
	if err := c.session.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: uri}); err != nil {
		return &CallError{Backend: b.spec.Name, Err: b.redact.err(err)}
	}
	return nil
}

func (b *Backend) subscribe(ctx context.Context, c *Conn, uri string) error {
	caps := c.session.InitializeResult().Capabilities
	if caps == nil || caps.Resources == nil || !caps.Resources.Subscribe {
		return nil // the backend offers no updates; subscribing is a no-op
	}
	if err := c.session.Subscribe(ctx, &mcp.SubscribeParams{URI: uri}); err != nil {
		b.logger.Warn("subscribing to resource updates", "uri", uri, "error", err)
		return &CallError{Backend: b.spec.Name, Err: b.redact.err(err)}
	}
	return nil
}

func (b *Backend) resourceUpdated(ctx context.Context, p *mcp.ResourceUpdatedNotificationParams) {
	if f := b.set.opts.OnResourceUpdated; f != nil {
		f(ctx, b.spec.Name, p)
	}
}
