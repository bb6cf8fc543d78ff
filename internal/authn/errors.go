package authn

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// Errors an [Authenticator] returns, wrapped with detail. Callers branch on
// them with [errors.Is]; [WriteError] maps them to HTTP responses.
var (
	// ErrNoToken means the request carries no bearer token (401 without an
	// error attribute in the challenge).
	ErrNoToken = errors.New("no bearer token")
	// ErrInvalidRequest means the Authorization header is malformed, or the
	// token was sent in more than one way (400, error="invalid_request").
	ErrInvalidRequest = errors.New("malformed authorization")
	// ErrInvalidToken means the token is not acceptable: bad signature,
	// wrong issuer or audience, expired, revoked or unknown (401,
	// error="invalid_token").
	ErrInvalidToken = errors.New("invalid token")
	// ErrUnavailable means the token could not be checked because the
	// identity provider, its key set or its introspection endpoint failed
	// (503). It is never turned into a valid identity.
	ErrUnavailable = errors.New("token validation unavailable")
)

// InsufficientScopeError reports that a valid token lacks scopes an
// operation needs (403, error="insufficient_scope").
type InsufficientScopeError struct {
	// Scopes are all the scopes the operation needs, as the challenge's
	// scope attribute names them.
	Scopes []string
}

func (e *InsufficientScopeError) Error() string {
	return "insufficient scope: need " + strings.Join(e.Scopes, " ")
}

// Fingerprint returns a short, non-reversible name for token, fit for logs:
// the first 8 hex digits of its SHA-256.
func Fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:4])
}
