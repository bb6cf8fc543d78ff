package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// Options configure an [Authorizer].
type Options struct {
	// Server is the virtual server's name. Default: "vmcp".
	Server string
	// Policies are the policies and entities. At least one policy.
	Policies Policies
	// GroupClaims and RoleClaims name the claims (dotted paths) whose
	// values become the principal's Vmcp::Group and Vmcp::Role parents.
	// Defaults: ["groups"] and ["roles"].
	GroupClaims, RoleClaims []string
	// ReloadInterval is how often policy files are checked for changes.
	// Default: 2s.
	ReloadInterval time.Duration
	// Logger receives evaluation errors (rate-limited, claim names only)
	// and reloads. Default: discard.
	Logger *slog.Logger
}

// Authorizer makes policy decisions. It is safe for concurrent use; the
// policy set is an immutable snapshot swapped whole on reload.
type Authorizer struct {
	opts   Options
	logger *slog.Logger
	ps     atomic.Pointer[policySet]
	server types.EntityUID

	// counters, read by Stats and DecisionCounts
	allowed, denied, evalErrors, reloadErrors atomic.Int64
	decisions                                 decisionCounts

	logMu   sync.Mutex // guards lastLog
	lastLog map[string]time.Time

	files  []string // policy and entity files, watched by Watch
	loaded string   // fingerprint of the files as last loaded
}

var errNoPolicies = errors.New("no policies: with none, every request would be denied")

// Stats are the authorizer's counters since start.
type Stats struct {
	Allowed, Denied, EvaluationErrors, ReloadErrors int64
}

// New loads and validates the policies.
func New(opts *Options) (*Authorizer, error) {
	o := *opts
	if o.Server == "" {
		o.Server = "vmcp"
	}
	if len(o.GroupClaims) == 0 {
		o.GroupClaims = []string{"groups"}
	}
	if len(o.RoleClaims) == 0 {
		o.RoleClaims = []string{"roles"}
	}
	if o.ReloadInterval <= 0 {
		o.ReloadInterval = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	files := slices.Clone(o.Policies.Files)
	if o.Policies.EntitiesFile != "" {
		files = append(files, o.Policies.EntitiesFile)
	}
	loaded := fingerprint(files) // before reading, so a change while loading is seen
	ps, err := load(o.Policies, o.Server)
	if err != nil {
		return nil, err
	}
	if ps.empty() {
		return nil, fmt.Errorf("authz: %w", errNoPolicies)
	}
	a := &Authorizer{opts: o, logger: o.Logger, server: types.NewEntityUID(TypeServer, types.String(o.Server)),
		lastLog: map[string]time.Time{}, files: files, loaded: loaded}
	a.ps.Store(ps)
	return a, nil
}

// Version identifies the policy set in use; it changes on every reload.
// Results derived from decisions can be kept while it stays the same.
func (a *Authorizer) Version() any { return a.ps.Load() }

// Stats returns the counters.
func (a *Authorizer) Stats() Stats {
	return Stats{Allowed: a.allowed.Load(), Denied: a.denied.Load(), EvaluationErrors: a.evalErrors.Load(), ReloadErrors: a.reloadErrors.Load()}
}

// Watch reloads the policy and entity files when they change, until ctx
// is done. A change that does not load keeps the previous policies (and
// is logged).
func (a *Authorizer) Watch(ctx context.Context) {
	files, last := a.files, a.loaded
	if len(files) == 0 {
		return
	}
	t := time.NewTicker(a.opts.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fp := fingerprint(files)
		if fp == last {
			continue
		}
		last = fp
		ps, err := load(a.opts.Policies, a.opts.Server)
		if err == nil && ps.empty() {
			// An empty set (a file caught half-written, say) would deny
			// everything.
			err = errNoPolicies
		}
		if err != nil {
			a.reloadErrors.Add(1)
			a.logger.Error("policy files changed but do not load; keeping the previous policies", "error", err)
			continue
		}
		a.ps.Store(ps)
		a.logger.Info("policies reloaded", "files", files)
	}
}

// fingerprint summarizes the files' sizes and modification times.
func fingerprint(files []string) string {
	var s string
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			s += fmt.Sprintf("%s:%d:%d;", f, fi.Size(), fi.ModTime().UnixNano())
		} else {
			s += f + ":missing;"
		}
	}
	return s
}

// Principal is a caller prepared for decisions: build it once per request.
type Principal struct {
	entity  types.Entity
	claims  types.Value // a types.Record, boxed once rather than per decision
	subsets subsets
	// Claims are the claims and their sources, for explanations.
	Claims Claims
	// sourceSet and sourceList are the sources of Claims (stats.go).
	sourceSet  uint8
	sourceList []string
}

// Same reports whether p and q are the same Cedar principal (subject,
// groups, roles and claim values), so that every decision made for one
// holds for the other under the same policies.
func (p *Principal) Same(q *Principal) bool {
	return q != nil && p.entity.Equal(q.entity)
}

// Principal prepares the caller subject with claims.
func (a *Authorizer) Principal(subject string, c Claims) *Principal {
	uid := types.NewEntityUID(TypeUser, types.String(subject))
	var parents []types.EntityUID
	for _, path := range a.opts.GroupClaims {
		for _, g := range c.values(path) {
			parents = append(parents, types.NewEntityUID(TypeGroup, types.String(g)))
		}
	}
	for _, path := range a.opts.RoleClaims {
		for _, r := range c.values(path) {
			parents = append(parents, types.NewEntityUID(TypeRole, types.String(r)))
		}
	}
	rec := toRecord(c.Values)
	set := sourceSet(c)
	return &Principal{entity: types.Entity{UID: uid, Parents: types.NewEntityUIDSet(parents...), Attributes: rec}, claims: rec, Claims: c,
		sourceSet: set, sourceList: sourceNames(set)}
}

// Target is a tool, prompt or resource prepared for decisions: build it
// once per catalog item.
type Target struct {
	action      Action
	entity      types.Entity
	annotations types.Value // a types.Record, boxed once rather than per decision
}

// Tool prepares a tool by its advertised name; annotations is the tool's
// annotations as JSON-shaped values (nil for none).
func (a *Authorizer) Tool(name, backend string, annotations map[string]any) *Target {
	return a.target(CallTool, TypeTool, name, types.RecordMap{"name": types.String(name), "backend": types.String(backend)}, annotations)
}

// Prompt prepares a prompt by its advertised name.
func (a *Authorizer) Prompt(name, backend string) *Target {
	return a.target(GetPrompt, TypePrompt, name, types.RecordMap{"name": types.String(name), "backend": types.String(backend)}, nil)
}

// Resource prepares a resource by its exact URI.
func (a *Authorizer) Resource(uri, backend string) *Target {
	return a.target(ReadResource, TypeResource, uri, types.RecordMap{"uri": types.String(uri), "backend": types.String(backend)}, nil)
}

func (a *Authorizer) target(act Action, typ types.EntityType, id string, attrs types.RecordMap, ann map[string]any) *Target {
	uid := types.NewEntityUID(typ, types.String(id))
	return &Target{action: act, annotations: toRecord(ann),
		entity: types.Entity{UID: uid, Parents: types.NewEntityUIDSet(a.server), Attributes: types.NewRecord(attrs)}}
}

// Decision is the outcome of one authorization.
type Decision struct {
	Allowed bool
	// Reasons are the ids of the policies that decided: the forbids that
	// matched (or failed to evaluate) on a deny, the permits that matched on
	// an allow. A deny with no reason means no policy permitted the request.
	Reasons []string
	// Errors are the policies whose evaluation failed. A permit that fails
	// grants nothing; a forbid that fails denies the request (it might have
	// matched). So an error can only ever deny.
	Errors []EvalError
}

// EvalError is a policy that failed to evaluate.
type EvalError struct {
	Policy   string
	Position string
	Message  string
}

// entities is what one decision sees: the principal, the target, and the
// static entities.
type entities struct {
	principal, target *types.Entity
	static            types.EntityMap
}

func (e *entities) Get(uid types.EntityUID) (types.Entity, bool) {
	switch {
	case uid == e.principal.UID:
		return *e.principal, true
	case e.target != nil && uid == e.target.UID:
		return *e.target, true
	}
	return e.static.Get(uid)
}

// Decide decides whether p may perform t's action (call, read, get) with
// the given arguments (nil for none). op is the MCP method, for the
// context.
func (a *Authorizer) Decide(p *Principal, t *Target, args map[string]any, op string) Decision {
	var argsValue types.Value = emptyValue
	if len(args) > 0 {
		argsValue = toRecord(args)
	}
	return a.decide(a.ps.Load(), p, t.action, &t.entity, argsValue, t.annotations, op)
}

// DecideList decides whether p may list (action is one of the list
// actions; the resource is the virtual server).
func (a *Authorizer) DecideList(p *Principal, action Action, op string) Decision {
	ps := a.ps.Load()
	srv, _ := ps.entities.Get(a.server)
	return a.decide(ps, p, action, &srv, emptyValue, emptyValue, op)
}

// decide evaluates one request against ps, the policy set loaded once by
// the caller.
func (a *Authorizer) decide(ps *policySet, p *Principal, action Action, target *types.Entity, args, annotations types.Value, op string) Decision {
	ctx, pooled := recordMap(4)
	ctx["claims"], ctx["arguments"], ctx["annotations"], ctx["operation"] = p.claims, args, annotations, types.String(op)
	req := cedar.Request{Principal: p.entity.UID, Action: action.UID(), Resource: target.UID, Context: types.NewRecord(ctx)}
	putRecordMap(ctx, pooled) // NewRecord copied it
	dec, diag := cedar.Authorize(p.policies(ps, action), &entities{principal: &p.entity, target: target, static: ps.entities}, req)
	d := Decision{Allowed: dec == cedar.Allow}
	if len(diag.Reasons) > 0 {
		d.Reasons = make([]string, 0, len(diag.Reasons))
	}
	for _, r := range diag.Reasons {
		d.Reasons = append(d.Reasons, string(r.PolicyID))
	}
	var failedForbids []string
	for _, e := range diag.Errors {
		d.Errors = append(d.Errors, EvalError{Policy: string(e.PolicyID), Position: fmt.Sprintf("%s:%d:%d", e.Position.Filename, e.Position.Line, e.Position.Column), Message: e.Message})
		// Cedar skips a policy that fails to evaluate. For a permit that
		// means it grants nothing; a forbid that fails might have matched,
		// so the request is denied (fail closed).
		if pol := ps.set.Get(e.PolicyID); pol != nil && pol.Effect() == cedar.Forbid {
			failedForbids = append(failedForbids, string(e.PolicyID))
		}
	}
	if len(failedForbids) > 0 {
		d.Allowed, d.Reasons = false, failedForbids
	}
	if d.Allowed {
		a.allowed.Add(1)
	} else {
		a.denied.Add(1)
	}
	a.count(action, d.Allowed, p.sourceSet)
	if len(d.Errors) > 0 {
		a.evalErrors.Add(int64(len(d.Errors)))
		a.logEvalErrors(p, action, target.UID, d.Errors)
	}
	return d
}

// logEvalErrors logs evaluation errors at most once a minute per policy,
// naming the principal's claims but never their values.
func (a *Authorizer) logEvalErrors(p *Principal, action Action, target types.EntityUID, errs []EvalError) {
	now := time.Now()
	for _, e := range errs {
		a.logMu.Lock()
		last, seen := a.lastLog[e.Policy]
		quiet := seen && now.Sub(last) < time.Minute
		if !quiet {
			a.lastLog[e.Policy] = now
		}
		a.logMu.Unlock()
		if quiet {
			continue
		}
		a.logger.Error("policy evaluation failed: a failing permit grants nothing, a failing forbid denies", "policy", e.Policy, "position", e.Position,
			"error", e.Message, "action", string(action), "resource", target.String(), "claims", p.Claims.Names())
	}
}

// ArgumentsOf decodes raw tool arguments for a decision; invalid or
// non-object arguments give nil.
func ArgumentsOf(raw json.RawMessage) map[string]any {
	if len(raw) == 0 {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m
}
