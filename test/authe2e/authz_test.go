package authe2e

import (
	"strings"
	"testing"

	"github.com/vmcp-dev/vmcp/internal/testsupport/hydra"
)

// withPolicies adds an inline Cedar authzConfig to the gateway's
// incomingAuth, the way the seed manifest does.
func withPolicies(policies ...string) func(string) string {
	return func(doc string) string {
		var b strings.Builder
		b.WriteString("  authzConfig:\n    type: inline\n    inline:\n      policies:\n")
		for _, p := range policies {
			b.WriteString("        - '" + strings.ReplaceAll(p, "'", "''") + "'\n")
		}
		i := strings.Index(doc, "authServerConfig:")
		return doc[:i] + b.String() + doc[i:]
	}
}

func toolNames(t *testing.T, list map[string]any) []string {
	t.Helper()
	tools, _ := list["tools"].([]any)
	var names []string
	for _, x := range tools {
		names = append(names, x.(map[string]any)["name"].(string))
	}
	return names
}

// TestSeedOpaqueTokens is the seed bug, end to end: Hydra issues opaque
// access tokens (like Google's ya29.*), the seed's permit-everything policy
// is in place, and a real client goes through the whole OAuth flow. The
// tool list must be the full aggregated list and calls must work.
func TestSeedOpaqueTokens(t *testing.T) {
	skipUnlessE2E(t)
	h := hydra.Start(t, &hydra.Options{AccessTokenStrategy: hydra.Opaque})
	g := startGateway(t, h, withPolicies(`permit(principal, action, resource);`))
	_, steps := runClient(t, h, g, hydra.Login{}, "script",
		`[{"op":"tools"},{"op":"call","name":"fixture_test_simple_text","arguments":{}}]`)
	names := toolNames(t, steps[0].(map[string]any))
	if len(names) < 10 || !strings.HasPrefix(names[0], "fixture_") {
		t.Fatalf("tools/list under permit-all with opaque upstream tokens = %v, want the whole fixture list", names)
	}
	call := steps[1].(map[string]any)
	if call["isError"] == true {
		t.Errorf("tools/call failed: %v", call)
	}
}

// TestPoliciesOnUpstreamClaims decides from the ID token and userinfo when
// the upstream access token is opaque, and when it is a JWT without the
// claim a policy needs.
func TestPoliciesOnUpstreamClaims(t *testing.T) {
	skipUnlessE2E(t)
	alice := hydra.Login{Subject: "alice-123", IDTokenClaims: map[string]any{
		"email": "alice@corp.example", "email_verified": true, "name": "Alice", "groups": []any{"engineering"}}}
	bob := hydra.Login{Subject: "bob-456", IDTokenClaims: map[string]any{
		"email": "bob@partner.example", "email_verified": true, "name": "Bob", "groups": []any{"sales"}}}
	tests := []struct {
		name     string
		mode     hydra.TokenStrategy
		policies []string
		login    hydra.Login
		wantAll  bool // every tool listed (else none)
	}{
		{"opaque/email domain allows", hydra.Opaque, []string{`permit(principal, action, resource) when { principal.email like "*@corp.example" };`}, alice, true},
		{"opaque/email domain denies", hydra.Opaque, []string{`permit(principal, action, resource) when { principal.email like "*@corp.example" };`}, bob, false},
		{"opaque/group allows", hydra.Opaque, []string{`permit(principal in Vmcp::Group::"engineering", action, resource);`}, alice, true},
		{"opaque/group denies", hydra.Opaque, []string{`permit(principal in Vmcp::Group::"engineering", action, resource);`}, bob, false},
		{"opaque/forbid upstream subject", hydra.Opaque, []string{`permit(principal, action, resource);`,
			`forbid(principal, action, resource) when { principal.sub == "alice-123" };`}, alice, false},
		{"opaque/unverified email denies", hydra.Opaque, []string{`permit(principal, action, resource) when { principal.email like "*@corp.example" };`},
			hydra.Login{Subject: "mallory", IDTokenClaims: map[string]any{"email": "ceo@corp.example", "email_verified": false}}, false},
		{"jwt without email/email from ID token", hydra.JWT, []string{`permit(principal, action, resource) when { principal.email like "*@corp.example" };`}, alice, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := hydra.Start(t, &hydra.Options{AccessTokenStrategy: tc.mode, Login: tc.login})
			g := startGateway(t, h, withPolicies(tc.policies...))
			list, _ := runClient(t, h, g, tc.login, "tools")
			names := toolNames(t, list)
			if tc.wantAll && len(names) < 10 {
				t.Errorf("tools = %v, want the whole fixture list", names)
			}
			if !tc.wantAll && len(names) != 0 {
				t.Errorf("tools = %v, want none", names)
			}
		})
	}
}
