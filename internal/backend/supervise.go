package backend

// Supervision: each backend's goroutine (run) connects its shared
// connection, lists what the backend offers, watches it (list_changed,
// pings), and reconnects with backoff; the state transitions (ready, auth
// required, down, stopped) that Status reports.

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/time/rate"
)

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (b *Backend) refreshSoon() { signal(b.refresh) }

// userConnIdle is how long a user's own connection may go unused before
// it is closed.
const userConnIdle = 10 * time.Minute

// stableAfter is how long a connection must live for a later failure to
// restart the backoff from its minimum.
const stableAfter = 30 * time.Second

// run is the supervisor: connect, serve, detect failure, back off, repeat.
func (b *Backend) run(ctx context.Context) {
	backoff := b.set.opts.MinBackoff
	// Sessions lost are renewed at once, but a backend that keeps losing
	// them (as one behind a balancer without affinity does) is given the
	// backoff of any failure: three at once, then one per ten seconds.
	renewals := rate.NewLimiter(rate.Every(10*time.Second), 3)
	first := true
	endFirst := func() {
		if first {
			first = false
			close(b.attempts)
		}
	}
	defer endFirst()
	for ctx.Err() == nil {
		conn, inv, renewed, err := b.connectShared(ctx)
		if errors.Is(err, errNeedsUser) {
			b.setAuthRequired(err)
			endFirst()
			b.closeIdle(userConnIdle)
			if !sleep(ctx, b.set.opts.HealthInterval) {
				return
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait := jitter(backoff)
			b.setDown(err, wait)
			endFirst()
			if !sleep(ctx, wait) {
				return
			}
			backoff = min(2*backoff, b.set.opts.MaxBackoff)
			continue
		}
		b.setReady(ctx, conn, inv, renewed)
		endFirst()
		readyAt := time.Now()
		err = b.monitor(ctx, conn)
		for ctx.Err() == nil && b.sessionLost(err) && renewals.Allow() {
			// The backend forgot vmcp's session (it restarted, or another
			// replica answered): it is up, so a new session is made at once
			// and the backend stays listed meanwhile (calls on the old
			// session fail as they would anyway). Only when that fails is
			// it down.
			b.logger.Info("the backend lost vmcp's session; making a new one", "error", b.redact.err(err))
			lost := conn
			conn, inv, renewed, err = b.connectShared(ctx)
			b.closeConn(lost)
			if err != nil {
				err = fmt.Errorf("the backend lost vmcp's session; a new one: %w", err)
				break
			}
			b.setReady(ctx, conn, inv, renewed)
			err = b.monitor(ctx, conn)
		}
		if ctx.Err() != nil {
			return
		}
		// A backend that keeps dying soon after it starts backs off further;
		// one that ran for a while is retried quickly.
		if time.Since(readyAt) > stableAfter {
			backoff = b.set.opts.MinBackoff
		} else {
			backoff = min(2*backoff, b.set.opts.MaxBackoff)
		}
		wait := jitter(backoff)
		b.setDown(err, wait)
		if conn != nil {
			b.closeConn(conn)
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

// sessionLost reports whether a ready connection ended because the backend
// no longer knows its session (HTTP 404).
func (b *Backend) sessionLost(err error) bool {
	return errors.Is(err, mcp.ErrSessionMissing) || errors.Is(err, errSessionLost)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// connectShared dials the shared connection, lists the inventory and
// renews the resource subscriptions (it returns those it renewed), all
// within the connect timeout.
func (b *Backend) connectShared(ctx context.Context) (*Conn, *Inventory, map[string]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, b.set.opts.ConnectTimeout)
	defer cancel()
	conn, err := b.dial(ctx, nil, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	inv, err := b.list(ctx, conn)
	if err == nil {
		var renewed map[string]bool
		if renewed, err = b.renew(ctx, conn); err == nil {
			return conn, inv, renewed, nil
		}
	}
	b.closeConn(conn)
	if ctx.Err() != nil {
		err = fmt.Errorf("no answer within %s: %w", b.set.opts.ConnectTimeout, err)
	}
	return nil, nil, nil, err
}

// renew subscribes a new shared connection to the resources clients are
// subscribed to. A backend that refuses one (an error answer) is logged;
// one that does not answer fails the connection: it is not ready.
func (b *Backend) renew(ctx context.Context, c *Conn) (map[string]bool, error) {
	b.mu.Lock()
	renewed := make(map[string]bool, len(b.subs))
	for uri := range b.subs {
		renewed[uri] = true
	}
	b.mu.Unlock()
	for uri := range renewed {
		if err := b.subscribe(ctx, c, uri); err != nil {
			if !isAnswer(err) {
				return nil, fmt.Errorf("renewing the subscription to %s: %w", uri, err)
			}
		}
	}
	return renewed, nil
}

// errNeedsUser is a shared connection refused with 401 by a backend whose
// credentials are per user.
var errNeedsUser = errors.New("the backend requires a user's credentials (401 to vmcp's own connection)")

// list fetches every list the backend declared a capability for.
func (b *Backend) list(ctx context.Context, c *Conn) (*Inventory, error) {
	init := c.session.InitializeResult()
	inv := &Inventory{Backend: b.spec.Name, ServerInfo: init.ServerInfo, Capabilities: init.Capabilities}
	caps := init.Capabilities
	if caps == nil {
		caps = &mcp.ServerCapabilities{}
	}
	var err error
	if caps.Tools != nil {
		if inv.Tools, err = listOptional(b, "tools/list", c.session.Tools(ctx, nil)); err != nil {
			return nil, fmt.Errorf("list tools: %w", err)
		}
	}
	if caps.Resources != nil {
		if inv.Resources, err = listOptional(b, "resources/list", c.session.Resources(ctx, nil)); err != nil {
			return nil, fmt.Errorf("list resources: %w", err)
		}
		if inv.Templates, err = listOptional(b, "resources/templates/list", c.session.ResourceTemplates(ctx, nil)); err != nil {
			return nil, fmt.Errorf("list resource templates: %w", err)
		}
	}
	if caps.Prompts != nil {
		if inv.Prompts, err = listOptional(b, "prompts/list", c.session.Prompts(ctx, nil)); err != nil {
			return nil, fmt.Errorf("list prompts: %w", err)
		}
	}
	return inv, nil
}

// listOptional collects a list. A backend that answers a list method with
// -32601 (method not found) does not implement it: it offers none of those
// items (as a low-level TypeScript SDK server does for resource templates
// it has no handler for), which is logged, not a failure to connect.
func listOptional[T any](b *Backend, method string, seq func(func(T, error) bool)) ([]T, error) {
	out, err := collect(seq)
	var rpcErr *jsonrpc.Error
	if errors.As(err, &rpcErr) && rpcErr.Code == jsonrpc.CodeMethodNotFound {
		b.logger.Warn("the backend does not implement a list method of a capability it declared; it offers none of those items",
			"method", method, "error", rpcErr.Message)
		return nil, nil
	}
	return out, err
}

func collect[T any](seq func(func(T, error) bool)) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// monitor watches a ready connection until it fails; it re-lists on
// list_changed and pings on the health interval.
func (b *Backend) monitor(ctx context.Context, c *Conn) error {
	dead := make(chan error, 1)
	go func() { dead <- c.session.Wait() }()
	tick := time.NewTicker(b.set.opts.HealthInterval)
	defer tick.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-dead:
			if b.spec.Transport == Stdio {
				return fmt.Errorf("process exited: %v", errOrEOF(err))
			}
			return fmt.Errorf("connection closed: %w", errOrEOF(err))
		case <-b.refresh:
			inv, err := b.list(ctx, c)
			if err != nil {
				b.logger.Warn("re-listing after list_changed", "error", err)
				continue
			}
			if sameLists(b.inv.Load(), inv) {
				b.logger.Debug("backend lists listed again, unchanged")
				continue
			}
			b.inv.Store(inv)
			b.logger.Info("backend lists changed", "tools", len(inv.Tools), "resources", len(inv.Resources), "prompts", len(inv.Prompts))
			b.set.changed()
		case <-b.suspect:
			if err := b.ping(ctx, c); err != nil {
				return fmt.Errorf("ping after a failed call: %w", err)
			}
		case <-tick.C:
			b.closeIdle(userConnIdle)
			if err := b.ping(ctx, c); err != nil {
				if b.sessionLost(err) {
					return fmt.Errorf("health check: %w", err) // it will not come back
				}
				failures++
				b.logger.Warn("health check failed", "error", err, "failures", failures, "threshold", b.set.opts.UnhealthyThreshold)
				if failures >= b.set.opts.UnhealthyThreshold {
					return fmt.Errorf("%d health checks failed: %w", failures, err)
				}
				continue
			}
			failures = 0
		}
	}
}

// sameLists reports whether two inventories list the same items.
func sameLists(a, b *Inventory) bool {
	return a != nil && reflect.DeepEqual(a.Tools, b.Tools) && reflect.DeepEqual(a.Resources, b.Resources) &&
		reflect.DeepEqual(a.Templates, b.Templates) && reflect.DeepEqual(a.Prompts, b.Prompts)
}

func errOrEOF(err error) error {
	if err == nil {
		return errors.New("EOF")
	}
	return err
}

func (b *Backend) ping(ctx context.Context, c *Conn) error {
	// A ping may take longer than the interval (pings do not overlap), but
	// not longer than a connection attempt.
	ctx, cancel := context.WithTimeout(ctx, min(b.set.opts.ConnectTimeout, max(b.set.opts.HealthInterval, 2*time.Second)))
	defer cancel()
	return c.session.Ping(ctx, nil)
}

func (b *Backend) setReady(ctx context.Context, c *Conn, inv *Inventory, renewed map[string]bool) {
	b.mu.Lock()
	b.shared, b.state, b.lastErr, b.since, b.nextTry = c, StateReady, nil, time.Now(), time.Time{}
	var late []string // subscribed to while the connection was being made
	for uri := range b.subs {
		if !renewed[uri] {
			late = append(late, uri)
		}
	}
	b.mu.Unlock()
	b.inv.Store(inv)
	name := ""
	if inv.ServerInfo != nil {
		name = inv.ServerInfo.Name
	}
	b.logger.Info("backend ready", "server", name, "tools", len(inv.Tools), "resources", len(inv.Resources),
		"templates", len(inv.Templates), "prompts", len(inv.Prompts))
	if len(late) > 0 {
		ctx, cancel := context.WithTimeout(ctx, b.set.opts.ConnectTimeout)
		for _, uri := range late {
			_ = b.subscribe(ctx, c, uri) // failures are logged; pings judge the backend
		}
		cancel()
	}
	b.set.changed()
}

// setAuthRequired records a backend that needs callers' credentials.
func (b *Backend) setAuthRequired(err error) {
	err = b.redact.err(err)
	b.mu.Lock()
	changed := b.state != StateAuthRequired
	b.state, b.lastErr, b.nextTry = StateAuthRequired, err, time.Time{}
	if changed {
		b.since = time.Now()
	}
	b.mu.Unlock()
	if changed {
		b.logger.Info("backend refuses anonymous connections; it will be used with each caller's credentials", "reason", err)
	}
}

// NeedsUser reports whether the backend's lists can only be fetched with a
// caller's credentials and are not known yet.
func (b *Backend) NeedsUser() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state == StateAuthRequired && b.inv.Load() == nil
}

// setDown records a failure, drops the inventory and every connection.
func (b *Backend) setDown(err error, retryIn time.Duration) {
	err = b.redact.err(err)
	b.mu.Lock()
	wasReady := b.state == StateReady
	if wasReady {
		b.restarts++
	}
	b.shared, b.state, b.lastErr, b.since, b.nextTry = nil, StateDown, err, time.Now(), time.Now().Add(retryIn)
	owned := b.owned
	b.owned = map[ownedKey]*ownedConn{}
	b.mu.Unlock()
	b.inv.Store(nil)
	for _, oc := range owned {
		if oc.conn != nil {
			b.closeConn(oc.conn)
		}
	}
	if wasReady {
		b.logger.Error("backend lost; reconnecting", "error", err, "retry_in", retryIn)
		b.set.changed()
	} else {
		b.logger.Warn("backend unreachable; retrying", "error", err, "retry_in", retryIn)
	}
}

// stop marks the backend stopped and closes its connections.
func (b *Backend) stop() {
	b.mu.Lock()
	shared := b.shared
	owned := b.owned
	b.shared, b.owned, b.state = nil, map[ownedKey]*ownedConn{}, StateStopped
	b.mu.Unlock()
	b.inv.Store(nil)
	for _, oc := range owned {
		if oc.conn != nil {
			b.closeConn(oc.conn)
		}
	}
	if shared != nil {
		b.closeConn(shared)
	}
}
