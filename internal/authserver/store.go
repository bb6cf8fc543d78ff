package authserver

import (
	"context"
	"errors"
	"net/url"
	"strings"
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

// ErrLimit is returned by a store asked to add an entry beyond the total
// number its caller allows ([PendingLimits.Total], the max of
// [ClientStore.CreateClient]).
var ErrLimit = errors.New("store limit reached")

// ErrClientLimit is returned by [PendingStore.PutPending] when the client
// already has as many pending logins as [PendingLimits.PerClient] allows.
var ErrClientLimit = errors.New("store limit for this client reached")

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
	SecretHash    []byte   `json:"secret_hash,omitempty"` // SHA-256 (secretHasher); empty for public clients
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
	// UsedAt is when a token was last issued to the client (recorded at
	// most about hourly); zero: never. A registration never used is the
	// first a full store forgets.
	UsedAt time.Time `json:"used_at,omitzero"`
	// ExpiresAt is when the registration is forgotten if it is not used
	// again; zero: never (static clients).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// ClientStore keeps registered clients. A client past its ExpiresAt is
// gone: GetClient reports ErrNotFound for it, it does not count towards
// CreateClient's max, and the store forgets it on its own.
type ClientStore interface {
	// CreateClient stores c; it fails if the ID is taken. With max > 0,
	// the store holds at most max live clients: when it holds max already,
	// it first forgets the never-used registration (UsedAt zero, ExpiresAt
	// set) with the earliest CreatedAt, and fails with [ErrLimit] if there
	// is none. The check, the eviction and the insert are one atomic step.
	CreateClient(ctx context.Context, c *Client, max int) error
	GetClient(ctx context.Context, id string) (*Client, error)
	// TouchClient records a use of the client: it sets UsedAt and
	// ExpiresAt. ErrNotFound if the client is gone.
	TouchClient(ctx context.Context, id string, usedAt, expiresAt time.Time) error
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

// AuthorizeRequest is the part of a client's authorization request that
// vmcp keeps while the user logs in upstream: only fields that were
// validated, each bounded (never the raw query).
type AuthorizeRequest struct {
	ClientID            string   `json:"client_id"`
	RedirectURI         string   `json:"redirect_uri"`
	State               string   `json:"state"`
	Scopes              []string `json:"scopes,omitempty"`
	Resource            string   `json:"resource,omitempty"`
	CodeChallenge       string   `json:"code_challenge"`
	CodeChallengeMethod string   `json:"code_challenge_method"`
}

// Values is the request as an authorization request query.
func (a *AuthorizeRequest) Values() url.Values {
	q := url.Values{"response_type": {"code"}, "client_id": {a.ClientID}, "redirect_uri": {a.RedirectURI},
		"state": {a.State}, "code_challenge": {a.CodeChallenge}, "code_challenge_method": {a.CodeChallengeMethod}}
	if len(a.Scopes) > 0 {
		q.Set("scope", strings.Join(a.Scopes, " "))
	}
	if a.Resource != "" {
		q.Set("resource", a.Resource)
	}
	return q
}

// Pending is an authorization waiting for the user to come back from the
// upstream IdP, keyed by the state vmcp sent upstream.
type Pending struct {
	// Request is the client's validated authorization request.
	Request  AuthorizeRequest `json:"request"`
	Provider string           `json:"provider"`
	Nonce    string           `json:"nonce"`
	Verifier string           `json:"verifier"` // PKCE verifier towards the IdP
	// Binding ties the login to the browser that approved it: a MAC of
	// that browser's login cookie and the state.
	Binding   string    `json:"binding"`
	CreatedAt time.Time `json:"created_at"`
}

// PendingLimits cap the pending logins a store holds; zero means no cap.
type PendingLimits struct {
	// Total caps the live pending logins of all clients.
	Total int
	// PerClient caps the live pending logins of one client
	// (Pending.Request.ClientID).
	PerClient int
}

// PendingStore keeps pending authorizations; each can be taken once.
// Expired entries are gone and do not count towards the limits.
type PendingStore interface {
	// PutPending stores p under state for ttl, unless the store holds
	// limits.Total live entries already ([ErrLimit]) or limits.PerClient of
	// p's client ([ErrClientLimit]). The checks and the insert are one
	// atomic step.
	PutPending(ctx context.Context, state string, p *Pending, ttl time.Duration, limits PendingLimits) error
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
