package authn_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/vmcp-dev/vmcp/internal/authn"
)

// audience is the MCP endpoint URL the tests' tokens are meant for.
const audience = "https://gw.example.com/mcp"

// testKey is a signing key made for the tests.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
	use  string // published "use"; default "sig"
}

func (k testKey) public() authn.PublicKey {
	return authn.PublicKey{KeyID: k.kid, Algorithm: string(k.alg), Key: k.priv.Public()}
}

func (k testKey) jwk() jose.JSONWebKey {
	use := k.use
	if use == "" {
		use = "sig"
	}
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: use}
}

// Generating RSA keys is slow, so each kind of key is made once per test
// binary and shared; they never leave it.
var (
	rsaKeys = sync.OnceValue(func() []*rsa.PrivateKey {
		keys := make([]*rsa.PrivateKey, 3)
		for i := range keys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keys[i] = k
		}
		return keys
	})
	ecKey = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
	edKey = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

// rsaKey returns RSA test key i (0–2) under kid.
func rsaKey(i int, kid string) testKey {
	return testKey{kid: kid, alg: jose.RS256, priv: rsaKeys()[i]}
}

// sign returns a compact JWS of claims signed with k; extra header fields
// are added to the protected header.
func sign(t testing.TB, k testKey, claims map[string]any, extra map[jose.HeaderKey]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("at+jwt")
	if k.kid != "" {
		opts = opts.WithHeader("kid", k.kid)
	}
	for h, v := range extra {
		opts = opts.WithHeader(h, v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// claimsFor returns valid access token claims for issuer at now.
func claimsFor(issuer string, now time.Time) map[string]any {
	return map[string]any{
		"iss":   issuer,
		"sub":   "user-1",
		"aud":   []any{audience, "other"},
		"exp":   now.Add(time.Hour).Unix(),
		"iat":   now.Unix(),
		"nbf":   now.Unix(),
		"scope": "tools:read tools:call",
		"gid":   "grant-1",
		"idp":   "github",
	}
}

// fakeIdP is an identity provider over httptest: discovery, a JWKS and an
// introspection endpoint, with request counters.
type fakeIdP struct {
	srv *httptest.Server

	jwksHits       atomic.Int32
	discoveryHits  atomic.Int32
	introspectHits atomic.Int32
	jwksDown       atomic.Bool
	introspectDown atomic.Bool

	// introspectArrived, if set, is sent to (without blocking) when an
	// introspection request arrives; introspectGate, if set, is received
	// from before it is answered.
	introspectArrived chan struct{}
	introspectGate    chan struct{}

	mu         sync.Mutex // guards all fields below
	keys       []testKey  // published in the JWKS
	oidc       bool       // serve /.well-known/openid-configuration
	mdIssuer   string     // issuer claimed by the metadata; default the URL
	active     map[string]map[string]any
	clientID   string
	secret     string
	lastForm   map[string][]string
	lastHeader http.Header
}

func newIdP(t testing.TB, keys ...testKey) *fakeIdP {
	t.Helper()
	p := &fakeIdP{keys: keys, oidc: true, active: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		oidc := p.oidc
		p.mu.Unlock()
		if !oidc {
			http.NotFound(w, r)
			return
		}
		p.serveMetadata(w)
	})
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, _ *http.Request) {
		p.serveMetadata(w)
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		p.jwksHits.Add(1)
		if p.jwksDown.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		p.mu.Lock()
		var set jose.JSONWebKeySet
		for _, k := range p.keys {
			set.Keys = append(set.Keys, k.jwk())
		}
		p.mu.Unlock()
		writeJSON(w, set)
	})
	mux.HandleFunc("POST /introspect", p.serveIntrospect)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *fakeIdP) URL() string { return p.srv.URL }

func (p *fakeIdP) serveMetadata(w http.ResponseWriter) {
	p.discoveryHits.Add(1)
	p.mu.Lock()
	iss := p.mdIssuer
	p.mu.Unlock()
	if iss == "" {
		iss = p.srv.URL
	}
	writeJSON(w, map[string]any{
		"issuer":                 iss,
		"jwks_uri":               p.srv.URL + "/jwks",
		"introspection_endpoint": p.srv.URL + "/introspect",
	})
}

func (p *fakeIdP) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	p.introspectHits.Add(1)
	if p.introspectArrived != nil {
		select {
		case p.introspectArrived <- struct{}{}:
		default:
		}
	}
	if p.introspectGate != nil {
		<-p.introspectGate
	}
	if p.introspectDown.Load() {
		http.Error(w, "down", http.StatusBadGateway)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastForm = r.PostForm
	p.lastHeader = r.Header.Clone()
	if p.clientID != "" {
		// RFC 6749 §2.3.1: both parts are form-encoded inside Basic.
		id, secret, ok := r.BasicAuth()
		id, err1 := url.QueryUnescape(id)
		secret, err2 := url.QueryUnescape(secret)
		if !ok || err1 != nil || err2 != nil || id != p.clientID || secret != p.secret {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}
	resp, ok := p.active[r.PostForm.Get("token")]
	if !ok {
		resp = map[string]any{"active": false}
	}
	writeJSON(w, resp)
}

// setKeys replaces the published keys.
func (p *fakeIdP) setKeys(keys ...testKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = keys
}

// setActive makes the introspection endpoint answer resp for token.
func (p *fakeIdP) setActive(token string, resp map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active[token] = resp
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
