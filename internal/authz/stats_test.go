package authz_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vmcp-dev/vmcp/internal/authz"
)

// TestDecisionCounts: decisions are counted by action, outcome and the
// sources of the principal's claims.
func TestDecisionCounts(t *testing.T) {
	a := newAuthorizer(t, `permit(principal, action == Vmcp::Action::"call_tool", resource == Vmcp::Tool::"search") when { principal.email like "*@corp.example" };`)
	withIDToken := a.Principal("alice", authz.Resolve(map[string]any{"sub": "alice"},
		&authz.Upstream{Provider: "idp", IDTokenClaims: map[string]any{"email": "alice@corp.example"}}))
	tokenOnly := a.Principal("bob", authz.Resolve(map[string]any{"email": "bob@corp.example"}, nil))
	if diff := cmp.Diff([]string{"token", "id_token"}, withIDToken.Sources()); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
	search, other := a.Tool("search", "docs", nil), a.Tool("other", "docs", nil)
	a.Decide(withIDToken, search, nil, "tools/call")
	a.Decide(withIDToken, search, nil, "tools/call")
	a.Decide(withIDToken, other, nil, "tools/call")
	a.Decide(tokenOnly, search, nil, "tools/call")
	a.DecideList(tokenOnly, authz.ListTools, "tools/list")
	want := []authz.DecisionCount{
		{Action: authz.CallTool, Allowed: false, ClaimSources: "token+id_token", N: 1},
		{Action: authz.CallTool, Allowed: true, ClaimSources: "token", N: 1},
		{Action: authz.CallTool, Allowed: true, ClaimSources: "token+id_token", N: 2},
		{Action: authz.ListTools, Allowed: false, ClaimSources: "token", N: 1},
	}
	if diff := cmp.Diff(want, a.DecisionCounts()); diff != "" {
		t.Errorf("DecisionCounts (-want +got):\n%s", diff)
	}
}
