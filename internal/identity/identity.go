// Package identity defines who is making a request, as later layers read it.
//
// The authentication layer is the only writer: it validates a credential and
// stores an [Identity] in the request context. Authorization, routing and
// outgoing authentication read it with [From] and never parse tokens again.
// This package sits at the bottom of vmcp's dependency graph and imports
// nothing of vmcp.
package identity

import "context"

// Identity is a verified principal.
type Identity struct {
	// Subject is the stable user id. Empty for anonymous callers.
	Subject string
	// Issuer is the authority that vouched for Subject.
	Issuer string
	// Claims are the verified claims about the subject.
	Claims map[string]any
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
