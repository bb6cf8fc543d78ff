package authn

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/vmcp-dev/vmcp/internal/identity"
)

// Authenticator turns a bearer token into the identity it vouches for.
// Errors wrap [ErrInvalidToken] or [ErrUnavailable]. Implementations are
// safe for concurrent use; the returned identity is shared and must not be
// modified.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (*identity.Identity, error)
}

var (
	_ Authenticator = (*JWTVerifier)(nil)
	_ Authenticator = (*Introspector)(nil)
	_ Authenticator = (*Chain)(nil)
)

// Defaults of [JWTOptions] and [IntrospectionOptions].
const (
	DefaultClockSkew          = 30 * time.Second
	DefaultMinRefreshInterval = 10 * time.Second
	DefaultKeyCacheTTL        = time.Hour
	DefaultHTTPTimeout        = 10 * time.Second
	// DefaultVerifiedCacheTTL bounds how long a verified token skips the
	// signature check (never beyond its exp); DefaultVerifiedCacheEntries
	// bounds the cache.
	DefaultVerifiedCacheTTL     = 5 * time.Minute
	DefaultVerifiedCacheEntries = 10000
)

// defaultAlgorithms are the signature algorithms a [JWTVerifier] accepts
// unless told otherwise.
var defaultAlgorithms = []string{"RS256", "ES256", "PS256", "EdDSA"}

// supportedAlgorithms are the algorithms that may be configured: asymmetric
// ones only. "none" and the HMAC algorithms are never accepted.
var supportedAlgorithms = []string{
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA",
}

// maxTokenBytes bounds the tokens worth parsing.
const maxTokenBytes = 16 << 10

// JWTOptions configure a [JWTVerifier]. Issuer, Audience and one of JWKSURL,
// Keys or discovery (the default) are needed.
type JWTOptions struct {
	// Issuer is the expected "iss" claim, compared byte for byte; for
	// discovery it is also the base of the metadata URLs. Required.
	Issuer string
	// Audience is the resource the tokens must be meant for: the MCP
	// endpoint URL, byte-identical to the protected resource metadata's
	// "resource". Tokens whose "aud" does not contain it are rejected.
	// Required.
	Audience string
	// Algorithms are the accepted "alg" values. Default: RS256, ES256,
	// PS256 and EdDSA. Only RS256/384/512, PS256/384/512, ES256/384/512 and
	// EdDSA may be named; "none" and HMAC are never accepted.
	Algorithms []string
	// TokenTypes, if set, are the accepted values of the JWT "typ" header,
	// compared case-insensitively and without an "application/" prefix
	// (RFC 9068 §4). Default: any type, since many identity providers set
	// none (fosite, which vmcp's authorization server uses, sets "JWT").
	TokenTypes []string
	// Keys, if set, supplies the keys locally (vmcp's own authorization
	// server); JWKSURL and discovery are then unused.
	Keys KeySource
	// JWKSURL is the issuer's key set. Default: the jwks_uri of the
	// issuer's metadata, found at "{Issuer}/.well-known/openid-configuration"
	// or else at the RFC 8414 "/.well-known/oauth-authorization-server" URL.
	JWKSURL string
	// HTTPClient fetches metadata and keys. Default: a client with a
	// [DefaultHTTPTimeout] timeout.
	HTTPClient *http.Client
	// MinRefreshInterval is the least time between two key set fetches,
	// whatever unknown key ids tokens name. Default:
	// [DefaultMinRefreshInterval].
	MinRefreshInterval time.Duration
	// KeyCacheTTL is how long a fetched key set is used before it is
	// fetched again (it stays in use if that fails). Default:
	// [DefaultKeyCacheTTL].
	KeyCacheTTL time.Duration
	// ClockSkew is the tolerance applied to "exp", "nbf" and "iat".
	// Default: [DefaultClockSkew]; a negative value means none.
	ClockSkew time.Duration
	// Now returns the current time. Default: [time.Now].
	Now func() time.Time
	// Check, if set, is called with the verified claims and the raw token
	// after every other check passed, for example to reject revoked
	// tokens. An error wrapping [ErrInvalidToken] rejects the token; any
	// other error is reported as [ErrUnavailable].
	Check func(ctx context.Context, claims map[string]any, raw string) error
	// GrantClaims marks the issuer as vmcp's own authorization server,
	// whose "gid" and "idp" claims name the user's stored upstream grant
	// and provider (Identity.GrantID and Provider). Tokens of any other
	// issuer never name a grant: a grant holds the user's upstream tokens.
	GrantClaims bool
	// Logger receives key set fetches. Default: discard.
	Logger *slog.Logger
}

// JWTVerifier authenticates signed JWT access tokens of one issuer.
type JWTVerifier struct {
	// fixed at creation
	issuer   string
	audience string
	algs     []jose.SignatureAlgorithm
	types    []string // normalized by tokenType
	local    KeySource
	remote   *remoteKeys
	skew     time.Duration
	now      func() time.Time
	check    func(ctx context.Context, claims map[string]any, raw string) error
	grants   bool                            // gid and idp are honoured
	verified *tokenCache[*identity.Identity] // tokens whose signature and claims were verified
}

// NewJWTVerifier returns a verifier for opts. It does no I/O: keys are
// fetched when the first token arrives.
func NewJWTVerifier(opts *JWTOptions) (*JWTVerifier, error) {
	var o JWTOptions
	if opts != nil {
		o = *opts
	}
	if o.Issuer == "" {
		return nil, errors.New("authn: jwt: issuer is required")
	}
	if o.Audience == "" {
		return nil, errors.New("authn: jwt: audience is required")
	}
	if len(o.Algorithms) == 0 {
		o.Algorithms = defaultAlgorithms
	}
	algs := make([]jose.SignatureAlgorithm, 0, len(o.Algorithms))
	for _, a := range o.Algorithms {
		if !slices.Contains(supportedAlgorithms, a) {
			return nil, fmt.Errorf("authn: jwt: algorithm %q is not allowed (allowed: %s)", a, strings.Join(supportedAlgorithms, ", "))
		}
		algs = append(algs, jose.SignatureAlgorithm(a))
	}
	v := &JWTVerifier{
		issuer:   o.Issuer,
		audience: o.Audience,
		algs:     algs,
		local:    o.Keys,
		skew:     skewOr(o.ClockSkew),
		now:      o.Now,
		check:    o.Check,
		grants:   o.GrantClaims,
		verified: newTokenCache[*identity.Identity](DefaultVerifiedCacheEntries),
	}
	for _, t := range o.TokenTypes {
		v.types = append(v.types, tokenType(t))
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.local != nil {
		return v, nil
	}
	if o.JWKSURL != "" {
		if err := checkHTTPURL(o.JWKSURL); err != nil {
			return nil, fmt.Errorf("authn: jwt: jwks url: %w", err)
		}
	} else if err := checkHTTPURL(o.Issuer); err != nil {
		return nil, fmt.Errorf("authn: jwt: issuer (for discovery): %w", err)
	}
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	src := &jwksSource{
		client:      client,
		issuer:      o.Issuer,
		jwksURL:     o.JWKSURL,
		algs:        algs,
		minInterval: cmp.Or(o.MinRefreshInterval, DefaultMinRefreshInterval),
		now:         v.now,
		logger:      ensureLogger(o.Logger),
	}
	v.remote = newRemoteKeys(src, cmp.Or(o.KeyCacheTTL, DefaultKeyCacheTTL), v.now)
	return v, nil
}

// Authenticate verifies token and returns its identity. Errors wrap
// [ErrInvalidToken], or [ErrUnavailable] when the keys cannot be fetched or
// the Check hook failed for another reason than the token.
func (v *JWTVerifier) Authenticate(ctx context.Context, token string) (*identity.Identity, error) {
	if token == "" || len(token) > maxTokenBytes {
		return nil, fmt.Errorf("%w: empty or oversized token", ErrInvalidToken)
	}
	key := sha256.Sum256([]byte(token))
	now := v.now()
	if id, ok := v.verified.get(key, now); ok {
		return v.checked(ctx, id, token)
	}
	id, err := v.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	// The next request with this token skips the signature check, for as
	// long as the token lives (exp plus skew) and at most
	// DefaultVerifiedCacheTTL; the Check hook still runs every time.
	until := id.Expiry.Add(v.skew)
	if limit := now.Add(DefaultVerifiedCacheTTL); until.After(limit) {
		until = limit
	}
	v.verified.put(key, id, until)
	return v.checked(ctx, id, token)
}

// checked runs the Check hook on a verified token.
func (v *JWTVerifier) checked(ctx context.Context, id *identity.Identity, token string) (*identity.Identity, error) {
	if v.check != nil {
		if err := v.check(ctx, id.Claims, token); err != nil {
			if errors.Is(err, ErrInvalidToken) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: check: %w", ErrUnavailable, err)
		}
	}
	return id, nil
}

// verify checks the token's claims and signature.
func (v *JWTVerifier) verify(ctx context.Context, token string) (*identity.Identity, error) {
	jws, err := jose.ParseSignedCompact(token, v.algs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	h := jws.Signatures[0].Header
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); len(v.types) > 0 && !slices.Contains(v.types, tokenType(typ)) {
		return nil, fmt.Errorf("%w: token type %q is not accepted", ErrInvalidToken, typ)
	}
	// The claims are checked before the signature, so that a token that
	// would be refused anyway (another issuer or audience, expired) is
	// refused without looking for its key: foreign and stale tokens never
	// cause a key set fetch. Nothing of them is used unless the signature
	// verifies below.
	payload := jws.UnsafePayloadWithoutVerification()
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil || claims == nil {
		return nil, fmt.Errorf("%w: payload is not a JSON object", ErrInvalidToken)
	}
	id, err := v.validate(payload, claims)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if v.local == nil {
		_, err = v.remote.verify(ctx, token)
	} else {
		err = v.verifyLocal(ctx, jws, h.KeyID, h.Algorithm)
	}
	if err != nil {
		return nil, err
	}
	id.Credential = token
	return id, nil
}

// verifyLocal checks the signature of jws with the local keys that fit its
// key id and algorithm.
func (v *JWTVerifier) verifyLocal(ctx context.Context, jws *jose.JSONWebSignature, kid, alg string) error {
	all, err := v.local(ctx)
	if err != nil {
		return fmt.Errorf("%w: local keys: %w", ErrUnavailable, err)
	}
	keys := candidates(all, kid, alg)
	if len(keys) == 0 {
		return fmt.Errorf("%w: no key for kid %q and alg %s", ErrInvalidToken, kid, alg)
	}
	err = errors.New("no key")
	for _, k := range keys {
		if _, err = jws.Verify(k.Key); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%w: signature: %w", ErrInvalidToken, err)
}

// validate checks issuer, audience and validity period of the token's
// payload (go-jose's [jwt.Claims.ValidateWithLeeway]) and returns its
// identity, made of claims (the payload decoded).
func (v *JWTVerifier) validate(payload []byte, claims map[string]any) (*identity.Identity, error) {
	var rc jwt.Claims
	if err := json.Unmarshal(payload, &rc); err != nil {
		return nil, fmt.Errorf("registered claims: %w", err)
	}
	switch err := rc.ValidateWithLeeway(jwt.Expected{Issuer: v.issuer, AnyAudience: jwt.Audience{v.audience}, Time: v.now()}, v.skew); {
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return nil, fmt.Errorf("issuer %q is not %q: %w", rc.Issuer, v.issuer, err)
	case errors.Is(err, jwt.ErrInvalidAudience):
		return nil, fmt.Errorf("audience %q does not contain %q: %w", []string(rc.Audience), v.audience, err)
	case err != nil:
		return nil, timeError(&rc, err)
	}
	if rc.Expiry == nil {
		return nil, errors.New(`claim "exp" is missing`)
	}
	return newIdentity(claims, rc.Issuer, rc.Expiry.Time(), v.grants)
}

// tokenType normalizes a "typ" value for comparison (RFC 7515 §4.1.9).
func tokenType(t string) string {
	t = strings.ToLower(t)
	return strings.TrimPrefix(t, "application/")
}

// looksLikeJWT reports whether token has the shape of a JWS in compact
// serialization: three dot-separated parts, the first a base64url JSON
// object.
func looksLikeJWT(token string) bool {
	head, rest, ok := strings.Cut(token, ".")
	if !ok || strings.Count(rest, ".") != 1 || len(head) > 4096 {
		return false
	}
	var buf [3072]byte
	n, err := base64.RawURLEncoding.Decode(buf[:], []byte(head))
	if err != nil {
		return false
	}
	b := bytes.TrimLeft(buf[:n], " \t\r\n") // on the stack: no copy per request
	return len(b) > 0 && b[0] == '{'
}

func ensureLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

func skewOr(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return DefaultClockSkew
	case d < 0:
		return 0
	}
	return d
}
