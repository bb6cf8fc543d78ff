package authz

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go"
)

// Explanation says why a decision came out as it did, in terms an operator
// can act on: the policies that decided, the ones that failed, and where
// each of the principal's claims came from.
type Explanation struct {
	Decision  string            `json:"decision"` // "allow" or "deny"
	Principal string            `json:"principal"`
	Action    string            `json:"action"`
	Resource  string            `json:"resource"`
	Reason    string            `json:"reason"`
	Policies  []PolicyText      `json:"policies,omitempty"`
	Errors    []EvalError       `json:"errors,omitempty"`
	Claims    []ClaimProvenance `json:"claims"`
}

// PolicyText is a deciding policy and its source text.
type PolicyText struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// ClaimProvenance is one claim and the source it was taken from. Value is
// filled only when the caller asks for values (never in logs).
type ClaimProvenance struct {
	Name   string `json:"name"`
	Source Source `json:"source"`
	Value  any    `json:"value,omitempty"`
}

// Explain explains d, a decision for p on action and resource (a display
// name such as Vmcp::Tool::"search"). withValues includes claim values.
func (a *Authorizer) Explain(d Decision, p *Principal, action Action, resource string, withValues bool) Explanation {
	ps := a.ps.Load()
	e := Explanation{Decision: "deny", Principal: p.entity.UID.String(), Action: action.UID().String(), Resource: resource, Errors: d.Errors}
	switch {
	case d.Allowed:
		e.Decision = "allow"
		e.Reason = "permitted by " + strings.Join(d.Reasons, ", ") + " and no forbid policy matched"
	case len(d.Reasons) > 0 && slices.ContainsFunc(d.Errors, func(er EvalError) bool { return er.Policy == d.Reasons[0] }):
		e.Reason = "forbidden: forbid policy " + strings.Join(d.Reasons, ", ") + " failed to evaluate, which denies (it might have matched)"
	case len(d.Reasons) > 0:
		e.Reason = "forbidden by " + strings.Join(d.Reasons, ", ")
	case len(d.Errors) > 0:
		e.Reason = fmt.Sprintf("no policy permitted it; %d policies failed to evaluate and count as not applying", len(d.Errors))
	default:
		e.Reason = "no policy permitted it (deny by default)"
	}
	for _, id := range d.Reasons {
		e.Policies = append(e.Policies, PolicyText{ID: id, Text: ps.textOf(id)})
	}
	for _, name := range p.Claims.Names() {
		c := ClaimProvenance{Name: name, Source: p.Claims.Sources[name]}
		if withValues {
			c.Value = p.Claims.Values[name]
		}
		e.Claims = append(e.Claims, c)
	}
	return e
}

func (ps *policySet) textOf(id string) string { return ps.text[cedar.PolicyID(id)] }

// String renders the explanation for a terminal.
func (e Explanation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "decision: %s\n", strings.ToUpper(e.Decision))
	fmt.Fprintf(&b, "request:  %s %s %s\n", e.Principal, e.Action, e.Resource)
	fmt.Fprintf(&b, "reason:   %s\n", e.Reason)
	for _, p := range e.Policies {
		fmt.Fprintf(&b, "policy %s:\n  %s\n", p.ID, strings.ReplaceAll(strings.TrimSpace(p.Text), "\n", "\n  "))
	}
	for _, er := range e.Errors {
		fmt.Fprintf(&b, "evaluation error in %s (%s): %s\n", er.Policy, er.Position, er.Message)
	}
	b.WriteString("claims (source):\n")
	for _, c := range e.Claims {
		if c.Value != nil {
			fmt.Fprintf(&b, "  %-20s %-22s %v\n", c.Name, c.Source, c.Value)
		} else {
			fmt.Fprintf(&b, "  %-20s %s\n", c.Name, c.Source)
		}
	}
	return b.String()
}
