// Package frontend is vmcp's face to MCP clients: one Streamable HTTP
// endpoint serving both the session-based 2025-11-25 revision and the
// stateless 2026-07-28 revision, chosen per request.
//
// A [Gateway] keeps an [mcp.Server] whose tools, resources and prompts
// mirror the current [router.Catalog]; it answers list requests itself (so
// they can be filtered per principal and paginated with stable cursors) and
// routes every call to the backend that owns the name, under the backend's
// own name. It owns the HTTP edge checks: Origin allow-list, body size,
// UTF-8, batch rejection, and the era decision.
//
// The identity of a request is in its context ([identity.From]) when the
// handlers run; this package does not validate credentials itself.
//
// Each file has one job:
//   - gateway.go: the [Gateway], its [Options], its construction, and
//     keeping the catalog in step with the backends (Run, sync); readiness
//     and drain.
//   - http.go: [Gateway.ServeHTTP], the endpoint: which path serves a
//     request that the edge admitted.
//   - edge.go: the checks every request passes before it is served (Host,
//     Origin, size, UTF-8, batches, the era decision, its session).
//   - sessions.go: the gateway's side of the session table (package
//     session): refused initializes, idle expiry, counts for metrics.
//   - fastcall.go: the fast path, tools/call and tools/list without the
//     SDK's typed messages.
//   - handlers.go: the SDK path: its middleware and the handlers of calls,
//     reads, prompts and completions, routed to backends.
//   - list.go: the four list methods, filtered per caller and paginated.
//   - authorize.go: policy decisions and the cache of prepared principals.
//   - toolsearch.go: search mode (find_tool, call_tool).
//   - peer.go: a client session as the backends see it (relaying what a
//     backend sends during a call).
//   - detach.go: a session's GET stream over HTTP/1.1 served on a
//     connection of its own.
//   - identity.go: handing the caller's identity to the SDK.
//   - observe.go: the seams for telemetry and the audit log.
//   - schema.go: tool schemas encoded once per catalog.
//
// Two jobs have packages of their own: session (the table of 2025-11-25
// sessions, behind an interface) and mirror (the SDK's registrations kept a
// mirror of the catalog).
package frontend
