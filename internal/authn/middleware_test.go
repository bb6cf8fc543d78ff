package authn_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/testsupport/logbuf"

	"github.com/vmcp-dev/vmcp/internal/authn"
	"github.com/vmcp-dev/vmcp/internal/identity"
)

const metadataURL = "https://gw.example.com/.well-known/oauth-protected-resource/mcp"

// authFunc adapts a function to [authn.Authenticator].
type authFunc func(ctx context.Context, token string) (*identity.Identity, error)

func (f authFunc) Authenticate(ctx context.Context, token string) (*identity.Identity, error) {
	return f(ctx, token)
}

// identityEcho serves the subject and scopes of the request's identity.
var identityEcho = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	id := identity.From(r.Context())
	fmt.Fprintf(w, "%s %s", id.Subject, strings.Join(id.Scopes, ","))
})

// asServer is vmcp's own authorization server as the tests see it: local
// keys, issuer and audience.
type asServer struct {
	iss  string
	key  testKey
	clk  *clock
	auth *authn.JWTVerifier
}

func newAS(t *testing.T) *asServer {
	t.Helper()
	a := &asServer{iss: "https://gw.example.com", key: rsaKey(0, "as-1"), clk: newClock()}
	v, err := authn.NewJWTVerifier(&authn.JWTOptions{
		Issuer:   a.iss,
		Audience: audience,
		Now:      a.clk.Now,
		Keys: func(context.Context) ([]authn.PublicKey, error) {
			return []authn.PublicKey{a.key.public()}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	a.auth = v
	return a
}

// token returns a token granting scope ("" for none).
func (a *asServer) token(t testing.TB, scope string) string {
	m := claimsFor(a.iss, a.clk.Now())
	m["scope"] = scope
	return sign(t, a.key, m, nil)
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	as := newAS(t)
	expired := claimsFor(as.iss, as.clk.Now().Add(-2*time.Hour))
	unavailable := authFunc(func(context.Context, string) (*identity.Identity, error) {
		return nil, fmt.Errorf("%w: jwks: connection refused", authn.ErrUnavailable)
	})
	anonymousID := authFunc(func(context.Context, string) (*identity.Identity, error) {
		return identity.Anonymous, nil
	})
	const (
		challengeNoToken = `Bearer resource_metadata="` + metadataURL + `", scope="tools:read"`
		challengeInvalid = `Bearer error="invalid_token", resource_metadata="` + metadataURL + `", scope="tools:read"`
		challengeRequest = `Bearer error="invalid_request", resource_metadata="` + metadataURL + `"`
		challengeScope   = `Bearer error="insufficient_scope", scope="tools:read", resource_metadata="` + metadataURL + `"`
	)
	tests := []struct {
		name      string
		auth      authn.Authenticator // default as.auth
		method    string              // default POST
		target    string              // default /mcp
		header    []string            // Authorization values
		extra     http.Header
		status    int
		challenge string
		body      string // the response body on success
	}{
		{name: "valid", header: []string{"Bearer " + as.token(t, "tools:read")}, status: 200, body: "user-1 tools:read"},
		{name: "scheme is case-insensitive", header: []string{"bearer " + as.token(t, "tools:read")}, status: 200, body: "user-1 tools:read"},
		{name: "parent scope satisfies child", header: []string{"Bearer " + as.token(t, "tools")}, status: 200, body: "user-1 tools"},
		{name: "DELETE too", method: http.MethodDelete, status: 401, challenge: challengeNoToken},
		{name: "no token", status: 401, challenge: challengeNoToken},
		{name: "query token only", target: "/mcp?access_token=" + as.token(t, "tools:read"), status: 401, challenge: challengeNoToken},
		{name: "token in header and query", target: "/mcp?access_token=x", header: []string{"Bearer " + as.token(t, "tools:read")}, status: 400, challenge: challengeRequest},
		{name: "two words", header: []string{"Bearer a b"}, status: 400, challenge: challengeRequest},
		{name: "basic", header: []string{"Basic dXNlcjpwYXNz"}, status: 400, challenge: challengeRequest},
		{name: "bearer without token", header: []string{"Bearer"}, status: 400, challenge: challengeRequest},
		{name: "bearer and spaces", header: []string{"Bearer   "}, status: 400, challenge: challengeRequest},
		{name: "empty header", header: []string{""}, status: 400, challenge: challengeRequest},
		{name: "not a b64token", header: []string{"Bearer abc\"def"}, status: 400, challenge: challengeRequest},
		{name: "two headers", header: []string{"Bearer a", "Bearer b"}, status: 400, challenge: challengeRequest},
		{name: "invalid token", header: []string{"Bearer not-a-token"}, status: 401, challenge: challengeInvalid},
		{name: "expired token", header: []string{"Bearer " + sign(t, as.key, expired, nil)}, status: 401, challenge: challengeInvalid},
		{name: "token of no subject", auth: anonymousID, header: []string{"Bearer x"}, status: 401, challenge: challengeInvalid},
		{name: "insufficient scope", header: []string{"Bearer " + as.token(t, "tools:call prompts")}, status: 403, challenge: challengeScope},
		{name: "child scope does not satisfy parent", header: []string{"Bearer " + as.token(t, "tools:read:x")}, status: 403, challenge: challengeScope},
		{name: "idp unavailable", auth: unavailable, header: []string{"Bearer x"}, status: 503},
		{
			name: "CORS preflight passes", method: http.MethodOptions,
			extra:  http.Header{"Origin": {"https://app.example"}, "Access-Control-Request-Method": {"POST"}},
			status: 200, body: " ",
		},
		{name: "other OPTIONS need a token", method: http.MethodOptions, status: 401, challenge: challengeNoToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := tt.auth
			if a == nil {
				a = as.auth
			}
			h := authn.Middleware(a, &authn.MiddlewareOptions{
				ResourceMetadata: metadataURL,
				Scopes:           []string{"tools:read"},
			})(identityEcho)
			method, target := tt.method, tt.target
			if method == "" {
				method = http.MethodPost
			}
			if target == "" {
				target = "/mcp"
			}
			req := httptest.NewRequest(method, target, strings.NewReader(`{}`))
			for _, v := range tt.header {
				req.Header.Add("Authorization", v)
			}
			for k, v := range tt.extra {
				req.Header[k] = v
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d (body %q)", rec.Code, tt.status, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate:\n got %s\nwant %s", got, tt.challenge)
			}
			if tt.status == 200 {
				if got := rec.Body.String(); got != tt.body {
					t.Errorf("body %q, want %q", got, tt.body)
				}
				return
			}
			var body struct {
				JSONRPC string          `json:"jsonrpc"`
				ID      json.RawMessage `json:"id"`
				Error   struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if body.JSONRPC != "2.0" || string(body.ID) != "null" || body.Error.Code == 0 || body.Error.Message == "" {
				t.Errorf("body %s is not a JSON-RPC error with a null id", rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestWriteError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		err       error
		rm        string
		scopes    []string
		status    int
		challenge string
	}{
		{name: "no scopes, no metadata", err: authn.ErrNoToken, status: 401, challenge: "Bearer"},
		{name: "several scopes", err: authn.ErrNoToken, rm: metadataURL, scopes: []string{"a", "b:c"}, status: 401,
			challenge: `Bearer resource_metadata="` + metadataURL + `", scope="a b:c"`},
		{name: "wrapped invalid token", err: fmt.Errorf("x: %w", authn.ErrInvalidToken), scopes: []string{"a"}, status: 401,
			challenge: `Bearer error="invalid_token", scope="a"`},
		{name: "scopes of the error win", err: fmt.Errorf("tool: %w", &authn.InsufficientScopeError{Scopes: []string{"tools:write", "tools"}}),
			rm: metadataURL, scopes: []string{"a"}, status: 403,
			challenge: `Bearer error="insufficient_scope", scope="tools:write tools", resource_metadata="` + metadataURL + `"`},
		{name: "quotes are escaped", err: authn.ErrNoToken, rm: `https://x/"a\b`, status: 401,
			challenge: `Bearer resource_metadata="https://x/\"a\\b"`},
		{name: "unavailable", err: authn.ErrUnavailable, rm: metadataURL, status: 503},
		{name: "unknown error", err: errors.New("boom"), rm: metadataURL, status: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			authn.WriteError(rec, tt.err, tt.rm, tt.scopes)
			if rec.Code != tt.status {
				t.Errorf("status %d, want %d", rec.Code, tt.status)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate:\n got %s\nwant %s", got, tt.challenge)
			}
			if strings.Contains(rec.Body.String(), "boom") {
				t.Errorf("body %q repeats the error", rec.Body)
			}
		})
	}
}

func TestAnonymous(t *testing.T) {
	t.Parallel()
	var got *identity.Identity
	h := authn.Anonymous(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got = identity.From(r.Context())
	}))
	req := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	req.Header.Set("Authorization", "Bearer whatever")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || got != identity.Anonymous {
		t.Errorf("status %d, identity %+v; want 200 and identity.Anonymous", rec.Code, got)
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer = logbuf.Buffer

// TestNoTokenInLogs drives every path of the middleware and both
// authenticators with a debug logger and looks for the tokens, or any of
// their parts, in the output.
func TestNoTokenInLogs(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	k := rsaKey(0, "k1")
	p := newIdP(t, k)
	c := newClock()
	v := newVerifier(t, p, c, func(o *authn.JWTOptions) { o.Logger = logger })
	in := newIntrospector(t, p, c, nil)
	chain := &authn.Chain{JWT: v, Opaque: in}
	h := authn.Middleware(chain, &authn.MiddlewareOptions{
		ResourceMetadata: metadataURL, Scopes: []string{"tools:read"}, Logger: logger,
	})(identityEcho)

	valid := sign(t, k, claimsFor(p.URL(), c.Now()), nil)
	noScope := func() string {
		m := claimsFor(p.URL(), c.Now())
		m["scope"] = "other"
		return sign(t, k, m, nil)
	}()
	expired := sign(t, k, claimsFor(p.URL(), c.Now().Add(-3*time.Hour)), nil)
	foreign := sign(t, rsaKey(1, "k9"), claimsFor(p.URL(), c.Now()), nil)
	opaque := "ory_at_SECRETOPAQUE.SIGNATUREPART"
	inactive := "ory_at_INACTIVEOPAQUE.SIGNATUREPART"
	p.setActive(opaque, activeResponse(p.URL(), c.Now().Add(time.Hour)))
	tokens := []string{valid, noScope, expired, tamper(valid, 2), foreign, opaque, inactive}

	do := func(target string, auth ...string) {
		req := httptest.NewRequest(http.MethodPost, target, nil)
		for _, a := range auth {
			req.Header.Add("Authorization", a)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	for _, tok := range tokens {
		do("/mcp", "Bearer "+tok)
		do("/mcp?access_token="+tok, "Bearer "+tok)
		do("/mcp?access_token=" + tok)
		do("/mcp", "Bearer "+tok, "Bearer "+tok)
		do("/mcp", "Basic "+tok)
		do("/mcp", "Bearer "+tok+" "+tok)
	}
	c.Advance(time.Minute)
	p.introspectDown.Store(true)
	p.jwksDown.Store(true)
	do("/mcp", "Bearer "+inactive+"x")
	do("/mcp", "Bearer "+foreign)

	out := logs.String()
	if !strings.Contains(out, "token_sha256") {
		t.Fatalf("no rejection was logged:\n%s", out)
	}
	for _, tok := range tokens {
		for part := range strings.SplitSeq(tok, ".") {
			if len(part) >= 8 && strings.Contains(out, part) {
				t.Errorf("log output contains part %q of a token", part)
			}
		}
	}
}
