package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
)

// fositeStore adapts [Store] to the storage interfaces fosite's handlers
// use. Requests are stored serialized (client by ID, session as JSON), so
// any Store implementation, in memory or networked, behaves the same.
type fositeStore struct {
	store    Store
	clients  func(ctx context.Context, id string) (*Client, error) // registered or metadata-document clients
	resource string                                                // the one audience every client may get
}

var (
	_ fosite.Storage                = (*fositeStore)(nil)
	_ oauth2.CoreStorage            = (*fositeStore)(nil)
	_ oauth2.TokenRevocationStorage = (*fositeStore)(nil)
	_ pkce.PKCERequestStorage       = (*fositeStore)(nil)
)

// fositeClient presents a [Client] to fosite.
type fositeClient struct {
	c        *Client
	resource string
}

func (f fositeClient) GetID() string                      { return f.c.ID }
func (f fositeClient) GetHashedSecret() []byte            { return f.c.SecretHash }
func (f fositeClient) GetRedirectURIs() []string          { return f.c.RedirectURIs }
func (f fositeClient) GetGrantTypes() fosite.Arguments    { return f.c.GrantTypes }
func (f fositeClient) GetResponseTypes() fosite.Arguments { return f.c.ResponseTypes }
func (f fositeClient) GetScopes() fosite.Arguments        { return f.c.Scopes }
func (f fositeClient) IsPublic() bool                     { return f.c.AuthMethod == "none" }
func (f fositeClient) GetAudience() fosite.Arguments      { return fosite.Arguments{f.resource} }

// GetTokenEndpointAuthMethod lets fosite enforce the registered method.
func (f fositeClient) GetTokenEndpointAuthMethod() string { return f.c.AuthMethod }

func (s *fositeStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := s.clients(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return fositeClient{c, s.resource}, nil
}

// vmcp accepts no JWT client assertions, so there is nothing to replay.
func (s *fositeStore) ClientAssertionJWTValid(context.Context, string) error { return nil }
func (s *fositeStore) SetClientAssertionJWT(context.Context, string, time.Time) error {
	return nil
}

// storedRequest is a fosite request as stored.
type storedRequest struct {
	ID                string          `json:"id"`
	RequestedAt       time.Time       `json:"requested_at"`
	ClientID          string          `json:"client_id"`
	RequestedScope    []string        `json:"requested_scope"`
	GrantedScope      []string        `json:"granted_scope"`
	Form              url.Values      `json:"form"`
	Session           json.RawMessage `json:"session"`
	RequestedAudience []string        `json:"requested_audience"`
	GrantedAudience   []string        `json:"granted_audience"`
}

func encodeRequest(r fosite.Requester) ([]byte, error) {
	sess, err := json.Marshal(r.GetSession())
	if err != nil {
		return nil, fmt.Errorf("encoding session: %w", err)
	}
	return json.Marshal(storedRequest{
		ID: r.GetID(), RequestedAt: r.GetRequestedAt(), ClientID: r.GetClient().GetID(),
		RequestedScope: r.GetRequestedScopes(), GrantedScope: r.GetGrantedScopes(),
		Form: r.GetRequestForm(), Session: sess,
		RequestedAudience: r.GetRequestedAudience(), GrantedAudience: r.GetGrantedAudience(),
	})
}

// decodeRequest rebuilds a request, decoding its session into sess (the
// session object fosite passes in).
func (s *fositeStore) decodeRequest(ctx context.Context, b []byte, sess fosite.Session) (fosite.Requester, error) {
	var sr storedRequest
	if err := json.Unmarshal(b, &sr); err != nil {
		return nil, fmt.Errorf("decoding request: %w", err)
	}
	if sess == nil {
		sess = newSession()
	}
	if err := json.Unmarshal(sr.Session, sess); err != nil {
		return nil, fmt.Errorf("decoding session: %w", err)
	}
	client, err := s.GetClient(ctx, sr.ClientID)
	if err != nil {
		return nil, fmt.Errorf("client %q of a stored request: %w", sr.ClientID, err)
	}
	return &fosite.Request{
		ID: sr.ID, RequestedAt: sr.RequestedAt, Client: client,
		RequestedScope: sr.RequestedScope, GrantedScope: sr.GrantedScope, Form: sr.Form, Session: sess,
		RequestedAudience: sr.RequestedAudience, GrantedAudience: sr.GrantedAudience,
	}, nil
}

func (s *fositeStore) create(ctx context.Context, kind TokenKind, sig string, r fosite.Requester, tokenType fosite.TokenType) error {
	b, err := encodeRequest(r)
	if err != nil {
		return err
	}
	exp := r.GetSession().GetExpiresAt(tokenType)
	return s.store.CreateToken(ctx, kind, &TokenRecord{Signature: sig, RequestID: r.GetID(), Active: true, ExpiresAt: exp, Request: b})
}

// get returns the stored request; inactiveErr is returned (with the
// request) for an inactive record.
func (s *fositeStore) get(ctx context.Context, kind TokenKind, sig string, sess fosite.Session, inactiveErr error) (fosite.Requester, error) {
	rec, err := s.store.GetToken(ctx, kind, sig)
	if errors.Is(err, ErrNotFound) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	req, err := s.decodeRequest(ctx, rec.Request, sess)
	if err != nil {
		return nil, err
	}
	if !rec.Active {
		return req, inactiveErr
	}
	return req, nil
}

func (s *fositeStore) CreateAuthorizeCodeSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.create(ctx, KindCode, code, r, fosite.AuthorizeCode)
}

func (s *fositeStore) GetAuthorizeCodeSession(ctx context.Context, code string, sess fosite.Session) (fosite.Requester, error) {
	return s.get(ctx, KindCode, code, sess, fosite.ErrInvalidatedAuthorizeCode)
}

func (s *fositeStore) InvalidateAuthorizeCodeSession(ctx context.Context, code string) error {
	return s.store.DeactivateToken(ctx, KindCode, code)
}

func (s *fositeStore) CreateAccessTokenSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.create(ctx, KindAccess, sig, r, fosite.AccessToken)
}

func (s *fositeStore) GetAccessTokenSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	return s.get(ctx, KindAccess, sig, sess, fosite.ErrInactiveToken)
}

func (s *fositeStore) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	return s.store.DeleteToken(ctx, KindAccess, sig)
}

func (s *fositeStore) CreateRefreshTokenSession(ctx context.Context, sig, _ string, r fosite.Requester) error {
	return s.create(ctx, KindRefresh, sig, r, fosite.RefreshToken)
}

func (s *fositeStore) GetRefreshTokenSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	return s.get(ctx, KindRefresh, sig, sess, fosite.ErrInactiveToken)
}

func (s *fositeStore) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	return s.store.DeleteToken(ctx, KindRefresh, sig)
}

// RotateRefreshToken retires the used refresh token (kept inactive, so its
// reuse is detected) and the family's access tokens.
// Of concurrent refreshes with one token, one rotates it; the others get
// fosite's "concurrent requests" error and no tokens.
func (s *fositeStore) RotateRefreshToken(ctx context.Context, requestID, sig string) error {
	err := s.store.DeactivateToken(ctx, KindRefresh, sig)
	switch {
	case errors.Is(err, ErrInactive):
		return fmt.Errorf("%w: %w", fosite.ErrSerializationFailure, err)
	case err != nil && !errors.Is(err, ErrNotFound):
		return err
	}
	return s.store.DeleteFamily(ctx, KindAccess, requestID)
}

func (s *fositeStore) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return s.store.DeactivateFamily(ctx, KindRefresh, requestID)
}

func (s *fositeStore) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.store.DeleteFamily(ctx, KindAccess, requestID)
}

func (s *fositeStore) CreatePKCERequestSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.create(ctx, KindPKCE, sig, r, fosite.AuthorizeCode)
}

func (s *fositeStore) GetPKCERequestSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	return s.get(ctx, KindPKCE, sig, sess, fosite.ErrNotFound)
}

func (s *fositeStore) DeletePKCERequestSession(ctx context.Context, sig string) error {
	return s.store.DeleteToken(ctx, KindPKCE, sig)
}
