package authserver

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

// RFC 8693 identifiers.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT           = "urn:ietf:params:oauth:token-type:jwt"
)

// StaticClient is a client configured rather than registered: a service
// (vmcp's own outgoing authentication, say) that may use the token
// exchange grant to get tokens for the audiences it lists.
type StaticClient struct {
	ID         string
	Secret     []byte // plain; hashed at start
	GrantTypes []string
	Audiences  []string
}

// exchangeHandler is the RFC 8693 token exchange grant: a confidential
// client presents a user's vmcp access token (the subject token) and gets
// a new one, for one of the client's allowed audiences, that carries the
// user's identity and an "act" claim naming the client.
type exchangeHandler struct {
	s        *Server
	strategy oauth2.AccessTokenStrategy
	store    *fositeStore
}

var _ fosite.TokenEndpointHandler = (*exchangeHandler)(nil)

func (h *exchangeHandler) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(GrantTypeTokenExchange)
}

func (h *exchangeHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return false
}

func (h *exchangeHandler) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	client := r.GetClient()
	if client.IsPublic() || !client.GetGrantTypes().Has(GrantTypeTokenExchange) {
		return fosite.ErrUnauthorizedClient.WithHint("The client may not use the token exchange grant.")
	}
	form := r.GetRequestForm()
	if t := form.Get("subject_token_type"); t != TokenTypeAccessToken && t != TokenTypeJWT {
		return fosite.ErrInvalidRequest.WithHintf("subject_token_type must be %s.", TokenTypeAccessToken)
	}
	if t := form.Get("requested_token_type"); t != "" && t != TokenTypeAccessToken && t != TokenTypeJWT {
		return fosite.ErrInvalidRequest.WithHintf("Only %s tokens are issued.", TokenTypeAccessToken)
	}
	if form.Get("actor_token") != "" {
		return fosite.ErrInvalidRequest.WithHint("actor_token is not supported; the client is the actor.")
	}
	subject, err := h.s.verifyOwnToken(ctx, form.Get("subject_token"))
	if err != nil {
		var bad *ownTokenError
		if !errors.As(err, &bad) && !errors.Is(err, ErrTokenRevoked) && !errors.Is(err, ErrGrantRevoked) {
			// The store failed: not the client's fault, and its words stay in the log.
			h.s.logger.Error("token exchange: checking the subject token failed", "error", err)
			return fosite.ErrTemporarilyUnavailable.WithHint("The subject token cannot be checked right now; try again later.")
		}
		return fosite.ErrInvalidGrant.WithHintf("The subject token is not a valid token of this server: %v.", err)
	}
	targets := append(slices.Clone(form["audience"]), form["resource"]...)
	if len(targets) == 0 {
		return fosite.ErrInvalidRequest.WithHint("Name the target of the new token with audience or resource.")
	}
	allowed := client.(fositeClient).c.Audiences
	for _, t := range targets {
		if !slices.Contains(allowed, t) {
			return (&fosite.RFC6749Error{ErrorField: "invalid_target", CodeField: 400}).
				WithHintf("The client may not obtain tokens for %q.", t)
		}
		r.GrantAudience(t)
	}
	scope, _ := subject["scope"].(string)
	granted := splitScope(scope)
	for _, sc := range r.GetRequestedScopes() {
		if !slices.Contains(granted, sc) {
			return fosite.ErrInvalidScope.WithHintf("Scope %q exceeds the subject token's.", sc)
		}
		r.GrantScope(sc)
	}
	sess, ok := r.GetSession().(*oauth2.JWTSession)
	if !ok {
		return fosite.ErrServerError
	}
	sub, _ := subject["sub"].(string)
	sess.Subject, sess.JWTClaims.Subject = sub, sub
	for _, k := range []string{"email", "name", "groups", "gid", "idp"} {
		if v, ok := subject[k]; ok {
			sess.JWTClaims.Extra[k] = v
		}
	}
	act := map[string]any{"sub": client.GetID()}
	if prev, ok := subject["act"]; ok {
		act["act"] = prev // a chain of delegations
	}
	sess.JWTClaims.Extra["act"] = act
	sess.JWTClaims.Extra["client_id"] = client.GetID()
	exp := h.s.opts.Now().Add(h.s.opts.AccessTokenLifespan)
	if se, ok := subject["exp"].(float64); ok && time.Unix(int64(se), 0).Before(exp) {
		exp = time.Unix(int64(se), 0) // never outlive the subject token
	}
	sess.SetExpiresAt(fosite.AccessToken, exp.UTC().Round(time.Second))
	return nil
}

func (h *exchangeHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	token, sig, err := h.strategy.GenerateAccessToken(ctx, r)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	if err := h.store.CreateAccessTokenSession(ctx, sig, r.Sanitize(nil)); err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	resp.SetAccessToken(token)
	resp.SetTokenType("bearer")
	resp.SetExpiresIn(time.Until(r.GetSession().GetExpiresAt(fosite.AccessToken)).Round(time.Second))
	resp.SetScopes(r.GetGrantedScopes())
	resp.SetExtra("issued_token_type", TokenTypeAccessToken)
	return nil
}

func splitScope(s string) []string {
	var out []string
	for i, j := 0, 0; j <= len(s); j++ {
		if j == len(s) || s[j] == ' ' {
			if j > i {
				out = append(out, s[i:j])
			}
			i = j + 1
		}
	}
	return out
}

// verifyOwnToken checks that raw is a live access token this server
// issued, and returns its claims.
func (s *Server) verifyOwnToken(ctx context.Context, raw string) (map[string]any, error) {
	sec, err := s.ready(ctx)
	if err != nil {
		return nil, err
	}
	claims, err := sec.keys.verify(raw, s.opts.Issuer, s.opts.Now())
	if err != nil {
		return nil, &ownTokenError{err}
	}
	if err := s.CheckToken(ctx, claims, raw); err != nil {
		return nil, err
	}
	return claims, nil
}

// staticClients returns the configured clients by ID, secrets hashed.
// They are never stored: a changed secret or list takes effect at the
// next start, on every replica.
func staticClients(clients []StaticClient) map[string]*Client {
	m := map[string]*Client{}
	for _, sc := range clients {
		m[sc.ID] = &Client{ID: sc.ID, SecretHash: hashSecret(sc.Secret), GrantTypes: sc.GrantTypes, AuthMethod: "client_secret_basic",
			Audiences: sc.Audiences}
	}
	return m
}

// ownTokenError is a token that is not one of this server's valid tokens
// (as opposed to a failure to look it up).
type ownTokenError struct{ err error }

func (e *ownTokenError) Error() string { return e.err.Error() }
func (e *ownTokenError) Unwrap() error { return e.err }
