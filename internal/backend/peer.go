package backend

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Peer is the client session a call comes from. A connection uses it to
// relay what the backend sends during the call back to that client.
//
// Methods take the context of the client's request, so that the relayed
// message travels on the stream of that request; with a context that carries
// no request they use the session's standalone stream.
type Peer interface {
	// ID identifies the client session; it is stable for the session's life.
	ID() string
	// Relays reports whether the client can take server-to-client requests
	// or log messages (it declared sampling or elicitation, or set a log
	// level). Such a session gets its own connection to remote backends.
	Relays() bool
	// Capabilities are the capabilities the client declared.
	Capabilities() *mcp.ClientCapabilities
	// LogLevel is the level the client asked for, or "" for none.
	LogLevel() mcp.LoggingLevel
	// Done is closed when the client session ends.
	Done() <-chan struct{}

	Progress(ctx context.Context, p *mcp.ProgressNotificationParams) error
	Log(ctx context.Context, p *mcp.LoggingMessageParams) error
	CreateMessage(ctx context.Context, p *mcp.CreateMessageParams) (*mcp.CreateMessageResult, error)
	Elicit(ctx context.Context, p *mcp.ElicitParams) (*mcp.ElicitResult, error)
}
