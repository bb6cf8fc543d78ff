package authn

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/vmcp-dev/vmcp/internal/identity"
)

// Defaults of [IntrospectionOptions].
const (
	DefaultMaxCacheTTL      = 60 * time.Second
	DefaultNegativeCacheTTL = 5 * time.Second
	DefaultMaxCacheEntries  = 10000
)

// IntrospectionOptions configure an [Introspector].
type IntrospectionOptions struct {
	// Endpoint is the RFC 7662 introspection endpoint. Required.
	Endpoint string
	// ClientID and ClientSecret authenticate vmcp to the endpoint with
	// HTTP Basic (client_secret_basic). Default: no client authentication.
	ClientID     string
	ClientSecret string
	// Issuer, if set, must equal the response's "iss" when present. It is
	// the identity's issuer when the response names none. Default: the
	// response's "iss", else Endpoint.
	Issuer string
	// Audience, if set, must be among the response's "aud" values when the
	// response has any. Set it to the MCP endpoint URL whenever the
	// identity provider reports audiences.
	Audience string
	// HTTPClient calls the endpoint. Default: a client with a
	// [DefaultHTTPTimeout] timeout.
	HTTPClient *http.Client
	// MaxCacheTTL bounds how long an active result is reused; it is never
	// reused past the token's "exp". Default: [DefaultMaxCacheTTL].
	MaxCacheTTL time.Duration
	// NegativeCacheTTL is how long an inactive result is reused. Default:
	// [DefaultNegativeCacheTTL].
	NegativeCacheTTL time.Duration
	// MaxCacheEntries bounds the cache; when it is full, the least
	// recently used entry makes room. Default: [DefaultMaxCacheEntries].
	MaxCacheEntries int
	// ClockSkew is the tolerance applied to "exp", "nbf" and "iat".
	// Default: [DefaultClockSkew]; a negative value means none.
	ClockSkew time.Duration
	// Now returns the current time. Default: [time.Now].
	Now func() time.Time
}

// Introspector authenticates opaque tokens by asking the identity
// provider's introspection endpoint (RFC 7662). Results are cached under
// the SHA-256 of the token, never the token itself; concurrent lookups of
// one token share one request.
type Introspector struct {
	// fixed at creation
	endpoint    string
	basicAuth   string // "" when no client authentication
	issuer      string
	audience    string
	client      *http.Client
	maxTTL      time.Duration
	negativeTTL time.Duration
	skew        time.Duration
	now         func() time.Time

	flight singleflight.Group

	cache *tokenCache[introspection]
}

// introspection is a cached outcome: an identity or an invalid-token error.
type introspection struct {
	id    *identity.Identity
	err   error
	until time.Time
}

// NewIntrospector returns an introspector for opts. It does no I/O.
func NewIntrospector(opts *IntrospectionOptions) (*Introspector, error) {
	var o IntrospectionOptions
	if opts != nil {
		o = *opts
	}
	if err := checkHTTPURL(o.Endpoint); err != nil {
		return nil, fmt.Errorf("authn: introspection endpoint: %w", err)
	}
	if o.MaxCacheEntries < 0 {
		return nil, fmt.Errorf("authn: introspection: MaxCacheEntries is %d, want 0 (the default) or more", o.MaxCacheEntries)
	}
	in := &Introspector{
		endpoint:    o.Endpoint,
		issuer:      o.Issuer,
		audience:    o.Audience,
		client:      o.HTTPClient,
		maxTTL:      cmp.Or(o.MaxCacheTTL, DefaultMaxCacheTTL),
		negativeTTL: cmp.Or(o.NegativeCacheTTL, DefaultNegativeCacheTTL),
		skew:        skewOr(o.ClockSkew),
		now:         o.Now,
		cache:       newTokenCache[introspection](cmp.Or(o.MaxCacheEntries, DefaultMaxCacheEntries)),
	}
	if o.ClientID != "" {
		// RFC 6749 §2.3.1: both parts are form-encoded before Basic.
		r := http.Request{Header: http.Header{}}
		r.SetBasicAuth(url.QueryEscape(o.ClientID), url.QueryEscape(o.ClientSecret))
		in.basicAuth = r.Header.Get("Authorization")
	}
	if in.client == nil {
		in.client = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	if in.now == nil {
		in.now = time.Now
	}
	return in, nil
}

// Authenticate introspects token and returns its identity. An inactive
// token is [ErrInvalidToken]; a failure of the endpoint is [ErrUnavailable]
// and is not cached.
func (in *Introspector) Authenticate(ctx context.Context, token string) (*identity.Identity, error) {
	if token == "" || len(token) > maxTokenBytes {
		return nil, fmt.Errorf("%w: empty or oversized token", ErrInvalidToken)
	}
	key := sha256.Sum256([]byte(token))
	if r, ok := in.cached(key); ok {
		return r.id, r.err
	}
	ch := in.flight.DoChan(string(key[:]), func() (any, error) {
		if r, ok := in.cached(key); ok {
			return r, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultHTTPTimeout)
		defer cancel()
		r, err := in.introspect(fctx, token)
		if err != nil {
			return nil, err
		}
		in.store(key, r)
		return r, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		r := res.Val.(introspection)
		return r.id, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for introspection: %w", ErrUnavailable, ctx.Err())
	}
}

// introspect asks the endpoint about token. The returned error is the
// endpoint's failure; the token's own verdict is in the result.
func (in *Introspector) introspect(ctx context.Context, token string) (introspection, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return introspection{}, fmt.Errorf("%w: introspection: %w", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if in.basicAuth != "" {
		req.Header.Set("Authorization", in.basicAuth)
	}
	resp, err := in.client.Do(req)
	if err != nil {
		// The URL in a *url.Error is the endpoint's, never the token.
		return introspection{}, fmt.Errorf("%w: introspection: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocumentBytes))
		return introspection{}, fmt.Errorf("%w: introspection endpoint answered %d", ErrUnavailable, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes))
	var claims map[string]any
	if err != nil || json.Unmarshal(body, &claims) != nil || claims == nil {
		return introspection{}, fmt.Errorf("%w: introspection response is not a JSON object", ErrUnavailable)
	}
	now := in.now()
	id, err := in.validate(body, claims, now)
	if err != nil {
		return introspection{err: fmt.Errorf("%w: %w", ErrInvalidToken, err), until: now.Add(in.negativeTTL)}, nil
	}
	id.Credential = token
	until := now.Add(in.maxTTL)
	if !id.Expiry.IsZero() && id.Expiry.Before(until) {
		until = id.Expiry
	}
	return introspection{id: id, until: until}, nil
}

// validate checks an introspection response (raw, decoded as claims) and
// returns its identity.
func (in *Introspector) validate(raw []byte, claims map[string]any, now time.Time) (*identity.Identity, error) {
	if active, _ := claims["active"].(bool); !active {
		return nil, errors.New("token is not active")
	}
	// Hydra reports what it introspected; a refresh token is no access token.
	for _, name := range [...]string{"token_use", "token_type"} {
		if t, _ := claims[name].(string); t == "refresh_token" {
			return nil, errors.New("token is a refresh token")
		}
	}
	iss, err := stringClaim(claims, "iss")
	if err != nil {
		return nil, err
	}
	if iss != "" && in.issuer != "" && iss != in.issuer {
		return nil, fmt.Errorf("issuer %q is not %q", iss, in.issuer)
	}
	if iss == "" {
		iss = cmp.Or(in.issuer, in.endpoint)
	}
	aud, err := audiences(claims)
	if err != nil {
		return nil, err
	}
	if in.audience != "" && len(aud) > 0 && !slices.Contains(aud, in.audience) {
		return nil, fmt.Errorf("audience %q does not contain %q", aud, in.audience)
	}
	exp, err := validity(raw, now, in.skew, false)
	if err != nil {
		return nil, err
	}
	return newIdentity(claims, iss, exp, false) // only vmcp's own JWTs name a grant
}

// cached returns the unexpired cache entry of key.
func (in *Introspector) cached(key [sha256.Size]byte) (introspection, bool) {
	return in.cache.get(key, in.now())
}

// store caches r under key until r.until.
func (in *Introspector) store(key [sha256.Size]byte, r introspection) {
	in.cache.put(key, r, r.until)
}
