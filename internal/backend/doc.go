// Package backend keeps one MCP client connection per backend server and
// hands out the connection a call should use.
//
// A [Set] owns every [Backend]. Each backend has a supervisor goroutine that
// connects (in parallel with the others, so an unreachable backend blocks
// nobody), lists what the backend offers into an immutable [Inventory],
// pings it on an interval, and reconnects with backoff when the connection
// dies: a crashed stdio child is restarted, an HTTP backend that comes back
// is initialized anew. Calls made while a backend is down fail at once with
// an [UnavailableError] naming it.
//
// Connections are reused across calls. A backend has one shared connection;
// a client session that can take what a backend sends back mid-call
// (sampling, elicitation, log messages; roots are not relayed) gets its own connection to
// each remote backend it calls, so that traffic has exactly one place to go.
// What a backend sends during a call is relayed to the calling client through
// the [Peer] the call carries; progress tokens are rewritten per connection
// so that many clients can share one backend session.
//
// A fault of one answer fails one call: raw calls read answers themselves
// (raw.go), and the go-sdk's client reads them through a guard (guard.go)
// that turns a malformed answer into that call's error, resumes event
// streams that end early, and keeps each connection's standalone GET stream
// open; answers are bounded by [Options.MaxResultBytes]. A backend's
// requests never leave its URL's origin, and secrets in that URL never
// appear in its errors or logs.
//
// Each idea has a file of its own:
//   - set.go: the [Set] of backends, its [Options] and the shared HTTP client.
//   - backend.go: a [Backend]: its [Spec], [Status] and [Inventory], and
//     dialing a connection.
//   - supervise.go: the supervisor goroutine: connect, list, monitor, back
//     off, and the state transitions.
//   - calls.go: which connection a call uses (the shared one, a user's, a
//     relaying session's own) and the typed calls made on it.
//   - conn.go: a [Conn], the calls in flight on it, and relaying what the
//     backend sends during a call to the calling client's [Peer].
//   - peer.go: [Peer], by role: [Owner], [Notifier], [Requester].
//   - transport.go, process*.go: the connection kinds: streamable HTTP with
//     outgoing credentials, and stdio children.
//   - raw.go, sse.go: the raw client: tools/call without the SDK's typed
//     messages, and the event-stream reader it uses.
//   - guard.go, envelope.go: the checks of answers read by the SDK's client.
//   - redact.go: secrets in backend URLs kept out of errors and logs.
//
// This package knows nothing about HTTP serving, names as clients see them,
// or authorization: it speaks the backend's own names.
package backend
