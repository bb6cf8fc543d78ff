package frontend

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/identity"
)

// The SDK carries a request's credentials to handlers, and binds sessions
// to users, through auth.TokenInfo, which only its bearer middleware can put
// into a request. sdk hands it the identity authentication established (it
// does not verify anything again); handlers read it back with
// identityOf.

const identityKey = "vmcp.identity"

// sdk serves r with h, handing it the caller's identity if there is one.
// id is the request's JSON-RPC id, if known, for the errors the SDK
// answers in plain text (sdkWriter).
func (g *Gateway) sdk(h *mcp.StreamableHTTPHandler, w http.ResponseWriter, r *http.Request, id json.RawMessage) {
	sw := &sdkWriter{ResponseWriter: w, id: id}
	defer sw.finish()
	g.opts.Telemetry.Handoff(w, r)
	switch {
	case identity.From(r.Context()).IsAnonymous() && h == g.stateful:
		g.serveStateful(sw, r)
	case identity.From(r.Context()).IsAnonymous():
		h.ServeHTTP(sw, r)
	case h == g.stateful:
		g.statefulAuthed.ServeHTTP(sw, r)
	default:
		g.statelessAuthed.ServeHTTP(sw, r)
	}
}

func identityTokenInfo(_ context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
	id := identity.From(r.Context())
	extra := map[string]any{identityKey: id}
	if r.Context().Value(replayCtxKey{}) == true {
		extra[replayKey] = true
	}
	return &auth.TokenInfo{UserID: id.Key(), Scopes: id.Scopes, Expiration: id.Expiry, Extra: extra}, nil
}

func (g *Gateway) wrapTokenInfo() {
	mw := auth.RequireBearerToken(identityTokenInfo, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})
	g.statefulAuthed = mw(http.HandlerFunc(g.serveStateful))
	g.statelessAuthed = mw(g.stateless)
}

// identityOf returns the identity of the request a handler serves.
func identityOf(req mcp.Request) *identity.Identity {
	if extra := req.GetExtra(); extra != nil && extra.TokenInfo != nil {
		if id, ok := extra.TokenInfo.Extra[identityKey].(*identity.Identity); ok {
			return id
		}
	}
	return identity.Anonymous
}
