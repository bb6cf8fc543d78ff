package authz

import (
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

// applicable returns the policies whose principal and action scopes match
// (ancestors are the principal's transitive parents).
func (ps *policySet) applicable(principal types.EntityUID, ancestors []types.EntityUID, action Action) cedar.PolicyMap {
	act := action.UID()
	actAncestors := []types.EntityUID{types.NewEntityUID(TypeAction, types.String(actionGroups[action]))}
	out := cedar.PolicyMap{}
	for id, p := range ps.set.All() {
		a := (*xast.Policy)(p.AST())
		if scopeMatches(a.Principal, principal, ancestors) && scopeMatches(a.Action, act, actAncestors) {
			out[id] = p
		}
	}
	return out
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
		pm = ps.applicable(p.entity.UID, ps.ancestors(p.entity), action)
		s.m[action] = pm
	}
	return pm
}
