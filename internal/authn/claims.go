package authn

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/vmcp-dev/vmcp/internal/identity"
)

// Claim names read from tokens and introspection responses.
const (
	claimGrantID  = "gid" // set by vmcp's authorization server
	claimProvider = "idp" // set by vmcp's authorization server
)

// maxUnixSeconds bounds numeric dates (year ~36812), so that conversions to
// time.Time never overflow.
const maxUnixSeconds = 1 << 40

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

// timeClaim returns the NumericDate claim name; ok is false if it is
// absent.
func timeClaim(claims map[string]any, name string) (t time.Time, ok bool, err error) {
	v, present := claims[name]
	if !present || v == nil {
		return time.Time{}, false, nil
	}
	f, isNum := v.(float64)
	if !isNum || math.IsNaN(f) || f < 0 || f > maxUnixSeconds {
		return time.Time{}, false, fmt.Errorf("claim %q is not a valid NumericDate", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
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

// validity checks "exp" (required if requireExp), "nbf" and "iat" against
// now with skew and returns the expiry.
func validity(claims map[string]any, now time.Time, skew time.Duration, requireExp bool) (time.Time, error) {
	exp, ok, err := timeClaim(claims, "exp")
	if err != nil {
		return time.Time{}, err
	}
	if !ok && requireExp {
		return time.Time{}, fmt.Errorf("claim \"exp\" is missing")
	}
	if ok && !now.Before(exp.Add(skew)) {
		return time.Time{}, fmt.Errorf("token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	nbf, ok, err := timeClaim(claims, "nbf")
	if err != nil {
		return time.Time{}, err
	}
	if ok && now.Add(skew).Before(nbf) {
		return time.Time{}, fmt.Errorf("token not valid before %s", nbf.UTC().Format(time.RFC3339))
	}
	iat, ok, err := timeClaim(claims, "iat")
	if err != nil {
		return time.Time{}, err
	}
	if ok && now.Add(skew).Before(iat) {
		return time.Time{}, fmt.Errorf("token issued in the future (%s)", iat.UTC().Format(time.RFC3339))
	}
	return exp, nil
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
