package backend

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/backendauth"
	"github.com/vmcp-dev/vmcp/internal/identity"
)

// Spec says how to reach one backend.
type Spec struct {
	Name      string
	Transport string // "streamable-http", "sse" or "stdio"
	URL       string
	Command   string
	Args      []string
	Env       map[string]string
	Cwd       string
	// CallTimeout bounds each request to the backend; zero means no bound.
	CallTimeout time.Duration
	// Auth supplies the backend's credentials. Default: none.
	Auth backendauth.Strategy
}

// Transports.
const (
	StreamableHTTP = "streamable-http"
	SSE            = "sse"
	Stdio          = "stdio"
)

// ProtocolVersion is the MCP revision vmcp speaks to backends: the
// session-based one, so that connections are reused and backends can send
// requests back during a call.
const ProtocolVersion = "2025-11-25"

// State is where a backend is in its life.
type State string

// States.
const (
	StateConnecting State = "connecting" // first attempt under way
	StateReady      State = "ready"
	StateDown       State = "down" // lost or unreachable; retrying with backoff
	StateStopped    State = "stopped"
	// StateAuthRequired is a backend that refuses vmcp's own (anonymous)
	// connection with 401 and takes callers' credentials: it is up, and
	// its lists come from the first caller's connection.
	StateAuthRequired State = "auth-required"
)

// Status is a snapshot of a backend's health, for /readyz and logs.
type Status struct {
	Name     string    `json:"name"`
	State    State     `json:"state"`
	Error    string    `json:"error,omitempty"`
	Restarts int       `json:"restarts"`
	Since    time.Time `json:"since"`
	NextTry  time.Time `json:"nextTry,omitzero"`
}

// Inventory is what a ready backend offers, under its own names. It is
// immutable once published.
type Inventory struct {
	Backend      string
	ServerInfo   *mcp.Implementation
	Capabilities *mcp.ServerCapabilities
	Tools        []*mcp.Tool
	Resources    []*mcp.Resource
	Templates    []*mcp.ResourceTemplate
	Prompts      []*mcp.Prompt
}

// Backend is one backend server and its connections.
type Backend struct {
	spec   Spec
	set    *Set
	logger *slog.Logger // redacts the URL's secrets
	redact redactor     // takes the URL's secrets out of errors
	origin *url.URL     // where the backend's requests may go; nil for stdio

	inv      atomic.Pointer[Inventory] // nil unless ready
	refresh  chan struct{}             // the backend said a list changed
	suspect  chan struct{}             // a call saw the connection fail
	attempts chan struct{}             // closed after the first connection attempt

	mu       sync.Mutex // guards the fields below
	state    State
	lastErr  error
	since    time.Time
	nextTry  time.Time
	restarts int
	shared   *Conn
	owned    map[ownedKey]*ownedConn
	subs     map[string]int // resource URI -> subscribers
}

// ownedKey names an owned connection: the user whose credentials it
// carries (per-user credentials) and the client session it relays for
// (relaying), each empty if not.
type ownedKey struct {
	issuer, subject, session string
}

// ownedConn is a connection being dialed or in use for one user or client
// session.
type ownedConn struct {
	ready chan struct{} // closed when conn or err is set
	conn  *Conn
	err   error
}

func newBackend(spec Spec, set *Set) *Backend {
	x := newRedactor(spec.URL)
	var origin *url.URL
	if spec.Transport != Stdio {
		origin, _ = url.Parse(spec.URL)
	}
	return &Backend{
		spec:     spec,
		set:      set,
		logger:   redactLogger(set.opts.Logger, x).With("backend", spec.Name),
		redact:   x,
		origin:   origin,
		refresh:  make(chan struct{}, 1),
		suspect:  make(chan struct{}, 1),
		attempts: make(chan struct{}),
		state:    StateConnecting,
		since:    time.Now(),
		owned:    map[ownedKey]*ownedConn{},
		subs:     map[string]int{},
	}
}

// Name returns the backend's configured name.
func (b *Backend) Name() string { return b.spec.Name }

// Inventory returns what the backend offers, or nil if it is not ready.
func (b *Backend) Inventory() *Inventory { return b.inv.Load() }

// Status returns a snapshot of the backend's health.
func (b *Backend) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Status{Name: b.spec.Name, State: b.state, Restarts: b.restarts, Since: b.since, NextTry: b.nextTry}
	if b.lastErr != nil {
		s.Error = b.lastErr.Error()
	}
	return s
}

// dial opens a connection for owner (nil: not relaying) and user (nil: the
// shared connection).
func (b *Backend) dial(ctx context.Context, owner Peer, user *identity.Identity) (*Conn, error) {
	c := &Conn{backend: b, owner: owner, user: user}
	t, err := b.transport(c)
	if err != nil {
		return nil, err
	}
	client := mcp.NewClient(b.set.opts.ClientInfo, c.clientOptions(b.logger))
	// Some transports (SSE) keep the context of Connect for the life of
	// the connection: give them one that ends with the connection, and
	// bound only the connecting by ctx.
	connCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	session, err := client.Connect(connCtx, t, &mcp.ClientSessionOptions{ProtocolVersion: ProtocolVersion})
	if !stop() || err != nil {
		cancel()
		if err == nil {
			_ = session.Close()
			err = ctx.Err()
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("no answer within %s: %w", b.set.opts.ConnectTimeout, err)
		}
		if user == nil && c.unauthorized.Load() && b.auth().PerUser() {
			return nil, fmt.Errorf("%w: %v", errNeedsUser, err)
		}
		return nil, fmt.Errorf("connect: %w", err)
	}
	c.session, c.cancel = session, cancel
	return c, nil
}

func (b *Backend) auth() backendauth.Strategy {
	if b.spec.Auth == nil {
		return backendauth.None{}
	}
	return b.spec.Auth
}

// closeConn closes a connection; for a stdio backend this stops the child.
func (b *Backend) closeConn(c *Conn) {
	if err := c.session.Close(); err != nil {
		b.logger.Debug("closing connection", "error", err)
	}
	c.cancel()
}
