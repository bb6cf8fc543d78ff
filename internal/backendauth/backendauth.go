// Package backendauth gives each backend the credential it should get for
// a caller: nothing, a static header, a token obtained by RFC 8693 token
// exchange, the user's own upstream token, or (explicitly unsafe) the
// client's own token.
//
// A [Strategy] is asked for the headers of every request vmcp sends a
// backend for a caller (nil for vmcp's own discovery and health traffic).
// Strategies that depend on the caller say so with [Strategy.PerUser], so
// that each user gets their own backend session. The client's token is
// never sent anywhere except by [TokenExchange] (to the STS, as the subject
// token) and [Passthrough] (configured as unsafe).
//
// This package knows nothing about MCP or HTTP serving.
package backendauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/vmcp-dev/vmcp/internal/identity"
)

// Strategy supplies a backend's credentials.
type Strategy interface {
	// PerUser reports whether the credentials depend on the caller.
	PerUser() bool
	// Apply sets the headers of a request sent for id (nil: vmcp's own
	// traffic: discovery and health checks).
	Apply(ctx context.Context, id *identity.Identity, h http.Header) error
}

// ErrReauthorize means the caller's upstream authorization is gone or
// unusable: the client must authorize again.
var ErrReauthorize = errors.New("the user must authorize again")

// Error is a failure to obtain a backend's credentials.
type Error struct {
	Backend string
	Err     error
}

func (e *Error) Error() string {
	return fmt.Sprintf("credentials for backend %q: %v", e.Backend, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// None sends no credentials.
type None struct{}

func (None) PerUser() bool                                                { return false }
func (None) Apply(context.Context, *identity.Identity, http.Header) error { return nil }

// Header sends one static header (an API key, say), to every request.
type Header struct {
	Name, Value string
}

func (Header) PerUser() bool { return false }

func (s Header) Apply(_ context.Context, _ *identity.Identity, h http.Header) error {
	h.Set(s.Name, s.Value)
	return nil
}

// Passthrough forwards the client's own bearer token. It is unsafe (the
// backend can replay the token against vmcp and anything else that
// accepts it) and exists only as an explicit, per-backend opt-in.
type Passthrough struct{}

func (Passthrough) PerUser() bool { return true }

func (Passthrough) Apply(_ context.Context, id *identity.Identity, h http.Header) error {
	if id == nil || id.Credential == "" {
		return nil
	}
	h.Set("Authorization", "Bearer "+id.Credential)
	return nil
}

// UpstreamToken is a user's token at an upstream IdP.
type UpstreamToken struct {
	Provider    string
	AccessToken string
	Expiry      time.Time
}

// UpstreamFunc returns the caller's stored upstream token, refreshed if it
// expires within minValid. It returns an error wrapping [ErrReauthorize]
// when there is none or it cannot be refreshed.
type UpstreamFunc func(ctx context.Context, id *identity.Identity, minValid time.Duration) (*UpstreamToken, error)

// UpstreamInject sends the user's stored upstream access token of one
// provider (their Google token to a backend calling Google APIs, say).
type UpstreamInject struct {
	Provider string
	Upstream UpstreamFunc
}

// upstreamMinValid is how long an injected upstream token must still be
// valid; it is refreshed otherwise.
const upstreamMinValid = time.Minute

func (UpstreamInject) PerUser() bool { return true }

func (s UpstreamInject) Apply(ctx context.Context, id *identity.Identity, h http.Header) error {
	if id == nil || id.IsAnonymous() {
		return nil // discovery and health checks go without
	}
	tok, err := s.Upstream(ctx, id, upstreamMinValid)
	if err != nil {
		return err
	}
	if tok.Provider != s.Provider {
		return fmt.Errorf("%w: this backend needs a login with %s (the session logged in with %s)", ErrReauthorize, s.Provider, tok.Provider)
	}
	h.Set("Authorization", "Bearer "+tok.AccessToken)
	return nil
}
