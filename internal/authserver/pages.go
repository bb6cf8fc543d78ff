package authserver

import (
	"cmp"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"
)

// The pages a person sees: the consent page and the error pages. They use
// no JavaScript, no external resources and one inline style sheet allowed
// by its hash, and they are served with a strict Content-Security-Policy
// (see pageHeaders and formAction; docs/identity.md gives the reason for
// each directive).

var (
	//go:embed pages/page.css
	pageCSS string
	//go:embed pages/consent.html
	consentHTML string
	//go:embed pages/error.html
	errorHTML string
	//go:embed pages/head.html
	headHTML string

	consentTmpl = pageTemplate("consent", consentHTML)
	errorTmpl   = pageTemplate("error", errorHTML)
	// styleHash allows the inline style sheet, and nothing else, in CSP.
	styleHash = func() string {
		sum := sha256.Sum256([]byte(pageCSS))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}()
)

// pageTemplate parses a page and the head all pages share.
func pageTemplate(name, body string) *template.Template {
	t := template.Must(template.New(name).Parse(body))
	template.Must(t.New("head.html").Parse(headHTML)) // defines "head"
	return t
}

// discoveryWait bounds the discovery of a provider's authorization endpoint
// while the consent page is rendered (for its CSP).
const discoveryWait = 5 * time.Second

// pageHeaders forbid framing, caching, referrers, scripts and any resource
// but the page's own style sheet. formAction is the form-action directive's
// source list: where the page's forms, and every redirect that follows a
// submission before a page is shown, may lead.
func pageHeaders(w http.ResponseWriter, formAction string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	// img-src data: is for the pages' empty icon (head.html) alone: without
	// an icon Firefox fetches /favicon.ico, which default-src blocks and
	// reports as a violation on every page.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src "+styleHash+"; img-src data:; form-action "+formAction+
		"; frame-ancestors 'none'; base-uri 'none'")
}

// consentView is what the consent page shows.
type consentView struct {
	PageTitle             string
	Gateway               string
	Client, ClientID      string
	Verified              bool   // the client ID is a metadata document URL
	ClientHost            string // that URL's host
	Redirect              string
	RedirectHost          string
	Loopback, OtherSite   bool
	Scopes                []string
	Lifetime, Expires     string
	Providers             []providerView
	Request, CSRF, Action string
	CSS                   template.CSS
}

type providerView struct{ Name, Host string }

func (s *Server) gatewayName() string {
	if s.opts.Name != "" {
		return s.opts.Name
	}
	if u, err := url.Parse(s.opts.Issuer); err == nil && u.Host != "" {
		return u.Host
	}
	return s.opts.Issuer
}

func (s *Server) renderConsent(w http.ResponseWriter, r *http.Request, c *Client, ar fosite.AuthorizeRequester, req *AuthorizeRequest) {
	request := req.Values().Encode()
	redirect := ar.GetRedirectURI()
	page := consentView{
		Gateway:  s.gatewayName(),
		Client:   cmp.Or(c.Name, c.ID),
		ClientID: c.ID,
		Verified: isURLClientID(c.ID),
		Redirect: redirect.String(), RedirectHost: cmp.Or(redirect.Host, redirect.Scheme+":"),
		Loopback: isLoopback(redirect.Hostname()),
		Scopes:   ar.GetRequestedScopes(),
		Lifetime: humanDuration(s.opts.RefreshTokenLifespan),
		Expires:  humanDuration(consentPageTTL),
		Request:  request, CSRF: s.csrfToken(w, r, request),
		Action: s.opts.Issuer + PathConsent,
		CSS:    template.CSS(pageCSS),
	}
	page.PageTitle = "Allow " + page.Client + " to use " + page.Gateway + "? · Sign in"
	if page.Verified {
		if u, err := url.Parse(c.ID); err == nil {
			page.ClientHost = u.Host
			page.OtherSite = !page.Loopback && !strings.EqualFold(u.Hostname(), redirect.Hostname())
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), discoveryWait)
	defer cancel()
	sources := []string{"'self'", redirectSource(redirect)}
	for _, p := range s.providers {
		auth := p.authorizationEndpoint(ctx)
		page.Providers = append(page.Providers, providerView{Name: p.cfg.Name, Host: hostOf(auth)})
		sources = append(sources, origin(auth), origin(p.cfg.RedirectURI))
		for _, o := range p.cfg.LoginOrigins {
			sources = append(sources, origin(o))
		}
	}
	pageHeaders(w, sourceList(sources, origin(s.opts.Issuer)))
	if err := consentTmpl.Execute(w, page); err != nil {
		s.logger.Error("rendering consent page", "error", err)
	}
}

// renderError shows a page saying what happened (title and detail, which
// never carry tokens, codes or internal errors) and what to do next.
func (s *Server) renderError(w http.ResponseWriter, status int, title, detail string) {
	pageHeaders(w, "'none'")
	w.WriteHeader(status)
	gateway := s.gatewayName()
	_ = errorTmpl.Execute(w, struct {
		PageTitle, Gateway, Title, Detail string
		Status                            int
		CSS                               template.CSS
	}{title + " · " + gateway, gateway, title, detail, status, template.CSS(pageCSS)})
}

// authorizationEndpoint is where the provider's login starts: configured
// (OAuth 2.0), discovered (OIDC), or the issuer URL when discovery fails
// now (the login will then fail with temporarily_unavailable, which goes
// to the client's redirect URI, already allowed).
func (p *provider) authorizationEndpoint(ctx context.Context) string {
	if p.cfg.Type == TypeOAuth2 {
		return p.cfg.AuthorizationURL
	}
	oc, err := p.ready(ctx)
	if err != nil {
		return p.cfg.IssuerURL
	}
	return oc.Endpoint.AuthURL
}

// hostChars is what a CSP host-source may contain (CSP3 host-char, plus
// the port). IPv6 literals cannot be expressed.
var hostChars = regexp.MustCompile(`^[A-Za-z0-9.-]+(:[0-9]+)?$`)

// origin returns the CSP source for a URL's origin, or "" if it has none
// that CSP can express.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !hostChars.MatchString(u.Host) {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// redirectSource is the CSP source for the client's redirect URI: its
// origin, or its scheme for a private-use scheme (com.example.app:/cb) or
// a host CSP cannot name (an IPv6 literal).
func redirectSource(u *url.URL) string {
	if o := origin(u.String()); o != "" {
		return o
	}
	return strings.ToLower(u.Scheme) + ":" // url.Parse allows only scheme characters here
}

// sourceList joins CSP sources, without empty or repeated ones, nor self
// (the issuer's origin, which 'self' names).
func sourceList(sources []string, self string) string {
	var out []string
	for _, s := range sources {
		if s != "" && s != self && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	return raw
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// humanDuration renders a lifetime for people: "7 days", "12 hours",
// "10 minutes".
func humanDuration(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	switch {
	case d >= 48*time.Hour:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= 2*time.Hour:
		return unit(int64(d/time.Hour), "hour")
	default:
		return unit(max(int64(d/time.Minute), 1), "minute")
	}
}
