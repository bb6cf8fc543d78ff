package authz

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// Policies says where the policies (and optional entities) come from.
type Policies struct {
	// Inline are policy documents given in the configuration; each may
	// hold several policies. They are named inline[i] in errors.
	Inline []string
	// Files are policy files, re-read when they change.
	Files []string
	// EntitiesJSON is an entities document (Cedar JSON format), or
	// EntitiesFile a file holding one.
	EntitiesJSON []byte
	EntitiesFile string
}

// policySet is an immutable, validated set of policies with the static
// entities they are evaluated against.
type policySet struct {
	set      *cedar.PolicySet
	text     map[cedar.PolicyID]string // each policy's source, for explanations
	entities types.EntityMap
	fixed    map[cedar.PolicyID]bool // policies whose outcome depends on principal and action only (scope.go)
}

// empty reports whether the set has no policy.
func (ps *policySet) empty() bool {
	for range ps.set.All() {
		return false
	}
	return true
}

// PolicyError locates a problem in a policy.
type PolicyError struct {
	Source string // inline[i] or a file name
	Line   int
	Column int
	Policy string // policy id, if known
	Msg    string
}

func (e *PolicyError) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	if e.Policy != "" {
		fmt.Fprintf(&b, ": policy %s", e.Policy)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// load reads and validates every policy and the entities; server is the
// virtual server's name (the parent of every tool, prompt and resource).
func load(p Policies, server string) (*policySet, error) {
	ps := &policySet{set: cedar.NewPolicySet(), text: map[cedar.PolicyID]string{}, entities: actionEntities()}
	srv := types.NewEntityUID(TypeServer, types.String(server))
	ps.entities[srv] = types.Entity{UID: srv, Attributes: types.NewRecord(types.RecordMap{"name": types.String(server)})}
	var errs []error
	for i, doc := range p.Inline {
		errs = append(errs, ps.add(fmt.Sprintf("inline[%d]", i), []byte(doc))...)
	}
	for _, f := range p.Files {
		b, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, &PolicyError{Source: f, Msg: err.Error()})
			continue
		}
		errs = append(errs, ps.add(f, b)...)
	}
	userTypes, err := ps.addEntities(p)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		errs = ps.check(userTypes)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	ps.fixed = map[cedar.PolicyID]bool{}
	for id, pol := range ps.set.All() {
		ps.fixed[id] = fixedOutcome(pol)
	}
	return ps, nil
}

func (ps *policySet) add(source string, doc []byte) []error {
	list, err := cedar.NewPolicyListFromBytes(source, doc)
	if err != nil {
		return []error{parseError(source, err)}
	}
	var errs []error
	for _, pol := range list {
		pos := pol.Position()
		id := cedar.PolicyID(fmt.Sprintf("%s:%d:%d", source, pos.Line, pos.Column))
		if v, ok := pol.Annotations()["id"]; ok {
			id = cedar.PolicyID(v)
		}
		if !ps.set.Add(id, pol) {
			errs = append(errs, &PolicyError{Source: source, Line: pos.Line, Column: pos.Column, Policy: string(id), Msg: "another policy has this id"})
			continue
		}
		ps.text[id] = string(pol.MarshalCedar())
	}
	return errs
}

// parseError turns a Cedar parse error ("... at <file>:line:col ...: msg")
// into a located error.
func parseError(source string, err error) error {
	msg := err.Error()
	pe := &PolicyError{Source: source, Msg: msg}
	if m := parsePosRE.FindStringSubmatchIndex(msg); m != nil {
		pe.Line, _ = strconv.Atoi(msg[m[2]:m[3]])
		pe.Column, _ = strconv.Atoi(msg[m[4]:m[5]])
		pe.Msg = strings.TrimSpace(strings.TrimPrefix(msg[:m[0]]+msg[m[1]:], "parser error: "))
	}
	return pe
}

var parsePosRE = regexp.MustCompile(` at \S*?:(\d+):(\d+)`)

// addEntities adds the configured entities and returns their types.
func (ps *policySet) addEntities(p Policies) ([]types.EntityType, error) {
	doc, source := p.EntitiesJSON, "entitiesJson"
	if p.EntitiesFile != "" {
		b, err := os.ReadFile(p.EntitiesFile)
		if err != nil {
			return nil, &PolicyError{Source: p.EntitiesFile, Msg: err.Error()}
		}
		doc, source = b, p.EntitiesFile
	}
	if len(doc) == 0 {
		return nil, nil
	}
	var em types.EntityMap
	if err := json.Unmarshal(doc, &em); err != nil {
		return nil, &PolicyError{Source: source, Msg: "not a Cedar entities document: " + err.Error()}
	}
	var typs []types.EntityType
	for uid, e := range em {
		ps.entities[uid] = e
		if !slices.Contains(typs, uid.Type) {
			typs = append(typs, uid.Type)
		}
	}
	return typs, nil
}

var knownTypes = []types.EntityType{TypeUser, TypeGroup, TypeRole, TypeTool, TypePrompt, TypeResource, TypeServer, TypeAction}

// check rejects policies that name entity types or actions that do not
// exist: a typo there would otherwise never match, silently.
func (ps *policySet) check(userTypes []types.EntityType) []error {
	var errs []error
	for id, pol := range ps.set.All() {
		b, err := pol.MarshalJSON()
		if err != nil {
			continue
		}
		var tree any
		if json.Unmarshal(b, &tree) != nil {
			continue
		}
		pos := pol.Position()
		report := func(msg string) {
			errs = append(errs, &PolicyError{Source: pos.Filename, Line: pos.Line, Column: pos.Column, Policy: string(id), Msg: msg})
		}
		walk(tree, func(typ, eid string, isEntity bool) {
			t := types.EntityType(typ)
			switch {
			case !slices.Contains(knownTypes, t) && !slices.Contains(userTypes, t):
				report(fmt.Sprintf("unknown entity type %s (known: %s)", typ, typeNames(userTypes)))
			case isEntity && t == TypeAction:
				if _, ok := ps.entities[types.NewEntityUID(TypeAction, types.String(eid))]; !ok {
					report(fmt.Sprintf("unknown action %q", eid))
				}
			}
		})
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}

func typeNames(user []types.EntityType) string {
	var s []string
	for _, t := range append(slices.Clone(knownTypes), user...) {
		s = append(s, string(t))
	}
	return strings.Join(s, ", ")
}

// walk calls f for every entity reference ({"type":…, "id":…}) and every
// entity type test ("entity_type": …) in a policy's JSON form.
func walk(n any, f func(typ, id string, isEntity bool)) {
	switch n := n.(type) {
	case map[string]any:
		if typ, ok := n["type"].(string); ok {
			if id, ok := n["id"].(string); ok {
				f(typ, id, true)
			}
		}
		if typ, ok := n["entity_type"].(string); ok {
			f(typ, "", false)
		}
		for _, v := range n {
			walk(v, f)
		}
	case []any:
		for _, v := range n {
			walk(v, f)
		}
	}
}
