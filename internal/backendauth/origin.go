package backendauth

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Where credentials may go.
//
// A backend's credentials (and the session ID vmcp holds with it) belong to
// the backend's origin: its URL's scheme, host and port. A redirect that
// leads elsewhere is not followed, since net/http would send it the
// headers it copies (the session ID, custom credential headers) and a
// credential transport would add the rest. Within the origin, a redirect
// is followed only if it keeps the request's method (307 and 308, or any
// redirect of a GET): 301, 302 and 303 turn a POST into a GET without its
// body, which no MCP endpoint expects. An MCP endpoint that moved is
// configured with its new URL.

// SameOrigin reports whether a and b have the same scheme, host and port
// (ports compared with the scheme's default made explicit).
func SameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return "443"
	case "http":
		return "80"
	}
	return ""
}

// maxRedirects is how many redirects one request may follow.
const maxRedirects = 10

// RedirectError is a redirect vmcp does not follow.
type RedirectError struct {
	Status   int    // the redirect's HTTP status
	Location string // where it led, redacted ([RedactURL])
	Reason   string
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("the backend redirected (HTTP %d) to %s, which vmcp does not follow: %s", e.Status, e.Location, e.Reason)
}

// CheckRedirect is the redirect policy of an http.Client that sends a
// backend's requests (see above): a redirect is followed only within the
// origin of the first request, keeping its method, at most ten times.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	first := via[0]
	status := 0
	if req.Response != nil {
		status = req.Response.StatusCode
	}
	fail := func(reason string) error {
		return &RedirectError{Status: status, Location: RedactURL(req.URL), Reason: reason}
	}
	switch {
	case !SameOrigin(req.URL, first.URL):
		return fail("it leads to another origin than the backend's (set the backend's url to where it serves MCP)")
	case req.Method != first.Method:
		return fail(fmt.Sprintf("it would turn a %s into a %s", first.Method, req.Method))
	case len(via) >= maxRedirects:
		return fail(fmt.Sprintf("stopped after %d redirects", maxRedirects))
	}
	return nil
}

// OriginCheck is an http.RoundTripper that refuses any request to another
// origin than Origin's, whatever led to it: nothing of a backend's
// connection leaves its origin.
type OriginCheck struct {
	Next   http.RoundTripper
	Origin *url.URL
}

func (o *OriginCheck) RoundTrip(r *http.Request) (*http.Response, error) {
	if !SameOrigin(r.URL, o.Origin) {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, fmt.Errorf("vmcp sends a backend's requests only to its origin, not to %s", RedactURL(r.URL))
	}
	return o.Next.RoundTrip(r)
}

// Redacted is what replaces a secret in a URL that is shown.
const Redacted = "REDACTED"

// RedactURL returns u for showing: its user information and the value of
// every query parameter (where tokens and keys go) replaced by REDACTED.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	if c.User != nil {
		c.User = url.User(Redacted)
	}
	if c.RawQuery != "" {
		q := c.Query()
		for k, vs := range q {
			for i := range vs {
				vs[i] = Redacted
			}
			q[k] = vs
		}
		c.RawQuery = q.Encode()
	}
	c.Fragment, c.RawFragment = "", ""
	return c.String()
}

// URLSecrets returns the parts of a URL that [RedactURL] hides, as they
// appear in it and unescaped, longest first: to take them out of texts
// that may quote the URL (errors of net/http, logs).
func URLSecrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var out []string
	add := func(s string) {
		if len(s) >= 3 { // shorter values are not secrets, and would blot out the text
			out = append(out, s)
		}
	}
	if u.User != nil {
		add(u.User.Username())
		if pw, ok := u.User.Password(); ok {
			add(pw)
			add(url.UserPassword("", pw).String()[1:]) // as escaped in the URL
		}
		add(url.User(u.User.Username()).String())
	}
	for _, kv := range strings.Split(u.RawQuery, "&") {
		_, v, _ := strings.Cut(kv, "=")
		add(v)
		if uv, err := url.QueryUnescape(v); err == nil {
			add(uv)
		}
	}
	// Longest first, so that a secret containing another is replaced whole.
	slices.SortStableFunc(out, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(out)
}
