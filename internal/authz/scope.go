package authz

import (
	"encoding/json"
	"slices"
	"sync"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// Most policies are about some principals and some actions: their scope
// says so. A principal's decisions only ever need the policies whose
// principal and action scopes can match it, so that subset is computed
// once per principal and action and Cedar evaluates only it. Scope
// constraints on entity UIDs cannot fail to evaluate, so leaving out a
// policy whose scope does not match changes neither the decision nor its
// diagnostics.
//
// Many conditions, too, are about the principal alone ("principal.email
// like ...", "principal.sub == ..."): a policy whose conditions read
// neither the resource nor the context (see fixedOutcome) comes out the
// same in every decision of one principal and action. Such a policy is
// evaluated once, when the subset is computed, and left out if it does not
// apply (false, without an error): in a decision it would add no reason
// and no error either. One that applies or fails stays in, so that its
// reason or error is reported with every decision as before.

// applicable returns the policies whose principal and action scopes match
// (ancestors are the principal's transitive parents), without those whose
// outcome is fixed for the principal and action and is "does not apply".
func (ps *policySet) applicable(principal *types.Entity, ancestors []types.EntityUID, action Action) cedar.PolicyMap {
	act := action.UID()
	actAncestors := []types.EntityUID{types.NewEntityUID(TypeAction, types.String(actionGroups[action]))}
	out := cedar.PolicyMap{}
	for id, p := range ps.set.All() {
		a := (*xast.Policy)(p.AST())
		if !scopeMatches(a.Principal, principal.UID, ancestors) || !scopeMatches(a.Action, act, actAncestors) {
			continue
		}
		if ps.fixed[id] && neverApplies(id, p, principal, act, ps.entities) {
			continue
		}
		out[id] = p
	}
	return out
}

// neverApplies evaluates a policy whose outcome is fixed for a principal
// and action (see fixedOutcome) and reports whether it came out false
// without an error. The resource and context it is evaluated with are
// placeholders, which such a policy never reads.
func neverApplies(id cedar.PolicyID, p *cedar.Policy, principal *types.Entity, action types.EntityUID, static types.EntityMap) bool {
	req := cedar.Request{Principal: principal.UID, Action: action, Resource: types.NewEntityUID(TypeServer, ""), Context: emptyRecord}
	_, diag := cedar.Authorize(cedar.PolicyMap{id: p}, &entities{principal: principal, static: static}, req)
	return len(diag.Reasons) == 0 && len(diag.Errors) == 0
}

// fixedOutcome reports whether a policy's outcome depends on the principal
// and the action only: its resource scope is "any", and its conditions
// never read the resource or the context variables and name no entity of
// the types decisions are made on (a tool, prompt or resource named
// literally is the resource of some decisions, and is looked up as such).
// When unsure it says no, which only leaves the policy in.
func fixedOutcome(p *cedar.Policy) bool {
	if _, ok := (*xast.Policy)(p.AST()).Resource.(xast.ScopeTypeAll); !ok {
		return false
	}
	b, err := p.MarshalJSON()
	if err != nil {
		return false
	}
	var tree map[string]any
	if json.Unmarshal(b, &tree) != nil {
		return false
	}
	conds, ok := tree["conditions"]
	if !ok {
		return false // no conditions: it applies whenever its scope matches
	}
	fixed := true
	walkVars(conds, func(name string) {
		if name != "principal" && name != "action" {
			fixed = false
		}
	})
	walk(conds, func(typ, _ string, _ bool) {
		switch types.EntityType(typ) {
		case TypeTool, TypePrompt, TypeResource:
			fixed = false
		}
	})
	return fixed
}

// walkVars calls f with the name of every variable ({"Var": name}) in a
// policy's JSON form.
func walkVars(n any, f func(name string)) {
	switch n := n.(type) {
	case map[string]any:
		if v, ok := n["Var"]; ok {
			name, _ := v.(string)
			f(name)
		}
		for _, v := range n {
			walkVars(v, f)
		}
	case []any:
		for _, v := range n {
			walkVars(v, f)
		}
	}
}

func scopeMatches(s xast.IsScopeNode, uid types.EntityUID, ancestors []types.EntityUID) bool {
	in := func(e types.EntityUID) bool { return e == uid || slices.Contains(ancestors, e) }
	switch s := s.(type) {
	case xast.ScopeTypeAll:
		return true
	case xast.ScopeTypeEq:
		return s.Entity == uid
	case xast.ScopeTypeIn:
		return in(s.Entity)
	case xast.ScopeTypeInSet:
		return slices.ContainsFunc(s.Entities, in)
	case xast.ScopeTypeIs:
		return s.Type == uid.Type
	case xast.ScopeTypeIsIn:
		return s.Type == uid.Type && in(s.Entity)
	}
	return true // unknown: keep it, Cedar decides
}

// ancestors returns the transitive parents of e through the static
// entities (a group hierarchy, say).
func (ps *policySet) ancestors(e types.Entity) []types.EntityUID {
	var out []types.EntityUID
	queue := slices.Collect(e.Parents.All())
	for len(queue) > 0 {
		uid := queue[0]
		queue = queue[1:]
		if slices.Contains(out, uid) {
			continue
		}
		out = append(out, uid)
		if pe, ok := ps.entities[uid]; ok {
			queue = append(queue, slices.Collect(pe.Parents.All())...)
		}
	}
	return out
}

// subsets caches a principal's applicable policies per action, for one
// policy set (a reload starts over).
type subsets struct {
	mu sync.Mutex // guards the fields below
	ps *policySet
	m  map[Action]cedar.PolicyMap
}

func (p *Principal) policies(ps *policySet, action Action) cedar.PolicyMap {
	s := &p.subsets
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ps != ps {
		s.ps, s.m = ps, map[Action]cedar.PolicyMap{}
	}
	pm, ok := s.m[action]
	if !ok {
		pm = ps.applicable(&p.entity, ps.ancestors(p.entity), action)
		s.m[action] = pm
	}
	return pm
}
