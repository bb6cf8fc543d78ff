package authz

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// TestSubsetsDecideAsWholeSet checks that deciding with a principal's
// policy subset (scopes matched, fixed-outcome policies that never apply
// left out) gives exactly what Cedar gives with every policy: the same
// decision, reasons and errors.
func TestSubsetsDecideAsWholeSet(t *testing.T) {
	policies := []string{
		`@id("team-a") permit(principal in Vmcp::Group::"a", action == Vmcp::Action::"call_tool", resource) when { resource.backend == "b1" };`,
		`@id("dept") permit(principal, action in Vmcp::Action::"tools", resource) when { principal has email && principal.email like "*@dept.example" };`,
		`@id("blocked") forbid(principal, action, resource) when { principal.sub == "blocked" };`,
		`@id("no-email") forbid(principal, action, resource) unless { principal has email };`,
		`@id("errs") permit(principal, action == Vmcp::Action::"get_prompt", resource) when { principal.level > 3 };`,
		`@id("forbid-errs") forbid(principal, action == Vmcp::Action::"read_resource", resource) when { principal.level > 9 };`,
		`@id("force") forbid(principal, action == Vmcp::Action::"call_tool", resource) when { context.arguments has force && context.arguments.force == true };`,
		`@id("literal-tool") permit(principal, action, resource) when { Vmcp::Tool::"b1_x".backend == "b1" && principal.sub == "u2" };`,
		`@id("action-cond") permit(principal, action, resource) when { action == Vmcp::Action::"read_resource" && principal.sub == "u1" };`,
		`@id("typed") permit(principal, action, resource is Vmcp::Prompt) when { principal.sub == "u3" };`,
		`@id("group-cond") permit(principal, action, resource) when { principal in Vmcp::Group::"ops" };`,
		`@id("list") permit(principal, action == Vmcp::Action::"list_tools", resource);`,
	}
	a, err := New(&Options{Server: "gw", Policies: Policies{Inline: policies,
		EntitiesJSON: []byte(`[{"uid":{"type":"Vmcp::Group","id":"sre"},"parents":[{"type":"Vmcp::Group","id":"ops"}],"attrs":{}}]`)}})
	if err != nil {
		t.Fatal(err)
	}
	ps := a.ps.Load()
	if n := countFixed(ps); n < 5 {
		t.Fatalf("%d policies have a fixed outcome, want at least 5 (the test would prove little)", n)
	}
	principals := []*Principal{
		a.Principal("u1", Resolve(map[string]any{"sub": "u1", "email": "x@dept.example", "groups": []any{"a"}}, nil)),
		a.Principal("u2", Resolve(map[string]any{"sub": "u2", "email": "y@other.example", "level": 5}, nil)),
		a.Principal("blocked", Resolve(map[string]any{"sub": "blocked", "email": "z@dept.example", "groups": []any{"sre"}}, nil)),
		a.Principal("u3", Resolve(map[string]any{"sub": "u3", "groups": []any{"sre", "a"}}, nil)),
	}
	targets := []*Target{
		a.Tool("b1_x", "b1", nil), a.Tool("b2_y", "b2", map[string]any{"readOnlyHint": true}),
		a.Prompt("b1_p", "b1"), a.Resource("file:///r", "b2"),
	}
	pruned := 0
	for _, p := range principals {
		for _, tg := range targets {
			for _, args := range []map[string]any{nil, {"force": true}, {"q": "x"}} {
				got := a.Decide(p, tg, args, "op")
				want := wholeSet(ps, p, tg.action, &tg.entity, p.claims, toRecord(args), tg.annotations)
				compareDecisions(t, fmt.Sprintf("%s %s %v", p.entity.UID, tg.entity.UID, args), got, want)
			}
			pruned += len(maps.Collect(ps.set.All())) - len(p.policies(ps, tg.action))
		}
		for _, act := range []Action{ListTools, ListPrompts, ListResources} {
			got := a.DecideList(p, act, "op")
			srv, _ := ps.entities.Get(a.server)
			want := wholeSet(ps, p, act, &srv, p.claims, types.NewRecord(nil), types.NewRecord(nil))
			compareDecisions(t, fmt.Sprintf("%s %s", p.entity.UID, act), got, want)
		}
	}
	if pruned == 0 {
		t.Error("no subset left a policy out")
	}
	// u2 has no dept address, is not blocked and has an email: those
	// policies never apply to it and are left out; "errs" fails for u1
	// (no level) and stays, so that its error is reported.
	sub := principals[1].policies(ps, CallTool)
	for _, id := range []cedar.PolicyID{"dept", "blocked", "no-email"} {
		if _, ok := sub[id]; ok {
			t.Errorf("policy %s is in u2's call_tool subset", id)
		}
	}
	if _, ok := principals[0].policies(ps, GetPrompt)["errs"]; !ok {
		t.Error("policy errs, which fails for u1, is not in u1's get_prompt subset")
	}
}

func countFixed(ps *policySet) int {
	n := 0
	for _, f := range ps.fixed {
		if f {
			n++
		}
	}
	return n
}

// wholeSet decides with every policy, as Cedar does without subsets.
func wholeSet(ps *policySet, p *Principal, action Action, target *types.Entity, claims, args, annotations types.Value) Decision {
	ctx := types.NewRecord(types.RecordMap{"claims": claims, "arguments": args, "annotations": annotations, "operation": types.String("op")})
	req := cedar.Request{Principal: p.entity.UID, Action: action.UID(), Resource: target.UID, Context: ctx}
	dec, diag := cedar.Authorize(ps.set, &entities{principal: &p.entity, target: target, static: ps.entities}, req)
	d := Decision{Allowed: dec == cedar.Allow}
	for _, r := range diag.Reasons {
		d.Reasons = append(d.Reasons, string(r.PolicyID))
	}
	var failedForbids []string
	for _, e := range diag.Errors {
		d.Errors = append(d.Errors, EvalError{Policy: string(e.PolicyID), Message: e.Message})
		if ps.set.Get(e.PolicyID).Effect() == cedar.Forbid {
			failedForbids = append(failedForbids, string(e.PolicyID))
		}
	}
	if len(failedForbids) > 0 { // a failing forbid denies, as decide does
		d.Allowed, d.Reasons = false, failedForbids
	}
	return d
}

func compareDecisions(t *testing.T, what string, got, want Decision) {
	t.Helper()
	slices.Sort(got.Reasons)
	slices.Sort(want.Reasons)
	var gotErrs, wantErrs []string
	for _, e := range got.Errors {
		gotErrs = append(gotErrs, e.Policy+": "+e.Message)
	}
	for _, e := range want.Errors {
		wantErrs = append(wantErrs, e.Policy+": "+e.Message)
	}
	slices.Sort(gotErrs)
	slices.Sort(wantErrs)
	if got.Allowed != want.Allowed || !slices.Equal(got.Reasons, want.Reasons) || !slices.Equal(gotErrs, wantErrs) {
		t.Errorf("%s: got allowed=%v reasons=%v errors=%v; the whole set gives allowed=%v reasons=%v errors=%v",
			what, got.Allowed, got.Reasons, gotErrs, want.Allowed, want.Reasons, wantErrs)
	}
}

// TestPrincipalSame checks that principals built from equal claims are the
// same and that any difference in subject, groups or claims tells them
// apart.
func TestPrincipalSame(t *testing.T) {
	a, err := New(&Options{Policies: Policies{Inline: []string{`permit(principal, action, resource);`}}})
	if err != nil {
		t.Fatal(err)
	}
	claims := func(group, email string) Claims {
		return Resolve(map[string]any{"sub": "u", "email": email, "groups": []any{group}}, nil)
	}
	p := a.Principal("u", claims("a", "x@y"))
	if !p.Same(a.Principal("u", claims("a", "x@y"))) {
		t.Error("equal claims: not the same principal")
	}
	for name, q := range map[string]*Principal{
		"subject": a.Principal("v", claims("a", "x@y")),
		"group":   a.Principal("u", claims("b", "x@y")),
		"claim":   a.Principal("u", claims("a", "z@y")),
		"nil":     nil,
	} {
		if p.Same(q) {
			t.Errorf("another %s: the same principal", name)
		}
	}
}
