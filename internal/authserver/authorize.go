package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/ory/fosite"
	"golang.org/x/oauth2"

	"github.com/vmcp-dev/vmcp/internal/identity"
)

// Bounds of an authorization request, checked before anything is shown,
// sent upstream or stored.
const (
	// maxAuthorizeQuery bounds the whole query: a real request is far
	// smaller, and nothing larger is parsed.
	maxAuthorizeQuery = 8 << 10
	maxStateBytes     = 1024
	// s256ChallengeLen is the length of BASE64URL(SHA-256(verifier)).
	s256ChallengeLen = 43
)

// errInvalidTarget is RFC 8707's error for a resource vmcp does not serve.
func errInvalidTarget(res string) *fosite.RFC6749Error {
	return &fosite.RFC6749Error{ErrorField: "invalid_target", CodeField: http.StatusBadRequest,
		DescriptionField: "The requested resource " + res + " is not served by this authorization server; it issues tokens for its own MCP endpoint only."}
}

// checkResource accepts resource parameters naming the MCP endpoint (scheme
// and host compared without case).
func (s *Server) checkResource(form url.Values) error {
	for _, res := range form["resource"] {
		if !sameResource(res, s.opts.Resource) {
			return errInvalidTarget(res)
		}
	}
	return nil
}

func sameResource(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil || !ua.IsAbs() || ua.Fragment != "" || ua.RawFragment != "" || strings.Contains(a, "#") {
		return false
	}
	return strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Host, ub.Host) &&
		ua.EscapedPath() == ub.EscapedPath() && ua.RawQuery == ub.RawQuery
}

// checkAuthorize adds MCP's rules to fosite's validation, before anything
// is shown or sent upstream: PKCE with S256 only, the resource, and
// bounded fields. It returns the request as vmcp keeps it.
func (s *Server) checkAuthorize(ar fosite.AuthorizeRequester) (*AuthorizeRequest, error) {
	form := ar.GetRequestForm()
	challenge := form.Get("code_challenge")
	if challenge == "" {
		return nil, fosite.ErrInvalidRequest.WithHint("PKCE is required: send code_challenge with code_challenge_method=S256.")
	}
	if form.Get("code_challenge_method") != "S256" {
		return nil, fosite.ErrInvalidRequest.WithHint("code_challenge_method must be S256.")
	}
	if len(challenge) != s256ChallengeLen {
		return nil, fosite.ErrInvalidRequest.WithHintf("code_challenge must be the %d characters of BASE64URL(SHA-256(code_verifier)).", s256ChallengeLen)
	}
	if len(ar.GetState()) > maxStateBytes {
		return nil, fosite.ErrInvalidRequest.WithHintf("state is longer than %d bytes.", maxStateBytes)
	}
	if !ar.GetResponseTypes().ExactOne("code") {
		return nil, fosite.ErrUnsupportedResponseType.WithHint("Only response_type=code is supported.")
	}
	if err := s.checkResource(form); err != nil {
		return nil, err
	}
	req := &AuthorizeRequest{ClientID: ar.GetClient().GetID(), RedirectURI: form.Get("redirect_uri"), State: ar.GetState(),
		CodeChallenge: challenge, CodeChallengeMethod: "S256"}
	for _, sc := range ar.GetRequestedScopes() { // each one of the client's scopes; repeats dropped
		if !slices.Contains(req.Scopes, sc) {
			req.Scopes = append(req.Scopes, sc)
		}
	}
	if len(form["resource"]) > 0 {
		req.Resource = form.Get("resource") // every resource is the MCP endpoint (checkResource)
	}
	return req, nil
}

// authorize starts an authorization: validate, then consent (unless this
// browser already approved the client), then the upstream login.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.RawQuery) > maxAuthorizeQuery {
		s.logger.Info("authorization refused without redirect", "error", "request too large", "bytes", len(r.URL.RawQuery))
		s.renderError(w, http.StatusRequestURITooLong, "This authorization request is too large",
			fmt.Sprintf("The request has %d bytes of parameters; at most %d are accepted.", len(r.URL.RawQuery), maxAuthorizeQuery))
		return
	}
	ctx := r.Context()
	ar, err := s.oauth.NewAuthorizeRequest(ctx, r)
	var req *AuthorizeRequest
	if err == nil {
		req, err = s.checkAuthorize(ar)
	}
	if err == nil {
		_, err = s.ready(ctx)
	}
	if err != nil {
		s.authorizeError(w, ar, s.storeErr(err))
		return
	}
	client := ar.GetClient().(fositeClient).c
	if len(s.providers) == 1 && s.consented(r, client.ID) {
		s.redirectUpstream(w, r, ar, req, s.providers[0])
		return
	}
	s.renderConsent(w, r, client, ar, req)
}

// authorizeError answers a failed authorization: to the client's redirect
// URI when fosite validated it (with state and iss), else with an error
// page and no redirect at all.
func (s *Server) authorizeError(w http.ResponseWriter, ar fosite.AuthorizeRequester, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	if ar == nil || !ar.IsRedirectURIValid() {
		s.logger.Info("authorization refused without redirect", "error", rfc.ErrorField, "description", rfc.GetDescription())
		s.renderError(w, rfc.StatusCode(), "This authorization request cannot be completed", rfc.GetDescription())
		return
	}
	u := *ar.GetRedirectURI()
	q := u.Query()
	q.Set("error", rfc.ErrorField)
	if d := rfc.GetDescription(); d != "" {
		q.Set("error_description", d)
	}
	if st := ar.GetState(); st != "" {
		q.Set("state", st)
	}
	q.Set("iss", s.opts.Issuer)
	u.RawQuery = q.Encode()
	s.logger.Info("authorization refused", "client_id", ar.GetClient().GetID(), "error", rfc.ErrorField)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, &http.Request{Method: http.MethodGet}, u.String(), http.StatusFound)
}

// redirectUpstream records the pending login (only now, after consent),
// binds it to this browser, and sends the browser to the provider.
func (s *Server) redirectUpstream(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, req *AuthorizeRequest, p *provider) {
	ctx := r.Context()
	state, nonce, verifier := randomID(), randomID(), oauth2.GenerateVerifier()
	target, err := p.authCodeURL(ctx, state, nonce, verifier)
	if err != nil {
		s.authorizeError(w, ar, s.upstreamUnavailable(p, err))
		return
	}
	browser := s.loginCookieValue(r)
	lim := s.opts.Limits
	pend := &Pending{Request: *req, Provider: p.cfg.Name, Nonce: nonce, Verifier: verifier,
		Binding: s.loginBinding(browser, state), CreatedAt: s.opts.Now()}
	err = s.store.PutPending(ctx, state, pend, lim.PendingLoginTimeout,
		PendingLimits{Total: lim.PendingLogins, PerClient: lim.PendingLoginsPerClient})
	switch {
	case errors.Is(err, ErrClientLimit):
		s.logger.Warn("pending logins of this client at their cap; authorization refused", "client_id", req.ClientID, "max", lim.PendingLoginsPerClient)
		s.authorizeError(w, ar, fosite.ErrTemporarilyUnavailable.WithHintf(
			"This application has %d logins in progress, the most allowed; finish or abandon them (they expire after %s) and try again.",
			lim.PendingLoginsPerClient, lim.PendingLoginTimeout))
		return
	case errors.Is(err, ErrLimit):
		s.logger.Warn("pending logins at their cap; authorization refused", "client_id", req.ClientID, "max", lim.PendingLogins)
		s.authorizeError(w, ar, fosite.ErrTemporarilyUnavailable.WithHintf(
			"Too many logins are in progress on this server; try again in a few minutes (they expire after %s).", lim.PendingLoginTimeout))
		return
	case err != nil:
		s.logger.Error("storing pending login", "error", err)
		s.authorizeError(w, ar, s.storeErr(fosite.ErrServerError.WithWrap(err)))
		return
	}
	s.setLoginCookie(w, browser)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusFound)
}

// upstreamUnavailable logs why a provider could not be used and returns
// what the client is told: the mismatch if its discovery document names
// another issuer than issuerUrl (a configuration error), else that it
// cannot be reached.
func (s *Server) upstreamUnavailable(p *provider, err error) error {
	var mismatch *oidc.IssuerMismatchError
	if errors.As(err, &mismatch) {
		s.logger.Error("upstream provider's discovery document names another issuer than its issuerUrl; OIDC requires them to be identical: set issuerUrl to the issuer the provider names",
			"provider", p.cfg.Name, "issuerUrl", mismatch.Provided, "issuer", mismatch.Discovered)
		return fosite.ErrServerError.WithHintf("The identity provider %q is misconfigured in vmcp: its issuerUrl is %q, but the provider names its issuer %q. OIDC requires them to be identical; the operator must set issuerUrl to %q.",
			p.cfg.Name, mismatch.Provided, mismatch.Discovered, mismatch.Discovered)
	}
	s.logger.Error("upstream login unavailable", "provider", p.cfg.Name, "error", err)
	return fosite.ErrTemporarilyUnavailable.WithHint("The identity provider cannot be reached; try again later.")
}

// consent handles the consent form: the CSRF token must match this
// browser's cookie and the request it was issued for.
func (s *Server) consent(w http.ResponseWriter, r *http.Request) {
	if _, err := s.ready(r.Context()); err != nil {
		s.renderError(w, http.StatusServiceUnavailable, "Temporarily unavailable", "The authorization server cannot reach its storage. Try again in a moment.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.renderError(w, http.StatusBadRequest, "The sign-in form could not be read", "The form this browser sent was malformed or too large.")
		return
	}
	raw := r.PostForm.Get("request")
	switch s.checkCSRF(r, raw, r.PostForm.Get("csrf")) {
	case csrfExpired:
		s.renderError(w, http.StatusForbidden, "This sign-in page has expired",
			"The page was submitted more than "+humanDuration(consentPageTTL)+" after it was shown, so nothing was approved or denied.")
		return
	case csrfInvalid:
		s.renderError(w, http.StatusForbidden, "This sign-in page cannot be used",
			"The page was not shown to this browser, or this browser's sign-in cookie has expired or was blocked, so nothing was approved or denied.")
		return
	}
	query, err := url.ParseQuery(raw)
	if err != nil {
		s.renderError(w, http.StatusBadRequest, "The sign-in form could not be read", "The form this browser sent was malformed or too large.")
		return
	}
	ctx := r.Context()
	ar, req, err := s.replayAuthorize(ctx, query)
	if err != nil {
		s.authorizeError(w, ar, s.storeErr(err))
		return
	}
	if r.PostForm.Get("decision") != "approve" {
		s.authorizeError(w, ar, fosite.ErrAccessDenied.WithHint("The user denied the request."))
		return
	}
	i := slices.IndexFunc(s.providers, func(p *provider) bool { return p.cfg.Name == r.PostForm.Get("provider") })
	if i < 0 {
		i = 0
	}
	s.rememberConsent(w, r, ar.GetClient().GetID())
	s.redirectUpstream(w, r, ar, req, s.providers[i])
}

// replayAuthorize validates a kept authorization request query again.
func (s *Server) replayAuthorize(ctx context.Context, query url.Values) (fosite.AuthorizeRequester, *AuthorizeRequest, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, s.opts.Issuer+PathAuthorize+"?"+query.Encode(), nil)
	if err != nil {
		return nil, nil, err
	}
	ar, err := s.oauth.NewAuthorizeRequest(ctx, hr)
	var req *AuthorizeRequest
	if err == nil {
		req, err = s.checkAuthorize(ar)
	}
	return ar, req, err
}

// callback receives the user back from the upstream IdP, checks that this
// browser is the one that approved the login, verifies the login, stores
// the grant, and completes the client's authorization.
func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	if _, err := s.ready(ctx); err != nil {
		s.renderError(w, http.StatusServiceUnavailable, "Temporarily unavailable", "The authorization server cannot reach its storage. Go back to your application and try again in a moment.")
		return
	}
	state := q.Get("state")
	pend, err := s.store.TakePending(ctx, state)
	if errors.Is(err, ErrUnavailable) {
		s.logger.Error("reading the pending login", "error", err)
		s.renderError(w, http.StatusServiceUnavailable, "Temporarily unavailable", "The authorization server cannot reach its storage. Go back to your application and try again in a moment.")
		return
	}
	if err != nil {
		s.renderError(w, http.StatusBadRequest, "This sign-in cannot be completed", "The login is unknown to this gateway, took longer than "+humanDuration(s.opts.Limits.PendingLoginTimeout)+", or was already completed.")
		return
	}
	if !s.boundToBrowser(r, state, pend.Binding) {
		s.logger.Warn("login callback in a browser that did not approve the login; refused (a login link sent to another user?)",
			"client_id", pend.Request.ClientID, "provider", pend.Provider)
		s.renderError(w, http.StatusForbidden, "This login was started in another browser",
			"This login was not started in this browser (or this browser did not keep vmcp's cookies), so it was stopped and nothing was issued. "+
				"If you did not just start it from an application yourself, someone may have sent you this link to take over your account. "+
				"Otherwise, start the sign-in again from your application, in this browser.")
		return
	}
	ar, _, err := s.replayAuthorize(ctx, pend.Request.Values())
	if err != nil {
		s.authorizeError(w, ar, s.storeErr(err))
		return
	}
	p := s.provider(pend.Provider)
	if p == nil {
		s.authorizeError(w, ar, fosite.ErrServerError.WithHint("The identity provider of this login is no longer configured."))
		return
	}
	if e := q.Get("error"); e != "" {
		s.logger.Info("upstream login refused", "provider", p.cfg.Name, "error", e)
		s.authorizeError(w, ar, fosite.ErrAccessDenied.WithHintf("The identity provider answered %s.", e))
		return
	}
	if iss := q.Get("iss"); iss != "" && iss != p.issuerName() {
		s.logger.Warn("upstream callback from another issuer (mix-up?)", "provider", p.cfg.Name, "iss", iss)
		s.authorizeError(w, ar, fosite.ErrInvalidRequest.WithHint("The login response came from an unexpected issuer."))
		return
	}
	l, err := p.exchange(ctx, q.Get("code"), pend.Verifier, pend.Nonce)
	if err != nil {
		s.logger.Error("upstream login failed", "provider", p.cfg.Name, "error", err)
		s.authorizeError(w, ar, fosite.ErrTemporarilyUnavailable.WithHint("The login at the identity provider could not be completed."))
		return
	}
	g, err := s.grants.create(ctx, p, l)
	if err != nil {
		s.logger.Error("storing upstream grant", "error", err)
		s.authorizeError(w, ar, s.storeErr(fosite.ErrServerError.WithWrap(err)))
		return
	}
	s.complete(w, ar, g, p)
}

// complete issues the authorization code to the client.
func (s *Server) complete(w http.ResponseWriter, ar fosite.AuthorizeRequester, g *Grant, p *provider) {
	ctx := context.Background()
	for _, scope := range ar.GetRequestedScopes() {
		ar.GrantScope(scope)
	}
	ar.GrantAudience(s.opts.Resource)
	sess := newSession()
	sess.Subject = g.Subject
	sess.JWTClaims.Subject = g.Subject
	s.setClaims(sess.JWTClaims.Extra, g, p, ar.GetClient().GetID())
	resp, err := s.oauth.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		s.logger.Error("issuing the authorization code", "error", err)
		s.authorizeError(w, ar, s.storeErr(err))
		return
	}
	resp.AddParameter("iss", s.opts.Issuer)
	s.logger.Info("authorization granted", "client_id", ar.GetClient().GetID(), "provider", p.cfg.Name, "sub", g.Subject)
	s.oauth.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// setClaims puts the user's profile into the access token claims: email,
// name and groups from the first verified source that has them (ID token,
// then userinfo, then a verified JWT access token), and the grant.
func (s *Server) setClaims(extra map[string]any, g *Grant, p *provider, clientID string) {
	m := p.cfg.Claims
	for claim, path := range map[string]string{"email": m.Email, "name": m.Name, "groups": m.Groups} {
		delete(extra, claim)
		for _, src := range []map[string]any{g.IDTokenClaims, g.UserinfoClaims, g.AccessTokenClaims} {
			if v, ok := identity.ClaimPath(src, path); ok {
				extra[claim] = v
				break
			}
		}
	}
	extra["gid"] = g.ID
	extra["idp"] = g.Provider
	extra["client_id"] = clientID
}

func (s *Server) provider(name string) *provider {
	for _, p := range s.providers {
		if p.cfg.Name == name {
			return p
		}
	}
	return nil
}

// issuerName is the issuer a provider's authorization responses carry.
func (p *provider) issuerName() string {
	if p.cfg.Type == TypeOAuth2 {
		return p.cfg.Issuer
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.issuer != "" {
		return p.issuer
	}
	return p.cfg.IssuerURL
}

// storeErr turns a failure of the store into temporarily_unavailable (503):
// the client may try again; anything else is returned as it is.
func (s *Server) storeErr(err error) error {
	if !errors.Is(err, ErrUnavailable) {
		return err
	}
	s.logger.Error("the authorization server's store failed", "error", err)
	return fosite.ErrTemporarilyUnavailable.WithHint("The authorization server cannot reach its storage; try again later.").WithWrap(err)
}
