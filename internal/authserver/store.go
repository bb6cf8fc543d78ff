package authserver

import (
	"context"
	"errors"
	"net/url"
	"time"
)

// Store errors.
var (
	// ErrNotFound is returned by stores for a key they do not hold (or no
	// longer hold: expired entries are not found).
	ErrNotFound = errors.New("not found")
	// ErrInactive is returned by [TokenStore.DeactivateToken] for a record
	// that was inactive already: another request used it first.
	ErrInactive = errors.New("inactive")
	// ErrConflict is returned by [GrantStore.PutGrant] when the stored
	// grant is not the version the caller read: someone else changed it.
	ErrConflict = errors.New("changed by someone else")
	// ErrUnavailable wraps every failure of a store to answer (down, slow,
	// refusing): not the caller's fault, and temporary. Callers answer 503
	// or temporarily_unavailable.
	ErrUnavailable = errors.New("the store is unavailable")
)

// Store is everything the authorization server keeps. Implementations live
// in internal/store (memory, bolt, redis); internal/store/storetest holds
// the suite every implementation must pass. All methods are safe for
// concurrent use, also by several servers (replicas) sharing one store.
type Store interface {
	ClientStore
	TokenStore
	GrantStore
	PendingStore
	SecretStore
}

// Client is a registered OAuth client (dynamic registration), or one
// built from a client ID metadata document.
type Client struct {
	ID            string   `json:"client_id"`
	SecretHash    []byte   `json:"secret_hash,omitempty"` // bcrypt; empty for public clients
	Name          string   `json:"client_name,omitempty"`
	RedirectURIs  []string `json:"redirect_uris"`
	GrantTypes    []string `json:"grant_types"`
	ResponseTypes []string `json:"response_types"`
	Scopes        []string `json:"scopes"`
	AuthMethod    string   `json:"token_endpoint_auth_method"`
	AppType       string   `json:"application_type,omitempty"`
	// Audiences are the token exchange targets a static client may get
	// tokens for.
	Audiences []string `json:"audiences,omitempty"`
	// Metadata is the registration document as the client sent it (minus
	// secrets), echoed back at registration.
	Metadata  map[string]any `json:"metadata,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
}

// ClientStore keeps registered clients.
type ClientStore interface {
	CreateClient(ctx context.Context, c *Client) error
	GetClient(ctx context.Context, id string) (*Client, error)
}

// TokenKind names what a [TokenRecord] holds.
type TokenKind string

// Token kinds.
const (
	KindCode    TokenKind = "code"
	KindAccess  TokenKind = "access"
	KindRefresh TokenKind = "refresh"
	KindPKCE    TokenKind = "pkce"
)

// TokenRecord is a stored authorization code, access token, refresh token
// or PKCE session, by the signature of the token (never the token itself).
// Every record of one authorization shares a RequestID: that is the family
// revoked together when a code or refresh token is reused.
type TokenRecord struct {
	Signature string    `json:"sig"`
	RequestID string    `json:"rid"`
	Active    bool      `json:"active"`
	ExpiresAt time.Time `json:"exp"`
	// Request is the serialized authorization request it belongs to.
	Request []byte `json:"req"`
}

// TokenStore keeps token records.
type TokenStore interface {
	CreateToken(ctx context.Context, kind TokenKind, r *TokenRecord) error
	// GetToken returns the record, active or not.
	GetToken(ctx context.Context, kind TokenKind, signature string) (*TokenRecord, error)
	// TokenActive reports whether the record is active, without reading it
	// whole: every request with a vmcp access token asks. A networked
	// store may answer from a local copy that it drops as soon as the
	// record changes anywhere.
	TokenActive(ctx context.Context, kind TokenKind, signature string) (bool, error)
	DeleteToken(ctx context.Context, kind TokenKind, signature string) error
	// DeactivateToken marks one active record inactive (a used code, a
	// rotated refresh token); it stays readable so reuse can be detected.
	// It is atomic: of concurrent callers for one record exactly one gets
	// nil, the others [ErrInactive].
	DeactivateToken(ctx context.Context, kind TokenKind, signature string) error
	// DeactivateFamily marks inactive every record of kind in a request
	// family; DeleteFamily removes them.
	DeactivateFamily(ctx context.Context, kind TokenKind, requestID string) error
	DeleteFamily(ctx context.Context, kind TokenKind, requestID string) error
}

// Grant is what vmcp holds of one user's login at an upstream provider:
// the upstream tokens, and the identity claims verified from each source.
// Access tokens vmcp issues name their grant in the "gid" claim.
type Grant struct {
	ID       string `json:"id"`
	Provider string `json:"provider"`
	// Subject is vmcp's stable subject for the user.
	Subject string `json:"subject"`
	// UpstreamIssuer and UpstreamSubject identify the user at the IdP.
	UpstreamIssuer  string `json:"upstream_issuer"`
	UpstreamSubject string `json:"upstream_subject"`

	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	IDToken      string    `json:"id_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
	Scopes       []string  `json:"scopes,omitempty"`

	// Claims by source, each verified when it was obtained (at login and at
	// every refresh): the ID token's, userinfo's, and the upstream access
	// token's (only when that token is a JWT vmcp could verify).
	IDTokenClaims     map[string]any `json:"id_token_claims,omitempty"`
	UserinfoClaims    map[string]any `json:"userinfo_claims,omitempty"`
	AccessTokenClaims map[string]any `json:"access_token_claims,omitempty"`

	// Revoked is set when the upstream refused a refresh: the user must
	// authorize again.
	Revoked bool `json:"revoked,omitempty"`
	// Version is the stored version, set by [GrantStore.PutGrant]: 0 for a
	// grant never stored.
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
	// ExpiresAt is when the grant is forgotten: no vmcp token referring to
	// it outlives it (it is extended while the grant is in use). Zero:
	// never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// GrantStore keeps upstream grants. A grant past its ExpiresAt is gone:
// GetGrant and GrantRevoked report ErrNotFound for it, and the store
// forgets it on its own (the user's upstream tokens are not kept longer
// than a vmcp token could use them).
type GrantStore interface {
	// PutGrant stores g if the stored grant is the version g.Version (0:
	// none is stored), and sets g.Version to the new version; otherwise it
	// stores nothing and returns [ErrConflict]. A grant read, changed and
	// put back therefore never overwrites a change made in between (a
	// rotated upstream refresh token stored by another replica).
	PutGrant(ctx context.Context, g *Grant) error
	// GetGrant returns the grant. A networked store may answer from a
	// local copy that it drops as soon as the grant changes anywhere, and
	// always reads the stored grant after LockGrant succeeded.
	GetGrant(ctx context.Context, id string) (*Grant, error)
	// GrantRevoked reports whether the grant was revoked, without reading
	// it whole: every request with a vmcp token asks.
	GrantRevoked(ctx context.Context, id string) (bool, error)
	DeleteGrant(ctx context.Context, id string) error
	// LockGrant takes a lease on the grant's ID for owner until ttl has
	// passed or UnlockGrant; it returns false if another owner holds it.
	// Upstream refreshes of a grant happen under it, so that two servers
	// sharing the store never present the same upstream refresh token.
	LockGrant(ctx context.Context, id, owner string, ttl time.Duration) (bool, error)
	// UnlockGrant ends owner's lease (nothing if owner does not hold it).
	UnlockGrant(ctx context.Context, id, owner string) error
}

// Pending is an authorization waiting for the user to come back from the
// upstream IdP, keyed by the state vmcp sent upstream.
type Pending struct {
	// Authorize is the client's original authorization request query.
	Authorize url.Values `json:"authorize"`
	Provider  string     `json:"provider"`
	Nonce     string     `json:"nonce"`
	Verifier  string     `json:"verifier"` // PKCE verifier towards the IdP
	CreatedAt time.Time  `json:"created_at"`
}

// PendingStore keeps pending authorizations; each can be taken once.
type PendingStore interface {
	PutPending(ctx context.Context, state string, p *Pending, ttl time.Duration) error
	// TakePending returns and deletes the entry, atomically.
	TakePending(ctx context.Context, state string) (*Pending, error)
}

// SecretStore keeps the secrets the server generated for itself (a signing
// key, an HMAC secret) when none are configured, so that a restarted
// server, and every server sharing the store, uses the same ones. Stores
// that persist seal them at rest.
type SecretStore interface {
	// GetSecret returns the secret stored under name.
	GetSecret(ctx context.Context, name string) ([]byte, error)
	// InitSecret stores value under name unless a secret is stored there
	// already, and returns the stored one: of servers racing to create a
	// secret, all end up with the first one's.
	InitSecret(ctx context.Context, name string, value []byte) ([]byte, error)
}
