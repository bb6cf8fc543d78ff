package authserver

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/ory/fosite"
	"golang.org/x/time/rate"
)

// registrationError is an RFC 7591 §3.2.2 error.
type registrationError struct {
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *registrationError) Error() string { return e.Code + ": " + e.Description }

func badMetadata(format string, args ...any) *registrationError {
	return &registrationError{"invalid_client_metadata", fmt.Sprintf(format, args...)}
}

func badRedirect(format string, args ...any) *registrationError {
	return &registrationError{"invalid_redirect_uri", fmt.Sprintf(format, args...)}
}

// registration is the part of RFC 7591 client metadata vmcp acts on.
type registration struct {
	RedirectURIs  []string `json:"redirect_uris"`
	AuthMethod    string   `json:"token_endpoint_auth_method"`
	GrantTypes    []string `json:"grant_types"`
	ResponseTypes []string `json:"response_types"`
	Name          string   `json:"client_name"`
	Scope         string   `json:"scope"`
	AppType       string   `json:"application_type"`
}

// registrationLimiter bounds registrations per client address. It keeps
// the limiters of at most maxRegistrationLimiters addresses; when full, the
// least recently seen address's limiter makes room, so that many new
// addresses never reset the limits of the ones in use. The zero value is
// ready to use.
type registrationLimiter struct {
	now func() time.Time // the clock; nil means time.Now

	mu       sync.Mutex // guards limiters
	limiters *lru.Cache[string, *rate.Limiter]
}

// maxRegistrationLimiters bounds the addresses a registrationLimiter
// remembers.
const maxRegistrationLimiters = 10000

func (l *registrationLimiter) allow(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limiters == nil {
		l.limiters, _ = lru.New[string, *rate.Limiter](maxRegistrationLimiters) // fails only for a size < 1
	}
	lim, ok := l.limiters.Get(host)
	if !ok {
		lim = rate.NewLimiter(rate.Every(time.Second), 30) // 30 at once, then one a second
		l.limiters.Add(host, lim)
	}
	now := time.Now
	if l.now != nil {
		now = l.now
	}
	return lim.AllowN(now(), 1)
}

// register is dynamic client registration (RFC 7591).
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	if !s.limiter.allow(r) {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusTooManyRequests, &registrationError{"invalid_request", "too many registrations; slow down"})
		return
	}
	lim := s.opts.Limits
	r.Body = http.MaxBytesReader(w, r.Body, int64(lim.RegistrationBytes))
	var raw map[string]any
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeJSON(w, http.StatusBadRequest, badMetadata("the registration document is larger than %d bytes", lim.RegistrationBytes))
			return
		}
		writeJSON(w, http.StatusBadRequest, badMetadata("the body is not a JSON object: %v", err))
		return
	}
	c, secret, rerr := s.newClient(raw)
	if rerr != nil {
		writeJSON(w, http.StatusBadRequest, rerr)
		return
	}
	err := s.store.CreateClient(r.Context(), c, lim.Clients)
	if errors.Is(err, ErrLimit) {
		s.logger.Warn("registered clients at their cap, all in use; registration refused", "max", lim.Clients)
		w.Header().Set("Retry-After", "3600")
		writeJSON(w, http.StatusServiceUnavailable, &registrationError{"temporarily_unavailable",
			fmt.Sprintf("this server holds the most client registrations it allows (%d), all in use; try again later", lim.Clients)})
		return
	}
	if err != nil {
		s.logger.Error("storing registered client", "error", err)
		if errors.Is(err, ErrUnavailable) {
			writeUnavailable(w)
			return
		}
		writeJSON(w, http.StatusInternalServerError, &registrationError{"server_error", "the client could not be stored"})
		return
	}
	resp := c.Metadata
	resp["client_id"] = c.ID
	resp["client_id_issued_at"] = c.CreatedAt.Unix()
	if secret != "" {
		resp["client_secret"] = secret
		resp["client_secret_expires_at"] = 0
	}
	s.logger.Info("client registered", "client_id", c.ID, "client_name", c.Name, "auth_method", c.AuthMethod)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, resp)
}

// newClient validates registration metadata and builds the client, with a
// secret for confidential clients.
func (s *Server) newClient(raw map[string]any) (*Client, string, *registrationError) {
	b, _ := json.Marshal(raw)
	var m registration
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, "", badMetadata("%v", err)
	}
	m.AuthMethod = cmp.Or(m.AuthMethod, "none")
	m.AppType = cmp.Or(m.AppType, "web")
	if len(m.GrantTypes) == 0 {
		m.GrantTypes = []string{"authorization_code"}
	}
	if len(m.ResponseTypes) == 0 {
		m.ResponseTypes = []string{"code"}
	}
	if err := s.checkRegistration(&m); err != nil {
		return nil, "", err
	}
	scopes := s.opts.Scopes
	if m.Scope != "" {
		scopes = strings.Fields(m.Scope)
	}
	c := &Client{ID: rand.Text(), Name: m.Name, RedirectURIs: m.RedirectURIs, GrantTypes: m.GrantTypes,
		ResponseTypes: m.ResponseTypes, Scopes: scopes, AuthMethod: m.AuthMethod, AppType: m.AppType,
		CreatedAt: s.opts.Now().UTC()}
	c.ExpiresAt = c.CreatedAt.Add(s.opts.Limits.UnusedClientExpiry)
	for _, k := range []string{"client_secret", "client_secret_expires_at", "client_id", "client_id_issued_at", "registration_access_token"} {
		delete(raw, k)
	}
	raw["token_endpoint_auth_method"], raw["grant_types"], raw["response_types"] = m.AuthMethod, m.GrantTypes, m.ResponseTypes
	raw["application_type"] = m.AppType
	if m.Scope != "" || len(scopes) > 0 {
		raw["scope"] = strings.Join(scopes, " ")
	}
	c.Metadata = raw
	var secret string
	if m.AuthMethod != "none" {
		secret = rand.Text() + rand.Text()
		c.SecretHash = hashSecret([]byte(secret))
	}
	return c, secret, nil
}

func (s *Server) checkRegistration(m *registration) *registrationError {
	if len(m.RedirectURIs) == 0 {
		return badRedirect("redirect_uris is required")
	}
	for _, u := range m.RedirectURIs {
		if err := checkRedirectURI(u, m.AppType); err != nil {
			return err
		}
	}
	switch m.AuthMethod {
	case "none", "client_secret_basic", "client_secret_post":
	default:
		return badMetadata("token_endpoint_auth_method %q is not supported (none, client_secret_basic, client_secret_post)", m.AuthMethod)
	}
	for _, g := range m.GrantTypes {
		if g != "authorization_code" && g != "refresh_token" {
			return badMetadata("grant type %q is not supported (authorization_code, refresh_token)", g)
		}
	}
	if !slices.Contains(m.GrantTypes, "authorization_code") {
		return badMetadata("grant_types must include authorization_code")
	}
	for _, rt := range m.ResponseTypes {
		if rt != "code" {
			return badMetadata("response type %q is not supported (code)", rt)
		}
	}
	for _, sc := range strings.Fields(m.Scope) {
		if !slices.Contains(s.opts.Scopes, sc) {
			return badMetadata("scope %q is not supported", sc)
		}
	}
	if m.AppType != "web" && m.AppType != "native" {
		return badMetadata("application_type %q is not one of web, native", m.AppType)
	}
	return nil
}

// checkRedirectURI allows https URIs, http on loopback hosts, and (for
// native apps) private-use schemes such as com.example.app:/cb.
func checkRedirectURI(raw, appType string) *registrationError {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return badRedirect("%q is not an absolute URI", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return badRedirect("%q has a fragment", raw)
	}
	switch {
	case u.Scheme == "https" && u.Host != "":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	case u.Scheme == "http":
		return badRedirect("%q: http is allowed only for loopback addresses", raw)
	case appType == "native" && strings.Contains(u.Scheme, ".") && u.Scheme != "javascript":
	default:
		return badRedirect("%q: use https, http on a loopback address, or (native apps) a private-use scheme", raw)
	}
	return nil
}

// touchClient records that a token was issued to a registered client,
// which keeps the registration for IdleClientExpiry from now. The store is
// written when less than that is left by more than an hour (a tenth of it
// if smaller), so that a busy client costs at most one write an hour.
func (s *Server) touchClient(ctx context.Context, fc fosite.Client) {
	f, ok := fc.(fositeClient)
	if !ok || f.c.ExpiresAt.IsZero() { // static and metadata-document clients do not expire
		return
	}
	now, idle := s.opts.Now().UTC(), s.opts.Limits.IdleClientExpiry
	if !f.c.UsedAt.IsZero() && !f.c.ExpiresAt.Before(now.Add(idle)) {
		return
	}
	slack := min(idle/10, time.Hour)
	if err := s.store.TouchClient(ctx, f.c.ID, now, now.Add(idle+slack)); err != nil && !errors.Is(err, ErrNotFound) {
		s.logger.Warn("recording a client's use failed", "client_id", f.c.ID, "error", err)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
