package authn

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// PublicKey is a key that verifies token signatures.
type PublicKey struct {
	// KeyID is the key's "kid": tokens naming it are verified with it. A
	// token without a kid is tried against every key that fits its
	// algorithm.
	KeyID string
	// Algorithm, if not empty, is the only algorithm ("RS256", …) the key
	// verifies.
	Algorithm string
	// Key is an *rsa.PublicKey (at least 2048 bits), an *ecdsa.PublicKey or
	// an ed25519.PublicKey. Keys of other types are ignored.
	Key crypto.PublicKey
}

// KeySource returns the current verification keys, for an issuer whose keys
// are in process (vmcp's own authorization server). It is called for every
// token, so it must be cheap and safe for concurrent use.
type KeySource func(ctx context.Context) ([]PublicKey, error)

// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
const minRSABits = 2048

// maxDocumentBytes bounds discovery documents and key sets.
const maxDocumentBytes = 1 << 20

// fits reports whether k can verify a signature made with alg.
func (k PublicKey) fits(alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		return key != nil && key.N != nil && key.N.BitLen() >= minRSABits &&
			(strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS"))
	case *ecdsa.PublicKey:
		if key == nil {
			return false
		}
		switch alg {
		case "ES256":
			return key.Curve == elliptic.P256()
		case "ES384":
			return key.Curve == elliptic.P384()
		case "ES512":
			return key.Curve == elliptic.P521()
		}
		return false
	case ed25519.PublicKey:
		return alg == "EdDSA" && len(key) == ed25519.PublicKeySize
	}
	return false
}

// candidates returns the keys of keys that may verify a token signed with
// alg under kid.
func candidates(keys []PublicKey, kid, alg string) []PublicKey {
	var out []PublicKey
	for _, k := range keys {
		if (kid == "" || k.KeyID == kid) && k.fits(alg) {
			out = append(out, k)
		}
	}
	return out
}

// keySnapshot is an immutable view of a fetched key set.
type keySnapshot struct {
	keys    []PublicKey
	fetched time.Time
}

// remoteKeys caches the key set of a remote issuer. Keys are fetched on
// first use, refetched when stale or when a token names an unknown kid;
// concurrent fetches collapse into one, and fetches happen at most once per
// minInterval whatever tokens arrive.
type remoteKeys struct {
	// fixed at creation
	client      *http.Client
	issuer      string
	minInterval time.Duration
	ttl         time.Duration
	now         func() time.Time
	logger      *slog.Logger

	snap   atomic.Pointer[keySnapshot]
	flight singleflight.Group

	mu          sync.Mutex // guards all fields below
	jwksURL     string     // configured, or found by discovery
	lastAttempt time.Time  // start of the last fetch
	lastErr     error      // outcome of the last fetch
}

// keys returns the keys that may verify a token signed with alg under kid.
// It fetches the key set when there is none yet, when it is older than the
// cache TTL, or when no key fits and refetch reports that the token is
// worth it (a pre-check of its unverified claims passes).
func (r *remoteKeys) keys(ctx context.Context, kid, alg string, refetch func() bool) ([]PublicKey, error) {
	s := r.snap.Load()
	if s != nil && r.now().Sub(s.fetched) < r.ttl {
		if c := candidates(s.keys, kid, alg); len(c) > 0 {
			return c, nil
		}
		if !refetch() {
			return nil, fmt.Errorf("%w: no key for kid %q and alg %s", ErrInvalidToken, kid, alg)
		}
	}
	if err := r.refresh(ctx); err != nil {
		if s = r.snap.Load(); s == nil {
			return nil, err
		}
		// A stale key set still verifies tokens while the issuer is away;
		// only an unknown key makes the outage the caller's problem.
		if c := candidates(s.keys, kid, alg); len(c) > 0 {
			return c, nil
		}
		return nil, err
	}
	if c := candidates(r.snap.Load().keys, kid, alg); len(c) > 0 {
		return c, nil
	}
	return nil, fmt.Errorf("%w: no key for kid %q and alg %s", ErrInvalidToken, kid, alg)
}

// refresh fetches the key set unless a fetch started less than minInterval
// ago; then it reports that fetch's outcome. Concurrent callers share one
// fetch, which is not cancelled when one of them gives up.
func (r *remoteKeys) refresh(ctx context.Context) error {
	ch := r.flight.DoChan("jwks", func() (any, error) {
		r.mu.Lock()
		now := r.now()
		if !r.lastAttempt.IsZero() && now.Sub(r.lastAttempt) < r.minInterval {
			err := r.lastErr
			r.mu.Unlock()
			return nil, err
		}
		r.lastAttempt = now
		r.mu.Unlock()

		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultHTTPTimeout)
		defer cancel()
		keys, err := r.fetch(fctx)
		r.mu.Lock()
		r.lastErr = err
		r.mu.Unlock()
		if err != nil {
			r.logger.Warn("jwks fetch failed", "issuer", r.issuer, "error", err)
			return nil, err
		}
		r.snap.Store(&keySnapshot{keys: keys, fetched: now})
		r.logger.Info("jwks fetched", "issuer", r.issuer, "keys", len(keys))
		return nil, nil
	})
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for jwks: %w", ErrUnavailable, ctx.Err())
	}
}

// fetch discovers the key set URL if needed and fetches the key set.
func (r *remoteKeys) fetch(ctx context.Context) ([]PublicKey, error) {
	r.mu.Lock()
	jwksURL := r.jwksURL
	r.mu.Unlock()
	if jwksURL == "" {
		u, err := r.discover(ctx)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.jwksURL = u
		r.mu.Unlock()
		jwksURL = u
	}
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := r.getJSON(ctx, jwksURL, &raw); err != nil {
		return nil, fmt.Errorf("%w: jwks: %w", ErrUnavailable, err)
	}
	keys := make([]PublicKey, 0, len(raw.Keys))
	for _, b := range raw.Keys {
		k, ok := parseJWK(b)
		if !ok {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: jwks %s holds no usable signing key", ErrUnavailable, jwksURL)
	}
	return keys, nil
}

// parseJWK reads one key of a JWKS; keys that cannot verify signatures
// (encryption keys, symmetric keys, unknown types, weak RSA keys) are
// skipped.
func parseJWK(b []byte) (PublicKey, bool) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(b); err != nil {
		return PublicKey{}, false
	}
	if jwk.Use != "" && jwk.Use != "sig" {
		return PublicKey{}, false
	}
	if !jwk.IsPublic() {
		jwk = jwk.Public() // a misconfigured issuer published a private key
	}
	k := PublicKey{KeyID: jwk.KeyID, Algorithm: jwk.Algorithm, Key: jwk.Key}
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		return k, key.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey, ed25519.PublicKey:
		return k, true
	}
	return PublicKey{}, false
}

// discover finds the issuer's jwks_uri: OpenID Connect discovery first, then
// RFC 8414 authorization server metadata. The document's issuer must equal
// the configured one.
func (r *remoteKeys) discover(ctx context.Context) (string, error) {
	var errs []error
	for _, u := range discoveryURLs(r.issuer) {
		var md struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := r.getJSON(ctx, u, &md); err != nil {
			errs = append(errs, err)
			continue
		}
		if md.Issuer != r.issuer {
			errs = append(errs, fmt.Errorf("%s: issuer %q does not match %q", u, md.Issuer, r.issuer))
			continue
		}
		if err := checkHTTPURL(md.JWKSURI); err != nil {
			errs = append(errs, fmt.Errorf("%s: jwks_uri: %w", u, err))
			continue
		}
		return md.JWKSURI, nil
	}
	return "", fmt.Errorf("%w: discovery: %w", ErrUnavailable, errors.Join(errs...))
}

// discoveryURLs returns the metadata URLs of issuer: the OpenID Connect one
// (path appended) and the RFC 8414 one (path inserted).
func discoveryURLs(issuer string) []string {
	oidc := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	u, err := url.Parse(issuer)
	if err != nil {
		return []string{oidc}
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	oauth := u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + path
	return []string{oidc, oauth}
}

// getJSON fetches u and decodes its JSON body into v.
func (r *remoteKeys) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocumentBytes))
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDocumentBytes)).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// checkHTTPURL checks that s is an absolute http(s) URL.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}
