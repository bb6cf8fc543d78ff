package authn

import (
	"bytes"
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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
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

// remoteKeys verifies signatures with the key set of a remote issuer,
// through go-oidc's [oidc.RemoteKeySet]: it caches the keys, collapses
// concurrent fetches, and fetches again when no cached key verifies a
// signature. vmcp adds, around it:
//
//   - jwksSource, the key sets' transport: it finds the key set by discovery,
//     fetches it at most once per minInterval (in between it answers with
//     the last outcome, so forged tokens cannot make vmcp hammer the issuer),
//     bounds the document, drops keys vmcp does not accept, and reports
//     failures as [ErrUnavailable];
//   - a lifetime: a key set older than ttl is replaced by a fresh one (so a
//     key the issuer withdrew stops verifying), unless the fetch fails: then
//     the old keys keep verifying the tokens they cover.
type remoteKeys struct {
	// fixed at creation
	ttl    time.Duration
	now    func() time.Time
	src    *jwksSource
	client *http.Client // the key sets' client: its transport is src

	gen atomic.Pointer[keyGen] // the key set in use
}

// keyGen is a key set and when it was made.
type keyGen struct {
	set  *oidc.RemoteKeySet
	born time.Time
}

func newRemoteKeys(src *jwksSource, ttl time.Duration, now func() time.Time) *remoteKeys {
	return &remoteKeys{ttl: ttl, now: now, src: src, client: &http.Client{Transport: src}}
}

// newGen makes an empty key set; its first use fetches the keys.
func (r *remoteKeys) newGen() *keyGen {
	// The URL is only what go-oidc puts in its requests: the source fetches
	// the key set it was configured with or found by discovery.
	ctx := oidc.ClientContext(context.Background(), r.client)
	return &keyGen{set: oidc.NewRemoteKeySet(ctx, r.src.requestURL()), born: r.now()}
}

// verify checks the signature of token, already parsed with the accepted
// algorithms, and returns its payload.
func (r *remoteKeys) verify(ctx context.Context, token string) ([]byte, error) {
	g := r.gen.Load()
	if g == nil {
		r.gen.CompareAndSwap(nil, r.newGen())
		g = r.gen.Load()
	}
	if r.now().Sub(g.born) >= r.ttl && r.src.due() {
		fresh := r.newGen()
		payload, err := fresh.set.VerifySignature(ctx, token)
		if !errors.Is(err, ErrUnavailable) && ctx.Err() == nil {
			// The fetch worked (the token verified or not): the fresh
			// keys replace the old ones.
			r.gen.CompareAndSwap(g, fresh)
			return keySetResult(ctx, payload, err)
		}
		// The issuer is away: the old keys still verify what they cover.
	}
	payload, err := g.set.VerifySignature(ctx, token)
	return keySetResult(ctx, payload, err)
}

// keySetResult words the outcome of a key set's VerifySignature.
func keySetResult(ctx context.Context, payload []byte, err error) ([]byte, error) {
	switch {
	case err == nil:
		return payload, nil
	case errors.Is(err, ErrUnavailable):
		return nil, err
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%w: waiting for jwks: %w", ErrUnavailable, ctx.Err())
	}
	return nil, fmt.Errorf("%w: signature: no key of the issuer verifies it", ErrInvalidToken)
}

// jwksSource is the transport of the go-oidc key sets of one issuer. It
// fetches the key set document (found by discovery unless configured) at
// most once per minInterval; in between, and for every request whatever its
// URL, it answers with the outcome of the last fetch. Answers are bounded
// and carry only the keys vmcp accepts; failures are errors wrapping
// [ErrUnavailable].
type jwksSource struct {
	// fixed at creation
	client      *http.Client // the caller's, for the real fetches
	issuer      string
	algs        []jose.SignatureAlgorithm
	minInterval time.Duration
	now         func() time.Time
	logger      *slog.Logger

	mu          sync.Mutex // guards all fields below; held during a fetch
	jwksURL     string     // configured, or found by discovery
	lastAttempt time.Time  // start of the last fetch
	body        []byte     // the last fetched key set, filtered
	err         error      // or why the last fetch failed
}

// requestURL is the URL go-oidc's key sets are made with.
func (s *jwksSource) requestURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jwksURL != "" {
		return s.jwksURL
	}
	return s.issuer
}

// due reports whether a request now would fetch the key set.
func (s *jwksSource) due() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAttempt.IsZero() || s.now().Sub(s.lastAttempt) >= s.minInterval
}

// RoundTrip answers a key set's request for the key set document.
func (s *jwksSource) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := s.now(); s.lastAttempt.IsZero() || now.Sub(s.lastAttempt) >= s.minInterval {
		s.lastAttempt = now
		ctx, cancel := context.WithTimeout(req.Context(), DefaultHTTPTimeout)
		s.body, s.err = s.fetch(ctx)
		cancel()
		if s.err != nil {
			s.logger.Warn("jwks fetch failed", "issuer", s.issuer, "error", s.err)
		} else {
			s.logger.Info("jwks fetched", "issuer", s.issuer)
		}
	}
	if s.err != nil {
		return nil, s.err
	}
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(s.body)),
		ContentLength: int64(len(s.body)),
		Request:       req,
	}, nil
}

// fetch discovers the key set URL if needed, fetches the key set and
// returns it with only the keys vmcp accepts. Called with s.mu held.
func (s *jwksSource) fetch(ctx context.Context) ([]byte, error) {
	if s.jwksURL == "" {
		u, err := s.discover(ctx)
		if err != nil {
			return nil, err
		}
		s.jwksURL = u
	}
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := getJSON(ctx, s.client, s.jwksURL, &raw); err != nil {
		return nil, fmt.Errorf("%w: jwks: %w", ErrUnavailable, err)
	}
	var set jose.JSONWebKeySet
	for _, b := range raw.Keys {
		if k, ok := parseJWK(b, s.algs); ok {
			set.Keys = append(set.Keys, k)
		}
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("%w: jwks %s holds no usable signing key", ErrUnavailable, s.jwksURL)
	}
	body, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("%w: jwks: %w", ErrUnavailable, err)
	}
	return body, nil
}

// parseJWK reads one key of a JWKS; keys that cannot verify signatures
// vmcp accepts (encryption keys, symmetric keys, unknown types, weak RSA
// keys, keys for another algorithm than algs) are skipped. A private key a
// misconfigured issuer published is reduced to its public part.
func parseJWK(b []byte, algs []jose.SignatureAlgorithm) (jose.JSONWebKey, bool) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(b); err != nil {
		return jose.JSONWebKey{}, false
	}
	if jwk.Use != "" && jwk.Use != "sig" {
		return jose.JSONWebKey{}, false
	}
	if jwk.Algorithm != "" && !slices.Contains(algs, jose.SignatureAlgorithm(jwk.Algorithm)) {
		return jose.JSONWebKey{}, false
	}
	if !jwk.IsPublic() {
		jwk = jwk.Public()
	}
	switch key := jwk.Key.(type) {
	case *rsa.PublicKey:
		return jwk, key.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey, ed25519.PublicKey:
		return jwk, true
	}
	return jose.JSONWebKey{}, false
}

// discover finds the issuer's jwks_uri: OpenID Connect discovery first, then
// RFC 8414 authorization server metadata. The document's issuer must equal
// the configured one.
func (s *jwksSource) discover(ctx context.Context) (string, error) {
	var errs []error
	for _, u := range discoveryURLs(s.issuer) {
		var md struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := getJSON(ctx, s.client, u, &md); err != nil {
			errs = append(errs, err)
			continue
		}
		if md.Issuer != s.issuer {
			errs = append(errs, fmt.Errorf("%s: issuer %q does not match %q", u, md.Issuer, s.issuer))
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

// getJSON fetches u with client and decodes its JSON body into v.
func getJSON(ctx context.Context, client *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
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
