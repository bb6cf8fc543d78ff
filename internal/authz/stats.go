package authz

import (
	"strings"
	"sync/atomic"
)

// Decisions are counted by action, outcome and the sources of the
// principal's claims, each counter an atomic cell indexed by the three, so
// that counting costs one atomic add per decision.

// actions are the actions in counter order.
var actions = [...]Action{CallTool, ListTools, ReadResource, ListResources, GetPrompt, ListPrompts}

// sources are the claim sources in counter order (bit i of a source set).
var sources = [...]Source{SourceToken, SourceAccessToken, SourceUserinfo, SourceIDToken}

const numSourceSets = 1 << len(sources)

// decisionCounts holds the counters.
type decisionCounts [len(actions)][2][numSourceSets]atomic.Int64

func actionIndex(a Action) int {
	switch a {
	case CallTool:
		return 0
	case ListTools:
		return 1
	case ReadResource:
		return 2
	case ListResources:
		return 3
	case GetPrompt:
		return 4
	}
	return 5
}

// sourceSet is the set of sources that gave c its claims, as bits.
func sourceSet(c Claims) uint8 {
	var set uint8
	for _, s := range c.Sources {
		for i, src := range sources {
			if s == src {
				set |= 1 << i
				break
			}
		}
	}
	return set
}

// sourceNames lists a set's sources in counter order.
func sourceNames(set uint8) []string {
	var out []string
	for i, s := range sources {
		if set&(1<<i) != 0 {
			out = append(out, string(s))
		}
	}
	return out
}

// DecisionCount is the number of decisions of one action, outcome and set
// of claim sources.
type DecisionCount struct {
	Action  Action
	Allowed bool
	// ClaimSources are the sources the principal's claims came from,
	// joined by "+" in the order token, upstream_access_token, userinfo,
	// id_token; "none" for a principal without claims.
	ClaimSources string
	N            int64
}

// DecisionCounts returns the decisions made since start, by action,
// outcome and claim sources (only those made at least once).
func (a *Authorizer) DecisionCounts() []DecisionCount {
	var out []DecisionCount
	for ai, act := range actions {
		for allowed := range 2 {
			for set := range numSourceSets {
				if n := a.decisions[ai][allowed][set].Load(); n > 0 {
					names := "none"
					if set != 0 {
						names = strings.Join(sourceNames(uint8(set)), "+")
					}
					out = append(out, DecisionCount{Action: act, Allowed: allowed == 1, ClaimSources: names, N: n})
				}
			}
		}
	}
	return out
}

// Sources returns the sources of p's claims, in the order token,
// upstream_access_token, userinfo, id_token.
func (p *Principal) Sources() []string { return p.sourceList }

func (a *Authorizer) count(action Action, allowed bool, set uint8) {
	i := 0
	if allowed {
		i = 1
	}
	a.decisions[actionIndex(action)][i][set].Add(1)
}
