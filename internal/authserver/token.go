package authserver

import (
	"errors"
	"net/http"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

// token is the token endpoint: fosite handles the grants; vmcp checks the
// resource, and on refresh makes sure the user's upstream authorization
// still stands (refreshing it when it would expire before the new access
// token) and carries refreshed claims into the new token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if _, err := s.ready(ctx); err != nil {
		writeUnavailable(w)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.oauth.WriteAccessError(ctx, w, fosite.NewAccessRequest(newSession()), fosite.ErrInvalidRequest.WithHint("The request body is not a form."))
		return
	}
	sess := newSession()
	if err := s.checkResource(r.PostForm); err != nil {
		s.oauth.WriteAccessError(ctx, w, fosite.NewAccessRequest(sess), err)
		return
	}
	ar, err := s.oauth.NewAccessRequest(ctx, r, sess)
	if err != nil {
		err = s.storeErr(err)
		if r.PostForm.Get("grant_type") == "refresh_token" && errors.Is(err, fosite.ErrInactiveToken) {
			// fosite revoked the whole family. Concurrent refreshes with
			// one token by a legitimate client end here too (RFC 9700
			// §4.14.2 allows it); either way the client must authorize again.
			gid, _ := sess.JWTClaims.Extra["gid"].(string)
			s.logger.Warn("refresh token reuse detected; every token of that authorization is revoked",
				"client_id", clientOf(r, sess), "grant", gid)
		}
		s.logger.Info("token request refused", "error", fosite.ErrorToRFC6749Error(err).ErrorField, "description", fosite.ErrorToRFC6749Error(err).GetDescription())
		s.oauth.WriteAccessError(ctx, w, ar, err)
		return
	}
	if ar.GetGrantTypes().ExactOne("refresh_token") {
		if err := s.refreshUpstream(r, ar); err != nil {
			s.oauth.WriteAccessError(ctx, w, ar, err)
			return
		}
	}
	resp, err := s.oauth.NewAccessResponse(ctx, ar)
	if errors.Is(err, ErrInactive) {
		// Another request redeemed this code at the same moment: it got
		// the tokens, this one gets none.
		s.logger.Warn("an authorization code was redeemed twice at once; the second request got nothing", "client_id", ar.GetClient().GetID())
		s.oauth.WriteAccessError(ctx, w, ar, fosite.ErrInvalidGrant.WithHint("The authorization code was already used."))
		return
	}
	if err != nil {
		s.logger.Error("issuing tokens", "error", err)
		s.oauth.WriteAccessError(ctx, w, ar, s.storeErr(err))
		return
	}
	if ar.GetGrantTypes().ExactOne("authorization_code") || ar.GetGrantTypes().ExactOne("refresh_token") {
		s.touchClient(ctx, ar.GetClient())
	}
	s.oauth.WriteAccessResponse(ctx, w, ar, resp)
}

// clientOf names the client of a refused refresh: the one the stored
// token was issued to, else the one the request claims to be.
func clientOf(r *http.Request, sess *oauth2.JWTSession) string {
	if id, _ := sess.JWTClaims.Extra["client_id"].(string); id != "" {
		return id
	}
	if id, _, ok := r.BasicAuth(); ok {
		return id
	}
	return r.PostForm.Get("client_id")
}

// refreshUpstream keeps a refreshed vmcp token from outliving the user's
// upstream authorization. A revoked grant ends the whole token family, so
// the client starts a clean authorization.
func (s *Server) refreshUpstream(r *http.Request, ar fosite.AccessRequester) error {
	ctx := r.Context()
	sess, ok := ar.GetSession().(*oauth2.JWTSession)
	if !ok {
		return fosite.ErrServerError
	}
	// The new access token is issued now; fosite would keep the iat of
	// the authorization's first token.
	sess.JWTClaims.IssuedAt = time.Time{}
	gid, _ := sess.JWTClaims.Extra["gid"].(string)
	if gid == "" {
		return nil
	}
	g, err := s.grants.Fresh(ctx, gid, s.opts.AccessTokenLifespan)
	switch {
	case errors.Is(err, ErrGrantRevoked), errors.Is(err, ErrNotFound):
		_ = s.store.DeactivateFamily(ctx, KindRefresh, ar.GetID())
		_ = s.store.DeleteFamily(ctx, KindAccess, ar.GetID())
		return fosite.ErrInvalidGrant.WithHint("The user's authorization at the identity provider ended; authorize again.")
	case err != nil:
		s.logger.Error("refreshing upstream tokens", "grant", gid, "error", err)
		return fosite.ErrTemporarilyUnavailable.WithHint("The identity provider cannot be reached; try again later.")
	}
	if p := s.provider(g.Provider); p != nil {
		s.setClaims(sess.JWTClaims.Extra, g, p, ar.GetClient().GetID())
	}
	return nil
}
