package authz

import (
	"maps"
	"slices"
	"strings"

	"github.com/vmcp-dev/vmcp/internal/identity"
)

// Source names where a claim came from.
type Source string

// Claim sources, in increasing precedence: a claim from a later source
// replaces one from an earlier source.
const (
	// SourceToken is the token the client presented (vmcp's own, or an
	// external IdP's, verified by the authentication layer).
	SourceToken Source = "token"
	// SourceAccessToken is the upstream IdP's access token, only when it
	// is a JWT that verified against the IdP's keys at login or refresh.
	SourceAccessToken Source = "upstream_access_token"
	// SourceUserinfo is the upstream userinfo response, fetched with the
	// upstream access token at login and at each refresh.
	SourceUserinfo Source = "userinfo"
	// SourceIDToken is the upstream ID token, verified at login and at
	// each refresh.
	SourceIDToken Source = "id_token"
)

// Upstream is what vmcp verified about the user at the upstream IdP; each
// map is nil when that source does not exist (no ID token from an OAuth 2.0
// provider; an opaque access token is never a claims source).
type Upstream struct {
	Provider          string
	IDTokenClaims     map[string]any
	UserinfoClaims    map[string]any
	AccessTokenClaims map[string]any
}

// Claims are a principal's claims with the source of each.
type Claims struct {
	Values  map[string]any
	Sources map[string]Source
}

// Resolve merges the claims of the sources that exist, token first, then
// the upstream access token (JWT only), userinfo, and the ID token, which
// wins. up is nil when the policies use only the token's claims.
//
// Derived attributes: "scopes" is a set built from a space-separated
// "scope" string (or a "scp" array), so multi-valued scopes are usable
// with contains().
func Resolve(tokenClaims map[string]any, up *Upstream) Claims {
	c := Claims{Values: make(map[string]any, len(tokenClaims)+8), Sources: map[string]Source{}}
	layer := func(m map[string]any, s Source) {
		for k, v := range m {
			c.Values[k] = v
			c.Sources[k] = s
		}
	}
	layer(tokenClaims, SourceToken)
	if up != nil {
		upstream := func(m map[string]any, s Source) {
			for k, v := range m {
				if !tokenBound[k] {
					c.Values[k] = v
					c.Sources[k] = s
				}
			}
		}
		upstream(up.AccessTokenClaims, SourceAccessToken)
		upstream(up.UserinfoClaims, SourceUserinfo)
		upstream(up.IDTokenClaims, SourceIDToken)
	}
	if _, ok := c.Values["scopes"]; !ok {
		if set, src, ok := scopeSet(c); ok {
			c.Values["scopes"] = set
			c.Sources["scopes"] = src
		}
	}
	return c
}

func scopeSet(c Claims) ([]any, Source, bool) {
	if s, ok := c.Values["scope"].(string); ok {
		var out []any
		for f := range strings.FieldsSeq(s) {
			out = append(out, f)
		}
		return out, c.Sources["scope"], true
	}
	if a, ok := c.Values["scp"].([]any); ok {
		return a, c.Sources["scp"], true
	}
	return nil, "", false
}

// tokenBound are the claims that describe the token the client presented
// (what vmcp granted it, for whom, until when), not the user: upstream
// sources never replace them.
var tokenBound = map[string]bool{
	"scope": true, "scp": true, "scopes": true, "aud": true, "exp": true, "iat": true, "nbf": true, "jti": true,
	"client_id": true, "azp": true, "nonce": true, "at_hash": true, "c_hash": true, "auth_time": true, "sid": true,
	"gid": true, "idp": true, "act": true, "typ": true,
}

// Lookup finds a claim by name, or else by a dotted path into nested
// claims ("realm_access.roles").
func (c Claims) Lookup(path string) (any, bool) {
	if v, ok := c.Values[path]; ok {
		return v, true
	}
	return identity.ClaimPath(c.Values, path)
}

// values returns the strings of a claim that is a string or a list.
func (c Claims) values(path string) []string {
	v, ok := c.Lookup(path)
	if !ok {
		return nil
	}
	switch v := v.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return slices.Clone(v)
	}
	return nil
}

// Names returns the claim names, sorted.
func (c Claims) Names() []string {
	return slices.Sorted(maps.Keys(c.Values))
}

// ClaimsPolicy says which claims policies see: the token's alone, or with
// the caller's upstream identity (incomingAuth.authzConfig.claimsFrom).
type ClaimsPolicy struct {
	// FromUpstream: claims are taken from the upstream identity too
	// (claimsFrom: upstream).
	FromUpstream bool
	// PrimaryProvider is the upstream provider whose identity counts.
	PrimaryProvider string
}

// Claims resolves the claims policies see for a caller whose token has the
// claims token and who logged in upstream as up (nil if not through vmcp's
// authorization server): the upstream identity counts only when p takes
// claims from upstream and up is the primary provider's; otherwise the
// token's claims alone. For a user of another provider than the primary
// one, the profile claims vmcp's token copied from that provider are moved
// under [SecondaryProfileClaim], so that they never pass for the primary
// provider's (an email domain, a group).
func (p ClaimsPolicy) Claims(token map[string]any, up *Upstream) Claims {
	if up == nil || !p.FromUpstream {
		return Resolve(token, nil)
	}
	if up.Provider != p.PrimaryProvider {
		return Resolve(secondaryProfile(token), nil)
	}
	return Resolve(token, up)
}

// SecondaryProfileClaim holds, for a user of a provider other than the
// primary one, the profile claims of vmcp's token: principal.idp_profile.email.
const SecondaryProfileClaim = "idp_profile"

// profileClaims are the claims vmcp's token copies from the provider's
// profile.
var profileClaims = []string{"email", "email_verified", "name", "groups"}

func secondaryProfile(token map[string]any) map[string]any {
	out := maps.Clone(token)
	profile := map[string]any{}
	for _, k := range profileClaims {
		if v, ok := out[k]; ok {
			profile[k] = v
			delete(out, k)
		}
	}
	delete(out, SecondaryProfileClaim)
	if len(profile) > 0 {
		out[SecondaryProfileClaim] = profile
	}
	return out
}
