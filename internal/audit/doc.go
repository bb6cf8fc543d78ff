// Package audit writes vmcp's audit log: one JSON object per line for each
// authorization decision and each call to a backend, saying who (principal,
// client, session) did what (action, resource), what was decided and by
// which policies on claims from which sources, which backend served it, how
// long it took and how it ended.
//
// A record never holds a token, a secret or an error text (which can quote
// what a client sent); argument values and claim values are written only
// when the operator opts in, field by field ([Options]). The package knows
// nothing of HTTP, MCP or policies: callers fill in the records.
package audit
