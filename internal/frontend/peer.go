package frontend

import (
	"context"
	"errors"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/backend"
)

// peer is a client session as backend connections see it.
//
// Sessions that can take relayed traffic (they declared sampling or
// elicitation, or set a log level) get one peer for their whole life, kept
// in Gateway.peers until the session ends; for the others a peer is made per
// call and never stored, so idle sessions cost nothing here.
type peer struct {
	ss     *mcp.ServerSession
	relays bool
	done   chan struct{} // closed when the session ends; nil for per-call peers

	mu       sync.Mutex // guards logLevel
	logLevel mcp.LoggingLevel
}

var _ backend.Peer = (*peer)(nil)

func (p *peer) ID() string { return p.ss.ID() }
func (p *peer) Relays() bool {
	return p.relays
}

func (p *peer) Capabilities() *mcp.ClientCapabilities {
	if ip := p.ss.InitializeParams(); ip != nil {
		return ip.Capabilities
	}
	return nil
}

func (p *peer) LogLevel() mcp.LoggingLevel {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logLevel
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (p *peer) Done() <-chan struct{} {
	if p.done == nil {
		return closed
	}
	return p.done
}

func (p *peer) Progress(ctx context.Context, params *mcp.ProgressNotificationParams) error {
	return p.ss.NotifyProgress(ctx, params)
}

func (p *peer) Log(ctx context.Context, params *mcp.LoggingMessageParams) error {
	return p.ss.Log(ctx, params)
}

func (p *peer) CreateMessage(ctx context.Context, params *mcp.CreateMessageParams) (*mcp.CreateMessageResult, error) {
	return p.ss.CreateMessage(ctx, params)
}

func (p *peer) Elicit(ctx context.Context, params *mcp.ElicitParams) (*mcp.ElicitResult, error) {
	return p.ss.Elicit(ctx, params)
}

// declaresRelay reports whether a session's client can take requests from
// backends.
func declaresRelay(ss *mcp.ServerSession) bool {
	ip := ss.InitializeParams()
	if ip == nil || ip.Capabilities == nil || ss.ID() == "" {
		return false // stateless requests cannot take server-to-client requests
	}
	return ip.Capabilities.Sampling != nil || ip.Capabilities.Elicitation != nil
}

// peerFor returns the peer for a call made on ss.
func (g *Gateway) peerFor(ss *mcp.ServerSession) *peer {
	if ss == nil {
		return nil
	}
	g.peersMu.Lock()
	p := g.peers[ss]
	g.peersMu.Unlock()
	if p != nil {
		return p
	}
	if !declaresRelay(ss) {
		return &peer{ss: ss}
	}
	return g.keepPeer(ss, func(*peer) {})
}

// keepPeer returns the stored peer of ss, creating it (and a watcher that
// forgets it when the session ends) if needed, after applying set to it.
func (g *Gateway) keepPeer(ss *mcp.ServerSession, set func(*peer)) *peer {
	g.peersMu.Lock()
	p, ok := g.peers[ss]
	if !ok {
		p = &peer{ss: ss, relays: true, done: make(chan struct{})}
		g.peers[ss] = p
	}
	g.peersMu.Unlock()
	p.mu.Lock()
	set(p)
	p.mu.Unlock()
	if !ok {
		g.peersWG.Go(func() {
			_ = ss.Wait()
			g.peersMu.Lock()
			delete(g.peers, ss)
			g.peersMu.Unlock()
			close(p.done)
		})
	}
	return p
}

// CloseSessions ends every session of the gateway's MCP server and waits
// until the goroutines that served and watched them have stopped. Call it
// at shutdown, once no request is served any more.
func (g *Gateway) CloseSessions() {
	for ss := range g.server.Sessions() {
		_ = ss.Close()
	}
	g.peersWG.Wait()
}

// noRelay is the peer of a stateless call: it takes nothing back, so what
// a backend asks of it during the call is refused, as for a session that
// declared no capabilities.
type noRelay struct{}

var _ backend.Peer = noRelay{}

func (noRelay) ID() string                            { return "" }
func (noRelay) Relays() bool                          { return false }
func (noRelay) Capabilities() *mcp.ClientCapabilities { return &mcp.ClientCapabilities{} }
func (noRelay) LogLevel() mcp.LoggingLevel            { return "" }
func (noRelay) Done() <-chan struct{}                 { return closed }
func (noRelay) Progress(context.Context, *mcp.ProgressNotificationParams) error {
	return nil
}
func (noRelay) Log(context.Context, *mcp.LoggingMessageParams) error { return nil }
func (noRelay) CreateMessage(context.Context, *mcp.CreateMessageParams) (*mcp.CreateMessageResult, error) {
	return nil, errors.New("vmcp: a stateless request takes no sampling requests")
}
func (noRelay) Elicit(context.Context, *mcp.ElicitParams) (*mcp.ElicitResult, error) {
	return nil, errors.New("vmcp: a stateless request takes no elicitation requests")
}
