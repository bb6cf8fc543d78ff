// Package telemetry holds vmcp's request metrics and traces: the
// Prometheus instruments of requests and backend calls, the OpenTelemetry
// tracer provider and its OTLP exporter (HTTP or gRPC), W3C trace context
// taken from clients and passed on to backends, and the access log.
//
// The rest of vmcp reaches it through a few seams, each a method of
// [*Telemetry] that does nothing on a nil receiver, so that with everything
// off a seam costs a nil check:
//
//   - [Telemetry.Edge], the HTTP middleware in front of the MCP endpoint:
//     the request's server span, the HTTP metrics, the access log;
//   - [Telemetry.Authentication], around the authentication middleware: its
//     span;
//   - [Telemetry.StartRequest], where an MCP request is served (the fast
//     path, the SDK's middleware): its span and its count by outcome;
//   - [Telemetry.Decision], after a policy decision: its span;
//   - [Telemetry.StartCall], around every call to a backend: its span, its
//     latency and count by backend and tool;
//   - [Telemetry.Transport], the backends' HTTP transport: the traceparent
//     of each call;
//   - [Telemetry.Handoff] and [Telemetry.Adopt]: trace context across the
//     go-sdk, whose handlers do not get the HTTP request's context.
//
// Label values are bounded: MCP methods from a fixed list, tool names only
// as the frontend gives them (from the catalog), backends from the
// configuration. It knows nothing of MCP sessions, policies or tokens.
package telemetry
