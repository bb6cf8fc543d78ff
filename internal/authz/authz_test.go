package authz_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/authz"
)

func newAuthorizer(t testing.TB, policies ...string) *authz.Authorizer {
	t.Helper()
	a, err := authz.New(&authz.Options{Server: "gateway", Policies: authz.Policies{Inline: policies}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// vmcpToken are the claims of an access token vmcp issued: a stable
// subject, and the profile copied at login.
func vmcpToken() map[string]any {
	return map[string]any{"sub": "u_4f1c", "iss": "https://gw.example", "email": "alice@corp.example", "idp": "google",
		"scope": "mcp tools:read"}
}

// upstream is what vmcp verified at the IdP for Alice.
func upstream(accessTokenClaims map[string]any) *authz.Upstream {
	return &authz.Upstream{
		Provider:          "google",
		IDTokenClaims:     map[string]any{"sub": "alice-123", "email": "alice@corp.example", "email_verified": true, "groups": []any{"eng"}},
		UserinfoClaims:    map[string]any{"sub": "alice-123", "name": "Alice", "email": "alice@corp.example"},
		AccessTokenClaims: accessTokenClaims,
	}
}

// TestTokenShapeMatrix: whatever the shape of the upstream IdP's access
// token, decisions come from verified sources and are the same. An opaque,
// malformed or absent access token is simply not a claims source (the
// authorization server only ever stores claims of a JWT that verified, see
// authserver's TestUpstreamAccessTokenVerified), so all three reach authz as
// nil claims (the "opaque" row) and never cause an error or a deny by
// themselves. A verified access token that disagrees with the ID token does
// not change the decision either: the ID token wins.
func TestTokenShapeMatrix(t *testing.T) {
	t.Parallel()
	shapes := []struct {
		name string
		at   map[string]any // the claims the authorization server stored for the access token
	}{
		{"opaque (Google ya29)", nil},
		{"JWT with identity claims", map[string]any{"sub": "alice-123", "email": "alice@corp.example", "scp": []any{"openid"}}},
		{"JWT without identity claims", map[string]any{"sub": "alice-123", "scp": []any{"openid"}, "client_id": "vmcp"}},
		{"JWT disagreeing with the ID token", map[string]any{"sub": "mallory-9", "email": "mallory@evil.example", "groups": []any{"guests"}}},
	}
	policies := []struct {
		name   string
		policy string
		want   bool
	}{
		{"permit all", `permit(principal, action, resource);`, true},
		{"email domain", `permit(principal, action, resource) when { principal has email && principal.email like "*@corp.example" };`, true},
		{"group", `permit(principal in Vmcp::Group::"eng", action, resource);`, true},
		{"forbid by upstream subject", `permit(principal, action, resource); forbid(principal, action, resource) when { principal.sub == "alice-123" };`, false},
	}
	for _, s := range shapes {
		for _, p := range policies {
			t.Run(s.name+"/"+p.name, func(t *testing.T) {
				t.Parallel()
				a := newAuthorizer(t, p.policy)
				claims := authz.Resolve(vmcpToken(), upstream(s.at))
				pr := a.Principal("u_4f1c", claims)
				d := a.Decide(pr, a.Tool("github_search", "github", nil), nil, "tools/call")
				if d.Allowed != p.want || len(d.Errors) > 0 {
					t.Errorf("allowed = %v (errors %v), want %v", d.Allowed, d.Errors, p.want)
				}
			})
		}
	}
}

func TestClaimPrecedenceAndSources(t *testing.T) {
	t.Parallel()
	c := authz.Resolve(vmcpToken(), upstream(map[string]any{"sub": "alice-123", "department": "r&d"}))
	for name, want := range map[string]authz.Source{
		"sub": authz.SourceIDToken, "email": authz.SourceIDToken, "name": authz.SourceUserinfo,
		"department": authz.SourceAccessToken, "idp": authz.SourceToken, "scope": authz.SourceToken, "scopes": authz.SourceToken,
	} {
		if got := c.Sources[name]; got != want {
			t.Errorf("source of %s = %q, want %q", name, got, want)
		}
	}
	if c.Values["sub"] != "alice-123" {
		t.Errorf("sub = %v: the upstream subject should win over vmcp's", c.Values["sub"])
	}
	// Token only: the opt-out sees just the token's claims.
	only := authz.Resolve(vmcpToken(), nil)
	if only.Values["sub"] != "u_4f1c" || only.Sources["email"] != authz.SourceToken {
		t.Errorf("token-only claims = %v", only.Values)
	}
}

func TestMultiValuedAndNestedClaims(t *testing.T) {
	t.Parallel()
	a := newAuthorizer(t,
		`@id("scoped") permit(principal, action == Vmcp::Action::"call_tool", resource) when { principal.scopes.contains("tools:read") };`,
		`@id("delegated") forbid(principal, action, resource) when { principal has act && principal.act.sub == "evil-agent" };`)
	claims := vmcpToken()
	claims["act"] = map[string]any{"sub": "helper-agent"}
	d := a.Decide(a.Principal("u", authz.Resolve(claims, nil)), a.Tool("t", "b", nil), nil, "tools/call")
	if !d.Allowed {
		t.Errorf("space-separated scope: %+v", d)
	}
	claims["act"] = map[string]any{"sub": "evil-agent"}
	d = a.Decide(a.Principal("u", authz.Resolve(claims, nil)), a.Tool("t", "b", nil), nil, "tools/call")
	if d.Allowed || len(d.Reasons) != 1 || d.Reasons[0] != "delegated" {
		t.Errorf("nested act: %+v, want forbidden by delegated", d)
	}
	// An array scope claim (scp) works the same.
	d = a.Decide(a.Principal("u", authz.Resolve(map[string]any{"scp": []any{"tools:read"}}, nil)), a.Tool("t", "b", nil), nil, "tools/call")
	if !d.Allowed {
		t.Errorf("array scp: %+v", d)
	}
}

func TestArgumentsAndAnnotations(t *testing.T) {
	t.Parallel()
	a := newAuthorizer(t,
		`permit(principal, action, resource) when { context.annotations has readOnlyHint && context.annotations.readOnlyHint };`,
		`permit(principal, action, resource) when { context.arguments has repo && context.arguments.repo == "public" };`)
	p := a.Principal("u", authz.Resolve(nil, nil))
	ro := a.Tool("read", "b", map[string]any{"readOnlyHint": true})
	rw := a.Tool("write", "b", map[string]any{"readOnlyHint": false})
	if !a.Decide(p, ro, nil, "tools/call").Allowed {
		t.Error("read-only tool denied")
	}
	if a.Decide(p, rw, map[string]any{"repo": "secret"}, "tools/call").Allowed {
		t.Error("write to a secret repo allowed")
	}
	if !a.Decide(p, rw, map[string]any{"repo": "public"}, "tools/call").Allowed {
		t.Error("write to the public repo denied")
	}
}

// TestResourceURIsAreExact: URIs that differ only by punctuation are
// distinct entities.
func TestResourceURIsAreExact(t *testing.T) {
	t.Parallel()
	a := newAuthorizer(t, `permit(principal, action, resource == Vmcp::Resource::"file:///srv/a-b.txt");`)
	p := a.Principal("u", authz.Resolve(nil, nil))
	for uri, want := range map[string]bool{
		"file:///srv/a-b.txt": true, "file:///srv/a_b.txt": false, "file:///srv/a.b.txt": false,
		"file:///srv/a-b.txt#": false, "file:///srv/a%2Db.txt": false,
	} {
		if got := a.Decide(p, a.Resource(uri, "fs"), nil, "resources/read").Allowed; got != want {
			t.Errorf("%s: allowed = %v, want %v", uri, got, want)
		}
	}
}

// TestEvaluationErrorDeniesThatItem: a policy that errors counts as not
// applying; the decision says so, and is counted.
func TestEvaluationErrorDeniesThatItem(t *testing.T) {
	t.Parallel()
	a := newAuthorizer(t, `@id("needs-email") permit(principal, action, resource) when { principal.email like "*@corp.example" };`)
	d := a.Decide(a.Principal("u", authz.Resolve(map[string]any{"sub": "u"}, nil)), a.Tool("t", "b", nil), nil, "tools/call")
	if d.Allowed || len(d.Errors) != 1 || d.Errors[0].Policy != "needs-email" {
		t.Errorf("decision = %+v, want a deny carrying the evaluation error", d)
	}
	if a.Stats().EvaluationErrors != 1 {
		t.Errorf("stats = %+v", a.Stats())
	}
	e := a.Explain(d, a.Principal("u", authz.Resolve(map[string]any{"sub": "u"}, nil)), authz.CallTool, `Vmcp::Tool::"t"`, false)
	if e.Decision != "deny" || !strings.Contains(e.Reason, "failed to evaluate") || !strings.Contains(e.String(), "needs-email") {
		t.Errorf("explanation:\n%s", e)
	}
}

func TestListGateAndActionGroups(t *testing.T) {
	t.Parallel()
	a := newAuthorizer(t, `permit(principal, action in Vmcp::Action::"tools", resource);`)
	p := a.Principal("u", authz.Resolve(nil, nil))
	if !a.DecideList(p, authz.ListTools, "tools/list").Allowed || !a.Decide(p, a.Tool("t", "b", nil), nil, "tools/call").Allowed {
		t.Error("the tools action group does not cover list_tools and call_tool")
	}
	if a.DecideList(p, authz.ListPrompts, "prompts/list").Allowed {
		t.Error("list_prompts allowed by a tools-only policy")
	}
}

func TestPolicyValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, policy, want string
	}{
		{"syntax", "permit(principal, action, resource) when { principal.email == };", "inline[0]:1:"},
		{"unknown action", `permit(principal, action == Vmcp::Action::"call_tools", resource);`, `unknown action "call_tools"`},
		{"unknown type", `permit(principal, action, resource is Vmcp::Tol);`, "unknown entity type Vmcp::Tol"},
		{"unknown type in scope", `permit(principal == Vmcp::Usr::"a", action, resource);`, "unknown entity type Vmcp::Usr"},
		{"duplicate id", `@id("x") permit(principal, action, resource); @id("x") permit(principal, action, resource);`, "another policy has this id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := authz.New(&authz.Options{Policies: authz.Policies{Inline: []string{tc.policy}}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := authz.New(&authz.Options{}); err == nil {
		t.Error("no policies accepted")
	}
}

// TestReload: a good edit replaces the policies; a bad one keeps the old.
func TestReload(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "p.cedar")
	write := func(s string) {
		if err := os.WriteFile(f, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`forbid(principal, action, resource);`)
	a, err := authz.New(&authz.Options{Policies: authz.Policies{Files: []string{f}}, ReloadInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go a.Watch(t.Context())
	p := a.Principal("u", authz.Resolve(nil, nil))
	tool := a.Tool("t", "b", nil)
	write(`permit(principal, action, resource); // now open`)
	waitFor(t, func() bool { return a.Decide(p, tool, nil, "tools/call").Allowed })
	write(`permit(principal, action, resource) when {`) // broken
	waitFor(t, func() bool { return a.Stats().ReloadErrors > 0 })
	if !a.Decide(p, tool, nil, "tools/call").Allowed {
		t.Error("a broken edit replaced the working policies")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEntities(t *testing.T) {
	t.Parallel()
	a, err := authz.New(&authz.Options{Policies: authz.Policies{
		Inline:       []string{`permit(principal in Vmcp::Group::"platform", action, resource);`},
		EntitiesJSON: []byte(`[{"uid":{"type":"Vmcp::Group","id":"sre"},"parents":[{"type":"Vmcp::Group","id":"platform"}],"attrs":{}}]`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	p := a.Principal("u", authz.Resolve(map[string]any{"groups": []any{"sre"}}, nil))
	if !a.Decide(p, a.Tool("t", "b", nil), nil, "tools/call").Allowed {
		t.Error("group hierarchy from entities not applied")
	}
}

// TestFailingForbidDenies: a forbid that cannot be evaluated might have
// matched, so it denies even when a permit matches.
func TestFailingForbidDenies(t *testing.T) {
	t.Parallel()
	a := newAuthorizer(t, `permit(principal, action, resource);`,
		`@id("needs-dept") forbid(principal, action, resource) when { principal.department == "contractors" };`)
	d := a.Decide(a.Principal("u", authz.Resolve(map[string]any{"sub": "u"}, nil)), a.Tool("t", "b", nil), nil, "tools/call")
	if d.Allowed || len(d.Errors) != 1 || len(d.Reasons) != 1 || d.Reasons[0] != "needs-dept" {
		t.Errorf("decision = %+v, want a deny because the forbid failed", d)
	}
	e := a.Explain(d, a.Principal("u", authz.Resolve(nil, nil)), authz.CallTool, "t", false)
	if !strings.Contains(e.Reason, "needs-dept failed to evaluate") {
		t.Errorf("reason = %q", e.Reason)
	}
}

// TestUpstreamDoesNotReplaceTokenClaims: what the presented token was
// granted (scope, audience, client) is not overridden by upstream claims.
func TestUpstreamDoesNotReplaceTokenClaims(t *testing.T) {
	t.Parallel()
	c := authz.Resolve(map[string]any{"sub": "u_1", "scope": "mcp", "client_id": "claude"},
		&authz.Upstream{AccessTokenClaims: map[string]any{"scope": "admin everything", "client_id": "vmcp-at-idp", "sub": "alice"}})
	if c.Values["scope"] != "mcp" || c.Values["client_id"] != "claude" || c.Sources["scope"] != authz.SourceToken {
		t.Errorf("token-bound claims replaced: %v", c.Values)
	}
	if s, _ := c.Values["scopes"].([]any); len(s) != 1 || s[0] != "mcp" {
		t.Errorf("scopes = %v", c.Values["scopes"])
	}
	if c.Values["sub"] != "alice" {
		t.Errorf("sub = %v, want the upstream subject", c.Values["sub"])
	}
	dotted := authz.Resolve(map[string]any{"https://example.com/groups": []any{"g"}}, nil)
	if v, ok := dotted.Lookup("https://example.com/groups"); !ok || len(v.([]any)) != 1 {
		t.Errorf("a claim name with dots is not found: %v", v)
	}
}
