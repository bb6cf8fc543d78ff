package authn

import (
	"context"
	"fmt"

	"github.com/vmcp-dev/vmcp/internal/identity"
)

// Chain sends each token to the authenticator for its shape: a token that
// looks like a signed JWT (three dot-separated parts, the first a base64url
// JSON object) to JWT, any other to Opaque. A token is never tried against
// both.
type Chain struct {
	// JWT authenticates JWT-shaped tokens. If nil, they go to Opaque.
	JWT Authenticator
	// Opaque authenticates all other tokens (typically an
	// [Introspector]). If nil, they are invalid.
	Opaque Authenticator
}

// Authenticate authenticates token with the authenticator for its shape.
func (c *Chain) Authenticate(ctx context.Context, token string) (*identity.Identity, error) {
	if c.JWT != nil && looksLikeJWT(token) {
		return c.JWT.Authenticate(ctx, token)
	}
	if c.Opaque != nil {
		return c.Opaque.Authenticate(ctx, token)
	}
	return nil, fmt.Errorf("%w: not a JWT, and no introspection is configured", ErrInvalidToken)
}
