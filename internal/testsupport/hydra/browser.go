package hydra

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// maxHops bounds the redirects one authorization may take.
const maxHops = 40

// Browser is a headless user agent: an HTTP client with a cookie jar that
// does not follow redirects by itself, so that Authorize can walk the chain
// and answer Hydra's login and consent requests on the way.
type Browser struct {
	*http.Client
	// Login is how this browser answers login and consent requests. It
	// starts as the instance's Options.Login and may be changed between
	// authorizations.
	Login Login
	// BeforeHop, if set, is called with every URL before Authorize loads or
	// answers it, so that a test can watch the chain or act at a given
	// step, for example stop Hydra when the login page is reached. An error
	// ends Authorize with that error.
	BeforeHop func(*url.URL) error

	hydra *Hydra
}

// NewBrowser returns a browser with an empty cookie jar.
func (h *Hydra) NewBrowser() *Browser {
	b := NewBrowser()
	b.Login, b.hydra = h.login, h
	return b
}

// NewBrowser returns a browser that knows no Hydra: it follows redirects
// and approves vmcp's consent pages, for logins at other IdPs.
func NewBrowser() *Browser {
	jar, _ := cookiejar.New(nil) // never fails without options
	return &Browser{
		Client: &http.Client{
			Jar:     jar,
			Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// Authorize loads authURL and follows redirects, through any number of
// servers, until one targets a URL that starts with redirectPrefix, and
// returns that URL without loading it. The URL carries the code and state,
// or the OAuth error if the login was rejected. When a redirect targets
// Hydra's login or consent page, Authorize answers the challenge through the
// admin API as b.Login says and continues with the URL Hydra returns. A
// response that is not a redirect ends the walk with an error.
func (b *Browser) Authorize(ctx context.Context, authURL, redirectPrefix string) (*url.URL, error) {
	next, err := url.Parse(authURL)
	if err != nil {
		return nil, err
	}
	for range maxHops {
		if strings.HasPrefix(next.String(), redirectPrefix) {
			return next, nil
		}
		if b.BeforeHop != nil {
			if err := b.BeforeHop(next); err != nil {
				return nil, err
			}
		}
		switch {
		case b.hydra != nil && samePage(next, b.hydra.loginURL) && next.Query().Has("login_challenge"):
			next, err = b.answerLogin(ctx, next.Query().Get("login_challenge"))
		case b.hydra != nil && samePage(next, b.hydra.consent) && next.Query().Has("consent_challenge"):
			next, err = b.answerConsent(ctx, next.Query().Get("consent_challenge"))
		default:
			next, err = b.get(ctx, next)
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("more than %d redirects, last to %s", maxHops, next)
}

// get loads u and returns where its redirect points.
func (b *Browser) get(ctx context.Context, u *url.URL) (*url.URL, error) {
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("redirect to %s, which is neither http(s) nor the redirect prefix", u)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := b.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		if form, action, ok := consentForm(u, body); ok {
			return b.approve(ctx, action, form)
		}
	}
	loc, err := resp.Location()
	if resp.StatusCode/100 != 3 || err != nil {
		return nil, fmt.Errorf("GET %s: %s without a redirect: %s", u, resp.Status, strings.TrimSpace(string(body[:min(len(body), 2048)])))
	}
	return loc, nil
}

var (
	consentActionRE = regexp.MustCompile(`<form method="post" action="([^"]*/oauth/consent)">`)
	hiddenFieldRE   = regexp.MustCompile(`name="(request|csrf)" value="([^"]*)"`)
	providerRE      = regexp.MustCompile(`name="provider" value="([^"]*)"`)
)

// consentForm recognizes vmcp's consent page and returns the fields that
// approve it (with the first provider offered) and where to post them.
func consentForm(page *url.URL, body []byte) (url.Values, string, bool) {
	m := consentActionRE.FindSubmatch(body)
	if m == nil {
		return nil, "", false
	}
	form := url.Values{"decision": {"approve"}}
	for _, f := range hiddenFieldRE.FindAllSubmatch(body, 2) {
		form.Set(string(f[1]), html.UnescapeString(string(f[2])))
	}
	if p := providerRE.FindSubmatch(body); p != nil {
		form.Set("provider", html.UnescapeString(string(p[1])))
	}
	action, err := page.Parse(html.UnescapeString(string(m[1])))
	if err != nil {
		return nil, "", false
	}
	return form, action.String(), true
}

// approve posts the consent form and returns where its redirect points.
func (b *Browser) approve(ctx context.Context, action string, form url.Values) (*url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, action, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return nil, fmt.Errorf("consent %s: %s without a redirect: %s", action, resp.Status, body)
	}
	return loc, nil
}

func (b *Browser) answerLogin(ctx context.Context, challenge string) (*url.URL, error) {
	q := url.Values{"login_challenge": {challenge}}
	var req struct {
		Skip    bool   `json:"skip"`
		Subject string `json:"subject"`
	}
	if err := b.hydra.call(ctx, http.MethodGet, "/admin/oauth2/auth/requests/login", q, nil, &req); err != nil {
		return nil, err
	}
	if b.Login.Reject {
		return b.redirectTo(ctx, http.MethodPut, "/admin/oauth2/auth/requests/login/reject", q, map[string]any{
			"error":             "access_denied",
			"error_description": "The test harness rejected the login.",
		})
	}
	subject := b.Login.subject()
	if req.Skip {
		// Hydra insists on the subject of the remembered session.
		subject = req.Subject
	}
	return b.redirectTo(ctx, http.MethodPut, "/admin/oauth2/auth/requests/login/accept", q, map[string]any{
		"subject": subject,
	})
}

func (b *Browser) answerConsent(ctx context.Context, challenge string) (*url.URL, error) {
	q := url.Values{"consent_challenge": {challenge}}
	var req struct {
		RequestedScope    []string `json:"requested_scope"`
		RequestedAudience []string `json:"requested_access_token_audience"`
	}
	if err := b.hydra.call(ctx, http.MethodGet, "/admin/oauth2/auth/requests/consent", q, nil, &req); err != nil {
		return nil, err
	}
	session := map[string]any{"id_token": b.Login.idTokenClaims()}
	if b.Login.AccessTokenClaims != nil {
		session["access_token"] = b.Login.AccessTokenClaims
	}
	return b.redirectTo(ctx, http.MethodPut, "/admin/oauth2/auth/requests/consent/accept", q, map[string]any{
		"grant_scope":                 req.RequestedScope,
		"grant_access_token_audience": req.RequestedAudience,
		"session":                     session,
	})
}

// redirectTo calls an accept or reject endpoint and returns its redirect_to.
func (b *Browser) redirectTo(ctx context.Context, method, path string, q url.Values, body any) (*url.URL, error) {
	var out struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := b.hydra.call(ctx, method, path, q, body, &out); err != nil {
		return nil, err
	}
	if out.RedirectTo == "" {
		return nil, errors.New(path + ": no redirect_to in the response")
	}
	return url.Parse(out.RedirectTo)
}

// samePage reports whether u is page, ignoring the query.
func samePage(u, page *url.URL) bool {
	return u.Scheme == page.Scheme && u.Host == page.Host && u.Path == page.Path
}
