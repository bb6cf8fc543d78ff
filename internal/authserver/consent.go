package authserver

import (
	"cmp"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/ory/fosite"
)

// The consent page is vmcp's confused-deputy defence: vmcp logs in to the
// IdP with one client ID on behalf of every MCP client, so a client the
// user's browser has not approved is shown this page before any redirect
// upstream. Approvals are kept in a signed cookie bound to the client IDs.

const (
	consentCookie = "vmcp-consent"
	csrfCookie    = "vmcp-csrf"
	maxConsented  = 20 // client IDs remembered per browser
)

// cookieName adds the __Host- prefix when the issuer is https (the prefix
// requires Secure).
func (s *Server) cookieName(base string) string {
	if s.secure {
		return "__Host-" + base
	}
	return base
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(name), Value: value, Path: "/", MaxAge: maxAge,
		Secure: s.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// mac signs cookies and CSRF tokens with the first HMAC secret (loaded:
// every endpoint that gets here checked [Server.ready]).
func (s *Server) mac(parts ...string) string {
	var key []byte
	if sec := s.secrets.Load(); sec != nil {
		key = sec.hmac[0]
	} else {
		key = []byte(rand.Text()) // matches nothing
	}
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// consented reports whether this browser approved clientID before.
func (s *Server) consented(r *http.Request, clientID string) bool {
	return slices.Contains(s.consentedClients(r), clientID)
}

func (s *Server) consentedClients(r *http.Request) []string {
	c, err := r.Cookie(s.cookieName(consentCookie))
	if err != nil {
		return nil
	}
	payload, sig, ok := strings.Cut(c.Value, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(s.mac("consent", payload))) {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil
	}
	var ids []string
	if json.Unmarshal(b, &ids) != nil {
		return nil
	}
	return ids
}

func (s *Server) rememberConsent(w http.ResponseWriter, r *http.Request, clientID string) {
	ids := s.consentedClients(r)
	if !slices.Contains(ids, clientID) {
		ids = append(ids, clientID)
	}
	if len(ids) > maxConsented {
		ids = ids[len(ids)-maxConsented:]
	}
	b, _ := json.Marshal(ids)
	payload := base64.RawURLEncoding.EncodeToString(b)
	s.setCookie(w, consentCookie, payload+"."+s.mac("consent", payload), 30*24*3600)
}

// csrfToken binds the form to this browser (a random cookie) and to the
// exact request shown.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request, request string) string {
	nonce := ""
	if c, err := r.Cookie(s.cookieName(csrfCookie)); err == nil && len(c.Value) >= 16 {
		nonce = c.Value
	} else {
		nonce = rand.Text()
		s.setCookie(w, csrfCookie, nonce, 3600)
	}
	return s.mac("csrf", nonce, request)
}

func (s *Server) validCSRF(r *http.Request, request, token string) bool {
	c, err := r.Cookie(s.cookieName(csrfCookie))
	if err != nil || token == "" {
		return false
	}
	return hmac.Equal([]byte(token), []byte(s.mac("csrf", c.Value, request)))
}

// pageHeaders forbid framing, caching and anything but the form.
func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
}

type consentPage struct {
	Client, RedirectHost, Redirect string
	Loopback                       bool
	Scopes                         []string
	Providers                      []string
	Request, CSRF, Action          string
}

func (s *Server) renderConsent(w http.ResponseWriter, r *http.Request, c *Client, ar fosite.AuthorizeRequester, query url.Values) {
	request := query.Encode()
	redirect := ar.GetRedirectURI()
	page := consentPage{
		Client:   cmp.Or(c.Name, c.ID),
		Redirect: redirect.String(), RedirectHost: redirect.Host,
		Loopback: isLoopback(redirect.Hostname()),
		Scopes:   ar.GetRequestedScopes(),
		Request:  request, CSRF: s.csrfToken(w, r, request),
		Action: s.opts.Issuer + PathConsent,
	}
	for _, p := range s.providers {
		page.Providers = append(page.Providers, p.cfg.Name)
	}
	pageHeaders(w)
	if err := consentTmpl.Execute(w, page); err != nil {
		s.logger.Error("rendering consent page", "error", err)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) renderError(w http.ResponseWriter, status int, title, detail string) {
	pageHeaders(w)
	w.WriteHeader(status)
	_ = errorTmpl.Execute(w, struct{ Title, Detail string }{title, detail})
}

var consentTmpl = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorize {{.Client}}</title>
<style>body{font-family:sans-serif;max-width:36em;margin:3em auto;padding:0 1em}.warn{color:#a40}code{word-break:break-all}</style></head>
<body><h1>Authorize {{.Client}}?</h1>
<p><strong>{{.Client}}</strong> asks to use your MCP tools through this gateway, acting as you.</p>
<p>After you log in, you will be sent to <strong>{{.RedirectHost}}</strong> (<code>{{.Redirect}}</code>).</p>
{{if .Loopback}}<p class="warn">That address is on your own computer: approve only if you just started this login from an application there.</p>{{end}}
{{if .Scopes}}<p>Scopes requested: {{range .Scopes}}<code>{{.}}</code> {{end}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="request" value="{{.Request}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
{{range .Providers}}<button type="submit" name="provider" value="{{.}}">Approve and log in with {{.}}</button> {{end}}
<input type="hidden" name="decision" value="approve">
</form>
<form method="post" action="{{.Action}}"><input type="hidden" name="request" value="{{.Request}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit" name="decision" value="deny">Deny</button></form>
</body></html>`))

var errorTmpl = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body><h1>{{.Title}}</h1><p>{{.Detail}}</p></body></html>`))
