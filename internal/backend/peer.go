package backend

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A call carries the client session it comes from, as a [Peer]; a
// connection uses it to relay what the backend sends during the call back
// to that client. Its methods fall in three roles, each an interface of its
// own so that the code of each role asks for only what it uses.
//
// Methods that send take the context of the client's request, so that the
// relayed message travels on the stream of that request; with a context
// that carries no request they use the session's standalone stream.

// Owner is a client session as the connections it may own see it.
type Owner interface {
	// ID identifies the client session; it is stable for the session's life.
	ID() string
	// Relays reports whether the client can take server-to-client requests
	// or log messages (it declared sampling or elicitation, or set a log
	// level). Such a session gets its own connection to remote backends.
	Relays() bool
	// Done is closed when the client session ends (its own connections
	// are closed then).
	Done() <-chan struct{}
}

// Notifier takes the notifications a backend sends during a call.
type Notifier interface {
	// LogLevel is the level the client asked for, or "" for none.
	LogLevel() mcp.LoggingLevel
	Progress(ctx context.Context, p *mcp.ProgressNotificationParams) error
	Log(ctx context.Context, p *mcp.LoggingMessageParams) error
}

// Requester takes the requests a backend sends to the client during a call.
type Requester interface {
	// Capabilities are the capabilities the client declared.
	Capabilities() *mcp.ClientCapabilities
	CreateMessage(ctx context.Context, p *mcp.CreateMessageParams) (*mcp.CreateMessageResult, error)
	Elicit(ctx context.Context, p *mcp.ElicitParams) (*mcp.ElicitResult, error)
}

// Peer is the client session a call comes from: all three roles.
type Peer interface {
	Owner
	Notifier
	Requester
}
