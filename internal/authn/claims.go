package authn

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/vmcp-dev/vmcp/internal/identity"
)

// Claim names read from tokens and introspection responses.
const (
	claimGrantID  = "gid" // set by vmcp's authorization server
	claimProvider = "idp" // set by vmcp's authorization server
)

// stringClaim returns claim name if it is a string; a claim of another type
// is an error, an absent one is "".
func stringClaim(claims map[string]any, name string) (string, error) {
	v, ok := claims[name]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("claim %q is not a string", name)
	}
	return s, nil
}

// audiences returns the "aud" claim, a string or an array of strings.
func audiences(claims map[string]any) ([]string, error) {
	switch v := claims["aud"].(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, a := range v {
			s, ok := a.(string)
			if !ok {
				return nil, fmt.Errorf("claim \"aud\" holds a non-string")
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("claim \"aud\" is neither a string nor an array")
	}
}

// scopes returns the granted scopes: "scope" (a space-separated string, or
// an array) and "scp" (an array, or a string), merged without duplicates.
func scopes(claims map[string]any) []string {
	var out []string
	for _, name := range [...]string{"scope", "scp"} {
		switch v := claims[name].(type) {
		case string:
			out = append(out, strings.Fields(v)...)
		case []any:
			for _, s := range v {
				if s, ok := s.(string); ok && s != "" && !strings.ContainsAny(s, " \t") {
					out = append(out, s)
				}
			}
		}
	}
	if len(out) < 2 {
		return out
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// timeClaims are the registered claims that bound a token's validity (RFC
// 7519 §4.1.4–6), as go-jose decodes them.
type timeClaims struct {
	Expiry    *jwt.NumericDate `json:"exp"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
}

// validity checks "exp" (required if requireExp), "nbf" and "iat" of the
// JSON object raw against now with leeway skew (go-jose's
// [jwt.Claims.ValidateWithLeeway]) and returns the expiry (zero if none).
func validity(raw []byte, now time.Time, skew time.Duration, requireExp bool) (time.Time, error) {
	var tc timeClaims
	if err := json.Unmarshal(raw, &tc); err != nil {
		return time.Time{}, fmt.Errorf("exp, nbf or iat: %w", err)
	}
	rc := jwt.Claims{Expiry: tc.Expiry, NotBefore: tc.NotBefore, IssuedAt: tc.IssuedAt}
	if err := rc.ValidateWithLeeway(jwt.Expected{Time: now}, skew); err != nil {
		return time.Time{}, timeError(&rc, err)
	}
	switch {
	case rc.Expiry != nil:
		return rc.Expiry.Time(), nil
	case requireExp:
		return time.Time{}, errors.New(`claim "exp" is missing`)
	}
	return time.Time{}, nil
}

// timeError words a failed time check of go-jose with the date at fault.
func timeError(rc *jwt.Claims, err error) error {
	date := func(d *jwt.NumericDate) string { return d.Time().UTC().Format(time.RFC3339) }
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return fmt.Errorf("token expired at %s: %w", date(rc.Expiry), err)
	case errors.Is(err, jwt.ErrNotValidYet):
		return fmt.Errorf("token not valid before %s: %w", date(rc.NotBefore), err)
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return fmt.Errorf("token issued in the future (%s): %w", date(rc.IssuedAt), err)
	}
	return err
}

// newIdentity builds the identity of verified claims whose issuer has been
// checked. grants says that the issuer is vmcp's own authorization server,
// the only one whose gid and idp claims are taken.
func newIdentity(claims map[string]any, issuer string, exp time.Time, grants bool) (*identity.Identity, error) {
	sub, err := stringClaim(claims, "sub")
	if err != nil {
		return nil, err
	}
	if sub == "" {
		return nil, fmt.Errorf("claim \"sub\" is missing")
	}
	id := &identity.Identity{Subject: sub, Issuer: issuer, Claims: claims, Scopes: scopes(claims), Expiry: exp}
	if !grants {
		return id, nil
	}
	if id.GrantID, err = stringClaim(claims, claimGrantID); err != nil {
		return nil, err
	}
	if id.Provider, err = stringClaim(claims, claimProvider); err != nil {
		return nil, err
	}
	return id, nil
}
