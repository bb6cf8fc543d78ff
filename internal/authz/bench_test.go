package authz_test

import (
	"fmt"
	"testing"

	"github.com/vmcp-dev/vmcp/internal/authz"
)

// twentyPolicies is a realistic policy set: group and domain permits per
// backend, a few forbids on subjects and arguments.
func twentyPolicies() []string {
	var ps []string
	for i := range 8 {
		ps = append(ps, fmt.Sprintf(`permit(principal in Vmcp::Group::"team-%d", action == Vmcp::Action::"call_tool", resource) when { resource.backend == "backend-%d" };`, i, i))
	}
	for i := range 6 {
		ps = append(ps, fmt.Sprintf(`permit(principal, action in Vmcp::Action::"tools", resource) when { principal has email && principal.email like "*@dept%d.example" };`, i))
	}
	for i := range 4 {
		ps = append(ps, fmt.Sprintf(`forbid(principal, action, resource) when { principal.sub == "blocked-%d" };`, i))
	}
	ps = append(ps, `forbid(principal, action == Vmcp::Action::"call_tool", resource) when { context.arguments has force && context.arguments.force == true };`)
	ps = append(ps, `permit(principal, action == Vmcp::Action::"list_tools", resource);`)
	return ps
}

func benchPrincipal(a *authz.Authorizer) *authz.Principal {
	claims := authz.Resolve(map[string]any{"sub": "u_1", "email": "bob@dept3.example", "scope": "mcp tools:read", "idp": "google"},
		&authz.Upstream{IDTokenClaims: map[string]any{"sub": "bob-7", "email": "bob@dept3.example", "groups": []any{"team-2", "team-5"}, "name": "Bob"}})
	return a.Principal("u_1", claims)
}

// BenchmarkDecision is one call_tool decision against 20 policies
// (target: at most 10 µs).
func BenchmarkDecision(b *testing.B) {
	a := newAuthorizer(b, twentyPolicies()...)
	p := benchPrincipal(a)
	tool := a.Tool("backend-2_search", "backend-2", map[string]any{"readOnlyHint": true})
	args := map[string]any{"query": "x"}
	b.ReportAllocs()
	for b.Loop() {
		if !a.Decide(p, tool, args, "tools/call").Allowed {
			b.Fatal("denied")
		}
	}
}

// BenchmarkFilter1000 decides 1,000 tools for one principal, as a filtered
// tools/list does (target: at most 2 ms).
func BenchmarkFilter1000(b *testing.B) {
	a := newAuthorizer(b, twentyPolicies()...)
	p := benchPrincipal(a)
	tools := make([]*authz.Target, 1000)
	for i := range tools {
		be := fmt.Sprintf("backend-%d", i%20)
		tools[i] = a.Tool(fmt.Sprintf("%s_tool_%d", be, i), be, nil)
	}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for _, t := range tools {
			if a.Decide(p, t, nil, "tools/list").Allowed {
				n++
			}
		}
		if n == 0 {
			b.Fatal("none allowed")
		}
	}
}

// BenchmarkPrincipal prepares a caller (claims to Cedar values), done once
// per token and cached by the gateway.
func BenchmarkPrincipal(b *testing.B) {
	a := newAuthorizer(b, twentyPolicies()...)
	b.ReportAllocs()
	for b.Loop() {
		benchPrincipal(a)
	}
}
