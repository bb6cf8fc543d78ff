package app_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// TestSecondaryProviderClaims: with two providers and claimsFrom:
// upstream, what a user of the non-primary provider (or an unverified
// email) carries never passes for the primary provider's identity: a
// "contractors" group or an @example.com address from the other provider
// does not satisfy policies written for the primary one, and an email the
// primary provider does not vouch for is not seen at all. The other
// provider's profile stays usable under idp_profile.
func TestSecondaryProviderClaims(t *testing.T) {
	const (
		groupPolicy   = `permit(principal in Vmcp::Group::"contractors", action, resource);`
		emailPolicy   = `permit(principal, action, resource) when { principal has email && principal.email like "*@example.com" };`
		profilePolicy = `permit(principal, action, resource) when { principal.idp == "other" && principal has idp_profile && principal.idp_profile has email && principal.idp_profile.email like "*@example.com" };`
	)
	contractor := map[string]any{"email": "ceo@example.com", "email_verified": true, "groups": []string{"contractors"}}
	tests := []struct {
		name       string
		via        string // the provider the user logs in with
		claims     map[string]any
		policy     string
		wantListed bool
	}{
		{"other provider's group", "other", contractor, groupPolicy, false},
		{"other provider's verified email", "other", contractor, emailPolicy, false},
		{"other provider's profile, named as such", "other", contractor, profilePolicy, true},
		{"primary provider's unverified email", "main", map[string]any{"email": "ceo@example.com", "email_verified": false}, emailPolicy, false},
		{"primary provider's group", "main", contractor, groupPolicy, true},
		{"primary provider's verified email", "main", contractor, emailPolicy, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			user := fakeidp.Start(t, fakeidp.Options{Subject: "u-1", Claims: tc.claims})
			bystander := fakeidp.Start(t, fakeidp.Options{Subject: "u-2"})
			idps := map[string]*fakeidp.IdP{tc.via: user}
			order := []string{tc.via, "main"} // the test browser picks the first provider offered
			if tc.via == "main" {
				order = []string{"main", "other"}
				idps["other"] = bystander
			} else {
				idps["main"] = bystander
			}
			base := twoProviderGateway(t, order, idps, tc.policy)
			s := connect(t, base+"/mcp", login(t, base))
			res, err := s.ListTools(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			listed := slices.ContainsFunc(res.Tools, func(tool *mcp.Tool) bool { return tool.Name == "be_whoami" })
			if listed != tc.wantListed {
				t.Errorf("be_whoami listed = %v, want %v", listed, tc.wantListed)
			}
		})
	}
}

// twoProviderGateway runs vmcp with two OIDC providers, "main" the
// primary one, offered in order, and one inline policy.
func twoProviderGateway(t *testing.T, order []string, idps map[string]*fakeidp.IdP, policy string) string {
	t.Helper()
	addr := vmcptest.FreeAddr(t)
	base := "http://" + addr
	t.Setenv("VMCP_SECRET_IDP_SECRET", "secret")
	providers := ""
	for _, name := range order {
		providers += fmt.Sprintf(`
  - name: %s
    type: oidc
    oidcConfig:
      issuerUrl: %s
      clientId: vmcp
      clientSecretRef: {name: idp, key: secret}`, name, idps[name].URL())
	}
	doc := fmt.Sprintf(`
name: authtest
incomingAuth:
  type: oidc
  oidcConfigRef: {name: self, audience: %[1]s/mcp}
  authzConfig:
    type: inline
    claimsFrom: upstream
    primaryUpstreamProvider: main
    inline:
      policies:
        - '%[5]s'
authServerConfig:
  issuer: %[1]s
  upstreamProviders:%[2]s
backends:
- name: be
  url: %[3]s
server:
  listen: %[4]s
`, base, providers, whoamiBackend(t), addr, policy)
	vmcptest.Start(t, doc, nil)
	return base
}
