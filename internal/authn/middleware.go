package authn

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/vmcp-dev/vmcp/internal/identity"
	"github.com/vmcp-dev/vmcp/internal/wire"
)

// MiddlewareOptions configure [Middleware].
type MiddlewareOptions struct {
	// ResourceMetadata is the absolute URL of the protected resource
	// metadata (see [MetadataLocations]), named in every challenge so that
	// clients can find the authorization server. Default: none (the
	// challenges then lack it, which MCP clients need; set it).
	ResourceMetadata string
	// Scopes are the scopes every request needs (checked with
	// [identity.Identity.HasScope], so a parent scope satisfies a child).
	// They are named in the challenges. Default: none.
	Scopes []string
	// Logger receives one debug record per rejected request (a warning
	// when validation is unavailable), naming the token only by
	// [Fingerprint]. Default: discard.
	Logger *slog.Logger
}

// Middleware authenticates every request with a: it takes the bearer token
// from the Authorization header (never from the query string or a form
// body), checks the required scopes and serves the request with the
// identity in its context ([identity.With]). Rejected requests get the
// responses of [WriteError]. CORS preflight requests, which never carry
// credentials, pass through without an identity. It panics if a is nil;
// anonymous mode uses [Anonymous] instead.
func Middleware(a Authenticator, opts *MiddlewareOptions) func(http.Handler) http.Handler {
	if a == nil {
		panic("authn: Middleware needs an Authenticator (use Anonymous for anonymous mode)")
	}
	var o MiddlewareOptions
	if opts != nil {
		o = *opts
	}
	o.Scopes = append([]string(nil), o.Scopes...)
	logger := ensureLogger(o.Logger)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				next.ServeHTTP(w, r)
				return
			}
			token, err := bearerToken(r)
			var id *identity.Identity
			if err == nil {
				id, err = authenticate(r, a, token, o.Scopes)
			}
			if err != nil {
				logRejection(logger, r, token, err)
				WriteError(w, err, o.ResourceMetadata, o.Scopes)
				return
			}
			next.ServeHTTP(w, r.WithContext(identity.With(r.Context(), id)))
		})
	}
}

// Anonymous is the middleware of anonymous mode: every request is served
// as [identity.Anonymous], whatever credentials it carries.
func Anonymous(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if identity.From(r.Context()) == identity.Anonymous {
			// Already anonymous (the usual case: no identity at all).
			// Serving r itself saves a copy of the request per request,
			// which an idle session's open GET stream would keep.
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(identity.With(r.Context(), identity.Anonymous)))
	})
}

func authenticate(r *http.Request, a Authenticator, token string, scopes []string) (*identity.Identity, error) {
	id, err := a.Authenticate(r.Context(), token)
	if err != nil {
		return nil, err
	}
	if id.IsAnonymous() {
		return nil, fmt.Errorf("%w: the token names no subject", ErrInvalidToken)
	}
	for _, s := range scopes {
		if !id.HasScope(s) {
			return nil, &InsufficientScopeError{Scopes: scopes}
		}
	}
	return id, nil
}

// bearerToken returns the token of the request's Authorization header. A
// token in the query string alone counts as no token; one in both places,
// several Authorization headers, another scheme or a value that is not one
// RFC 6750 b64token are malformed.
func bearerToken(r *http.Request) (string, error) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return "", ErrNoToken
	}
	if len(vals) > 1 {
		return "", fmt.Errorf("%w: several Authorization headers", ErrInvalidRequest)
	}
	if queryHasToken(r.URL) {
		return "", fmt.Errorf("%w: access token in both the header and the query", ErrInvalidRequest)
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("%w: not a Bearer authorization", ErrInvalidRequest)
	}
	token = strings.TrimLeft(token, " ")
	if !isB64Token(token) {
		return "", fmt.Errorf("%w: the bearer token is not one b64token", ErrInvalidRequest)
	}
	return token, nil
}

func queryHasToken(u *url.URL) bool {
	if !strings.Contains(u.RawQuery, "access_token") {
		return false
	}
	q, _ := url.ParseQuery(u.RawQuery)
	return q.Has("access_token")
}

// isB64Token reports whether s matches RFC 6750's
// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		if !b64TokenChar[body[i]] {
			return false
		}
	}
	return true
}

// b64TokenChar marks the characters of RFC 6750's b64token (besides the
// trailing '='): a table, since every request's token is checked.
var b64TokenChar = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
	}
	return t
}()

func logRejection(logger *slog.Logger, r *http.Request, token string, err error) {
	level := slog.LevelDebug
	if status, _, _ := classify(err); status >= 500 {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", err.Error())}
	if token != "" {
		attrs = append(attrs, slog.String("token_sha256", Fingerprint(token)))
	}
	logger.LogAttrs(r.Context(), level, "request not authenticated", attrs...)
}

// WriteError writes the response for an authentication failure err:
//
//   - [ErrNoToken]: 401, WWW-Authenticate: Bearer resource_metadata="…", scope="…"
//   - [ErrInvalidRequest]: 400, Bearer error="invalid_request", resource_metadata="…"
//   - [ErrInvalidToken]: 401, Bearer error="invalid_token", resource_metadata="…", scope="…"
//   - [*InsufficientScopeError]: 403, Bearer error="insufficient_scope", scope="…", resource_metadata="…"
//     (the error's scopes replace scopes)
//   - [ErrUnavailable]: 503; any other error: 500; neither has a challenge.
//
// Attributes whose value is empty are left out. The body is a JSON-RPC
// error with a null id; it never repeats err, which may name configuration.
func WriteError(w http.ResponseWriter, err error, resourceMetadata string, scopes []string) {
	status, code, msg := classify(err)
	if ise := (*InsufficientScopeError)(nil); errors.As(err, &ise) {
		scopes = ise.Scopes
	}
	scope := strings.Join(scopes, " ")
	var attrs [][2]string
	switch code {
	case "":
		attrs = [][2]string{{"resource_metadata", resourceMetadata}, {"scope", scope}}
	case "invalid_request":
		attrs = [][2]string{{"error", code}, {"resource_metadata", resourceMetadata}}
	case "invalid_token":
		attrs = [][2]string{{"error", code}, {"resource_metadata", resourceMetadata}, {"scope", scope}}
	case "insufficient_scope":
		attrs = [][2]string{{"error", code}, {"scope", scope}, {"resource_metadata", resourceMetadata}}
	}
	if status < 500 {
		w.Header().Set("WWW-Authenticate", challenge(attrs))
	}
	rpcCode := int64(-32600) // invalid request
	if status >= 500 {
		rpcCode = -32603 // internal error
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(wire.AppendError(nil, nil, &jsonrpc.Error{Code: rpcCode, Message: msg}), '\n'))
}

// classify maps err to an HTTP status, an RFC 6750 error code and a
// message for the client.
func classify(err error) (status int, code, msg string) {
	var ise *InsufficientScopeError
	switch {
	case errors.Is(err, ErrNoToken):
		return http.StatusUnauthorized, "", "authorization required: send an access token in the Authorization header"
	case errors.Is(err, ErrInvalidRequest):
		return http.StatusBadRequest, "invalid_request", "invalid_request: malformed Authorization header"
	case errors.Is(err, ErrInvalidToken):
		return http.StatusUnauthorized, "invalid_token", "invalid_token: the access token is invalid or expired"
	case errors.As(err, &ise):
		return http.StatusForbidden, "insufficient_scope", "insufficient_scope: the access token lacks a required scope"
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, "", "the access token cannot be checked right now; try again later"
	}
	return http.StatusInternalServerError, "", "the access token cannot be checked"
}

// challenge formats a Bearer challenge from its non-empty attributes.
func challenge(attrs [][2]string) string {
	esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	for _, a := range attrs {
		if a[1] == "" {
			continue
		}
		b.WriteString(sep)
		b.WriteString(a[0])
		b.WriteString(`="`)
		b.WriteString(esc.Replace(a[1]))
		b.WriteString(`"`)
		sep = ", "
	}
	return b.String()
}
