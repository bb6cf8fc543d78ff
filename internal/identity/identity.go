// Package identity defines who is making a request, as later layers read it.
//
// The authentication layer is the only writer: it validates a credential and
// stores an [Identity] in the request context. Authorization, routing and
// outgoing authentication read it with [From] and never parse tokens again.
// This package sits at the bottom of vmcp's dependency graph and imports
// nothing of vmcp.
package identity

import (
	"context"
	"log/slog"
	"time"
)

// Identity is a verified principal.
type Identity struct {
	// Subject is the stable user id. Empty for anonymous callers. For
	// tokens issued by vmcp's authorization server it is derived from the
	// upstream issuer and subject, so it is the same whatever the shape of
	// the upstream IdP's tokens.
	Subject string
	// Issuer is the authority that vouched for Subject.
	Issuer string
	// Claims are the verified claims of the credential the client presented
	// (a JWT's payload, or an introspection response). Nested values keep
	// their JSON shape (map[string]any, []any, float64, string, bool).
	Claims map[string]any
	// Scopes are the scopes the credential grants.
	Scopes []string
	// Expiry is when the credential stops being valid (zero if unknown).
	Expiry time.Time
	// GrantID, for tokens of vmcp's authorization server, names the stored
	// upstream grant (the user's IdP tokens and verified upstream claims).
	GrantID string
	// Provider is the upstream provider the user logged in with, if any.
	Provider string
	// Credential is the bearer token the client presented. Only an RFC 8693
	// token exchange, and the explicitly unsafe pass-through of a backend
	// configured for it, ever send it anywhere. It is never logged: the
	// LogValue of an Identity leaves it out.
	Credential string
}

// LogValue keeps the credential and claims out of logs.
func (id *Identity) LogValue() slog.Value {
	if id.IsAnonymous() {
		return slog.StringValue("anonymous")
	}
	return slog.GroupValue(slog.String("sub", id.Subject), slog.String("iss", id.Issuer))
}

// Anonymous is the identity of an unauthenticated caller.
var Anonymous = &Identity{}

// IsAnonymous reports whether id carries no subject.
func (id *Identity) IsAnonymous() bool { return id == nil || id.Subject == "" }

// Key returns a string that is equal for two identities exactly when they
// are the same principal; it is empty for anonymous callers.
func (id *Identity) Key() string {
	if id.IsAnonymous() {
		return ""
	}
	return id.Issuer + "\x00" + id.Subject
}

// HasScope reports whether the credential grants scope, directly or through
// a parent scope: "tools" grants "tools:read" (scopes form a hierarchy at
// ':' boundaries).
func (id *Identity) HasScope(scope string) bool {
	for _, s := range id.Scopes {
		if s == scope || (len(scope) > len(s) && scope[len(s)] == ':' && scope[:len(s)] == s) {
			return true
		}
	}
	return false
}

type ctxKey struct{}

// With returns a context carrying id.
func With(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// From returns the identity in ctx, or [Anonymous] if there is none.
func From(ctx context.Context) *Identity {
	if id, ok := ctx.Value(ctxKey{}).(*Identity); ok && id != nil {
		return id
	}
	return Anonymous
}
