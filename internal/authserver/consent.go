package authserver

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The consent page is vmcp's confused-deputy defence: vmcp logs in to the
// IdP with one client ID on behalf of every MCP client, so a client the
// user's browser has not approved is shown this page before any redirect
// upstream. Approvals are kept in a signed cookie bound to the client IDs.

const (
	consentCookie = "vmcp-consent"
	csrfCookie    = "vmcp-csrf"
	loginCookie   = "vmcp-login"
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

// The login cookie binds each login sent upstream to the browser that
// approved it. vmcp logs in at the IdP with one client ID for every MCP
// client, so a login URL approved in one browser (the attacker's) and
// opened in another (the victim's, logged in at the IdP) would otherwise
// complete as the victim and send the code to the attacker's client. The
// cookie holds a random value of this browser; each pending login keeps a
// MAC of that value and its state, and the callback requires the cookie
// that matches. One value serves all of a browser's logins, so logins in
// several tabs do not undo each other.

// loginCookieValue returns this browser's login cookie, or a new value.
func (s *Server) loginCookieValue(r *http.Request) string {
	if c, err := r.Cookie(s.cookieName(loginCookie)); err == nil && len(c.Value) >= 16 && len(c.Value) <= 64 {
		return c.Value
	}
	return rand.Text()
}

// setLoginCookie (re)sets the login cookie for as long as a login may take.
func (s *Server) setLoginCookie(w http.ResponseWriter, value string) {
	s.setCookie(w, loginCookie, value, int(s.opts.Limits.PendingLoginTimeout.Seconds())+60)
}

// loginBinding is what a pending login keeps of the browser that approved it.
func (s *Server) loginBinding(browser, state string) string {
	return s.mac("login", browser, state)
}

// boundToBrowser reports whether the callback comes from the browser whose
// binding the pending login of state keeps.
func (s *Server) boundToBrowser(r *http.Request, state, binding string) bool {
	c, err := r.Cookie(s.cookieName(loginCookie))
	if err != nil || binding == "" {
		return false
	}
	return hmac.Equal([]byte(binding), []byte(s.loginBinding(c.Value, state)))
}

// consentPageTTL is how long a consent page can be submitted after it was
// shown.
const consentPageTTL = 10 * time.Minute

// csrfToken binds the form to this browser (a random cookie), to the exact
// request shown and to the time it was shown: "<unix time>.<mac>".
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request, request string) string {
	nonce := ""
	if c, err := r.Cookie(s.cookieName(csrfCookie)); err == nil && len(c.Value) >= 16 {
		nonce = c.Value
	} else {
		nonce = rand.Text()
		s.setCookie(w, csrfCookie, nonce, 3600)
	}
	shown := strconv.FormatInt(s.opts.Now().Unix(), 10)
	return shown + "." + s.mac("csrf", nonce, request, shown)
}

// Outcomes of checkCSRF.
const (
	csrfValid = iota
	csrfInvalid
	csrfExpired
)

// checkCSRF says whether a consent form comes from a page this browser was
// shown for this request, and was shown less than consentPageTTL ago.
func (s *Server) checkCSRF(r *http.Request, request, token string) int {
	c, err := r.Cookie(s.cookieName(csrfCookie))
	shown, mac, ok := strings.Cut(token, ".")
	if err != nil || !ok || !hmac.Equal([]byte(mac), []byte(s.mac("csrf", c.Value, request, shown))) {
		return csrfInvalid
	}
	t, err := strconv.ParseInt(shown, 10, 64)
	if err != nil {
		return csrfInvalid
	}
	if age := s.opts.Now().Sub(time.Unix(t, 0)); age > consentPageTTL || age < -time.Minute {
		return csrfExpired
	}
	return csrfValid
}
