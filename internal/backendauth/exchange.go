package backendauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/vmcp-dev/vmcp/internal/identity"
)

// RFC 8693 identifiers.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
)

// TokenExchange obtains, per user, a token for the backend from a security
// token service (RFC 8693) by exchanging the user's token: the one the
// client presented to vmcp, or the user's stored upstream token of a
// provider. Tokens are cached per user until shortly before they expire;
// concurrent exchanges for one user collapse into one.
type TokenExchange struct {
	// TokenURL is the STS token endpoint.
	TokenURL string
	// ClientID and ClientSecret authenticate vmcp to the STS (basic auth).
	ClientID, ClientSecret string
	// Audience and Scopes are requested for the new token; Resource, if
	// set, is sent as RFC 8707 resource.
	Audience string
	Scopes   []string
	Resource string
	// SubjectProvider, if set, exchanges the user's stored upstream token
	// of that provider (through Upstream) instead of the client's token.
	SubjectProvider string
	Upstream        UpstreamFunc
	// HTTPClient reaches the STS. Default: a client with a 10s timeout.
	HTTPClient *http.Client
	// Now is the clock. Default: time.Now.
	Now func() time.Time

	once     sync.Once
	cache    *lru.Cache[string, cachedToken] // safe for concurrent use
	inflight singleflight.Group

	hits, exchanges, fails atomic.Int64
}

// Counts returns how many requests were served from the cache, how many
// exchanges were made, and how many failed.
func (s *TokenExchange) Counts() (hits, exchanges, fails int64) {
	return s.hits.Load(), s.exchanges.Load(), s.fails.Load()
}

type cachedToken struct {
	token string
	until time.Time
}

// expiryMargin is how long before it expires a cached token is replaced.
const expiryMargin = 30 * time.Second

// MaxCachedTokens bounds the exchanged tokens a [TokenExchange] keeps; when
// it is full, the least recently used one makes room, so that a new user
// never makes every other user exchange again.
const MaxCachedTokens = 10000

func (*TokenExchange) PerUser() bool { return true }

func (s *TokenExchange) init() {
	s.once.Do(func() {
		s.cache, _ = lru.New[string, cachedToken](MaxCachedTokens) // fails only for a size < 1
		if s.HTTPClient == nil {
			s.HTTPClient = &http.Client{Timeout: 10 * time.Second}
		}
		if s.Now == nil {
			s.Now = time.Now
		}
	})
}

// Apply sets a token the STS issued for the caller.
func (s *TokenExchange) Apply(ctx context.Context, id *identity.Identity, h http.Header) error {
	if id == nil || id.IsAnonymous() {
		return nil
	}
	s.init()
	subject, err := s.subject(ctx, id)
	if err != nil {
		return err
	}
	// The cache key changes with the subject token, so a user's new token
	// (after a refresh) is exchanged anew.
	sum := sha256.Sum256([]byte(id.Key() + "\x00" + subject))
	key := string(sum[:])
	now := s.Now()
	c, ok := s.cache.Get(key)
	if ok && now.Before(c.until) {
		s.hits.Add(1)
		h.Set("Authorization", "Bearer "+c.token)
		return nil
	}
	v, err, _ := s.inflight.Do(key, func() (any, error) { return s.exchange(context.WithoutCancel(ctx), key, subject) })
	if err != nil {
		s.fails.Add(1)
		return err
	}
	h.Set("Authorization", "Bearer "+v.(string))
	return nil
}

func (s *TokenExchange) subject(ctx context.Context, id *identity.Identity) (string, error) {
	if s.SubjectProvider == "" {
		if id.Credential == "" {
			return "", errors.New("no subject token: the caller presented none")
		}
		return id.Credential, nil
	}
	tok, err := s.Upstream(ctx, id, expiryMargin)
	if err != nil {
		return "", err
	}
	if tok.Provider != s.SubjectProvider {
		return "", fmt.Errorf("%w: the exchange needs a login with %s (the session logged in with %s)", ErrReauthorize, s.SubjectProvider, tok.Provider)
	}
	return tok.AccessToken, nil
}

func (s *TokenExchange) exchange(ctx context.Context, key, subject string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// The request and the answer are golang.org/x/oauth2's: the grant type
	// and the RFC 8693 parameters go in as extra parameters, the client
	// authenticates with HTTP Basic (the method every authorization server
	// supports, and the one vmcp's own requires of its static clients).
	cfg := oauth2.Config{ClientID: s.ClientID, ClientSecret: s.ClientSecret,
		Endpoint: oauth2.Endpoint{TokenURL: s.TokenURL, AuthStyle: oauth2.AuthStyleInHeader}}
	opts := []oauth2.AuthCodeOption{
		oauth2.SetAuthURLParam("grant_type", GrantTypeTokenExchange),
		oauth2.SetAuthURLParam("subject_token", subject),
		oauth2.SetAuthURLParam("subject_token_type", TokenTypeAccessToken),
		oauth2.SetAuthURLParam("requested_token_type", TokenTypeAccessToken),
	}
	if s.Audience != "" {
		opts = append(opts, oauth2.SetAuthURLParam("audience", s.Audience))
	}
	if s.Resource != "" {
		opts = append(opts, oauth2.SetAuthURLParam("resource", s.Resource))
	}
	if len(s.Scopes) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("scope", strings.Join(s.Scopes, " ")))
	}
	tok, err := cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, s.HTTPClient), "", opts...)
	if err != nil {
		return "", s.exchangeError(err)
	}
	ttl := time.Duration(tok.ExpiresIn)*time.Second - expiryMargin
	if tok.ExpiresIn == 0 {
		ttl = 5 * time.Minute // no lifetime given: reuse briefly
	}
	s.exchanges.Add(1)
	if ttl > 0 {
		s.cache.Add(key, cachedToken{token: tok.AccessToken, until: s.Now().Add(ttl)})
	}
	return tok.AccessToken, nil
}

// exchangeError words a failed exchange: the STS's OAuth error code and
// description, or its HTTP status, or why it could not be reached; never
// the body of an answer, which is the STS's to word and could echo what
// was sent.
func (s *TokenExchange) exchangeError(err error) error {
	var re *oauth2.RetrieveError
	var ue *url.Error
	switch {
	case errors.As(err, &re) && re.ErrorCode != "":
		return fmt.Errorf("token exchange refused by the STS: %s: %s", re.ErrorCode, re.ErrorDescription)
	case errors.As(err, &re):
		return fmt.Errorf("token exchange: the STS answered %s", re.Response.Status)
	case errors.As(err, &ue):
		// The URL is the STS's, but keep messages short.
		return fmt.Errorf("token exchange: the STS at %s cannot be reached: %w", s.TokenURL, ue.Err)
	}
	return fmt.Errorf("token exchange: %w", err)
}
