package authz_test

import (
	"fmt"
	"testing"

	"github.com/vmcp-dev/vmcp/internal/authz"
)

// TestClaimsPolicy: the upstream identity feeds policies only with
// claimsFrom: upstream and the primary provider; a user of another
// provider keeps its profile claims under idp_profile only.
func TestClaimsPolicy(t *testing.T) {
	token := map[string]any{"sub": "u", "email": "ceo@example.com", "groups": []any{"admins"}, "idp_profile": "forged"}
	up := func(provider string) *authz.Upstream {
		return &authz.Upstream{Provider: provider, IDTokenClaims: map[string]any{"department": "sales"}}
	}
	upstream := authz.ClaimsPolicy{FromUpstream: true, PrimaryProvider: "main"}
	for _, c := range []struct {
		name   string
		policy authz.ClaimsPolicy
		up     *authz.Upstream
		// what Lookup finds for email, idp_profile.email, department
		email, profileEmail, department string
	}{
		{"token only", authz.ClaimsPolicy{PrimaryProvider: "main"}, up("main"), "ceo@example.com", "", ""},
		{"no upstream login", upstream, nil, "ceo@example.com", "", ""},
		{"primary provider", upstream, up("main"), "ceo@example.com", "", "sales"},
		{"another provider", upstream, up("other"), "", "ceo@example.com", ""},
	} {
		got := c.policy.Claims(token, c.up)
		str := func(path string) string {
			v, ok := got.Lookup(path)
			if !ok {
				return ""
			}
			return fmt.Sprint(v)
		}
		if e, p, d := str("email"), str("idp_profile.email"), str("department"); e != c.email || p != c.profileEmail || d != c.department {
			t.Errorf("%s: email %q, idp_profile.email %q, department %q; want %q, %q, %q", c.name, e, p, d, c.email, c.profileEmail, c.department)
		}
	}
	if token["email"] != "ceo@example.com" || token["idp_profile"] != "forged" {
		t.Errorf("the caller's token map was changed: %v", token)
	}
}
