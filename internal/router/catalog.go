// Package router merges what the backends offer into one catalog, under
// names that are valid and unique, and maps each advertised name back to its
// backend and the backend's own name.
//
// A [Catalog] is an immutable snapshot built by [Build], a pure function of
// the backends' inventories and the aggregation [Options]; the gateway swaps
// snapshots whole when a backend changes. This package knows nothing about
// HTTP, sessions or tokens.
package router

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/yosida95/uritemplate/v3"

	"github.com/vmcp-dev/vmcp/internal/backend"
)

// Conflict resolution strategies.
const (
	Prefix   = "prefix"
	Priority = "priority"
	Manual   = "manual"
)

// Options configure aggregation.
type Options struct {
	// Strategy is Prefix (default), Priority or Manual.
	Strategy string
	// PrefixFormat is the prefix with the Prefix strategy; {workload} is
	// the backend name. Default: "{workload}_".
	PrefixFormat string
	// PriorityOrder ranks backends for the Priority strategy, first wins;
	// unlisted backends follow in configuration order.
	PriorityOrder []string
	// Workloads holds per-backend tool filters and overrides.
	Workloads map[string]Workload
}

// Workload filters and renames one backend's tools.
type Workload struct {
	// Filter, if not empty, allows only these tools (backend names).
	Filter []string
	// Overrides by backend tool name. An override name is final.
	Overrides map[string]Override
}

// Override renames a tool or replaces its description.
type Override struct {
	Name        string
	Description string
}

// Tool is an advertised tool and where it goes.
type Tool struct {
	Def      *mcp.Tool // as advertised: Name is the advertised name
	Backend  string
	Original string // the backend's own name
}

// Prompt is an advertised prompt and where it goes.
type Prompt struct {
	Def      *mcp.Prompt
	Backend  string
	Original string
}

// Resource is an advertised resource and where it goes.
type Resource struct {
	Def      *mcp.Resource // URI is the advertised URI
	Backend  string
	Original string // the backend's own URI
}

// Template is an advertised resource template and where it goes.
type Template struct {
	Def     *mcp.ResourceTemplate
	Backend string
	re      *regexp.Regexp // matches the URIs the template expands to
}

// Matches reports whether uri is one of the template's expansions.
func (t *Template) Matches(uri string) bool { return t.re.MatchString(uri) }

// Problem is something about the merged catalog an operator should know:
// an item left out, a clash resolved by a rule, or one that remains.
type Problem struct {
	Kind    string   // "tool", "prompt", "resource", "template"
	Name    string   // the name or URI concerned
	Backend []string // the backends involved
	Msg     string
	Severe  bool // an item was lost that the operator must fix
}

func (p Problem) String() string {
	return fmt.Sprintf("%s %q (%s): %s", p.Kind, p.Name, strings.Join(p.Backend, ", "), p.Msg)
}

// Catalog is what the gateway offers: every list sorted by advertised name.
type Catalog struct {
	Tools     []*Tool
	Prompts   []*Prompt
	Resources []*Resource
	Templates []*Template
	Problems  []Problem

	tools     map[string]*Tool
	prompts   map[string]*Prompt
	resources map[string]*Resource
}

// Without returns a copy of c without the named tools, resource URIs and
// resource templates.
func (c *Catalog) Without(tools, resources, templates []string) *Catalog {
	d := *c
	d.Tools = slices.DeleteFunc(slices.Clone(c.Tools), func(t *Tool) bool { return slices.Contains(tools, t.Def.Name) })
	d.Resources = slices.DeleteFunc(slices.Clone(c.Resources), func(r *Resource) bool { return slices.Contains(resources, r.Def.URI) })
	d.Templates = slices.DeleteFunc(slices.Clone(c.Templates), func(t *Template) bool { return slices.Contains(templates, t.Def.URITemplate) })
	d.reindex()
	return &d
}

// reindex rebuilds the lookup maps after items were removed from the lists.
func (c *Catalog) reindex() {
	c.tools = make(map[string]*Tool, len(c.Tools))
	for _, t := range c.Tools {
		c.tools[t.Def.Name] = t
	}
	c.prompts = make(map[string]*Prompt, len(c.Prompts))
	for _, p := range c.Prompts {
		c.prompts[p.Def.Name] = p
	}
	c.resources = make(map[string]*Resource, len(c.Resources))
	for _, r := range c.Resources {
		c.resources[r.Def.URI] = r
	}
}

// Tool returns the tool advertised under name, or nil.
func (c *Catalog) Tool(name string) *Tool { return c.tools[name] }

// Prompt returns the prompt advertised under name, or nil.
func (c *Catalog) Prompt(name string) *Prompt { return c.prompts[name] }

// Resource returns the resource advertised under uri, or nil.
func (c *Catalog) Resource(uri string) *Resource { return c.resources[uri] }

var invalidNameChars = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

const maxNameLen = 128

// ValidName turns s into a valid MCP tool name: invalid characters become
// '_', and a name longer than 128 characters is cut and given a hash of the
// whole, so different long names stay different.
func ValidName(s string) string {
	v := invalidNameChars.ReplaceAllString(s, "_")
	if v == "" {
		v = "_"
	}
	if len(v) > maxNameLen {
		h := fnv.New32a()
		h.Write([]byte(s))
		v = fmt.Sprintf("%s_%08x", v[:maxNameLen-9], h.Sum32())
	}
	return v
}

// Build merges the inventories (given in configuration order).
func Build(invs []*backend.Inventory, opts *Options) *Catalog {
	b := newBuilder(invs, opts)
	c := &Catalog{
		tools:     map[string]*Tool{},
		prompts:   map[string]*Prompt{},
		resources: map[string]*Resource{},
	}
	b.tools(c)
	b.prompts(c)
	b.resources(c)
	b.templates(c)
	slices.SortFunc(c.Tools, func(x, y *Tool) int { return cmp.Compare(x.Def.Name, y.Def.Name) })
	slices.SortFunc(c.Prompts, func(x, y *Prompt) int { return cmp.Compare(x.Def.Name, y.Def.Name) })
	slices.SortFunc(c.Resources, func(x, y *Resource) int { return cmp.Compare(x.Def.URI, y.Def.URI) })
	slices.SortFunc(c.Templates, func(x, y *Template) int { return cmp.Compare(x.Def.URITemplate, y.Def.URITemplate) })
	c.Problems = b.problems
	return c
}

type builder struct {
	opts     Options
	invs     []*backend.Inventory // in rank order: who wins a clash
	problems []Problem
}

func newBuilder(invs []*backend.Inventory, opts *Options) *builder {
	b := &builder{}
	if opts != nil {
		b.opts = *opts
	}
	if b.opts.Strategy == "" {
		b.opts.Strategy = Prefix
	}
	if b.opts.PrefixFormat == "" {
		b.opts.PrefixFormat = "{workload}_"
	}
	rank := func(name string) int {
		if i := slices.Index(b.opts.PriorityOrder, name); i >= 0 {
			return i
		}
		return len(b.opts.PriorityOrder)
	}
	b.invs = slices.Clone(invs)
	slices.SortStableFunc(b.invs, func(x, y *backend.Inventory) int { return cmp.Compare(rank(x.Backend), rank(y.Backend)) })
	return b
}

func (b *builder) report(p Problem) { b.problems = append(b.problems, p) }

// name returns the advertised name of a tool or prompt per the strategy.
func (b *builder) name(backendName, original string) string {
	if b.opts.Strategy == Prefix {
		return ValidName(strings.ReplaceAll(b.opts.PrefixFormat, "{workload}", backendName) + original)
	}
	return ValidName(original)
}

// claim decides who keeps an advertised name: the first (highest-ranked)
// backend to claim it. It reports the clash and returns false for later ones.
func (b *builder) claim(kind, name, winner, loser string, taken bool) bool {
	if !taken {
		return true
	}
	p := Problem{Kind: kind, Name: name, Backend: []string{winner, loser}}
	switch b.opts.Strategy {
	case Priority:
		p.Msg = fmt.Sprintf("offered by both; %s wins by priority, %s's is hidden", winner, loser)
	case Manual:
		p.Msg = fmt.Sprintf("offered by both and not renamed; %s's is hidden until an override in config.aggregation.tools renames one", loser)
		p.Severe = true
	default:
		p.Msg = fmt.Sprintf("still clashes after prefixing; %s's is hidden until an override renames one", loser)
		p.Severe = true
	}
	b.report(p)
	return false
}

func (b *builder) tools(c *Catalog) {
	for _, inv := range b.invs {
		w := b.opts.Workloads[inv.Backend]
		for _, t := range inv.Tools {
			if len(w.Filter) > 0 && !slices.Contains(w.Filter, t.Name) {
				continue
			}
			def, ok := b.checkTool(inv.Backend, t)
			if !ok {
				continue
			}
			name := b.name(inv.Backend, t.Name)
			if o, ok := w.Overrides[t.Name]; ok {
				if o.Name != "" {
					name = o.Name
				}
				if o.Description != "" {
					def.Description = o.Description
				}
			}
			prev := c.tools[name]
			if !b.claim("tool", name, backendOf(prev), inv.Backend, prev != nil) {
				continue
			}
			def.Name = name
			e := &Tool{Def: def, Backend: inv.Backend, Original: t.Name}
			c.Tools = append(c.Tools, e)
			c.tools[name] = e
		}
	}
}

func backendOf(t *Tool) string {
	if t == nil {
		return ""
	}
	return t.Backend
}

// checkTool returns a copy of t fit to advertise, or false (reported) if it
// cannot be: a missing input schema is repaired as an empty object schema.
func (b *builder) checkTool(backendName string, t *mcp.Tool) (*mcp.Tool, bool) {
	def := *t
	switch s := t.InputSchema.(type) {
	case nil:
		def.InputSchema = map[string]any{"type": "object"}
	case map[string]any:
		if s["type"] != "object" {
			b.report(Problem{Kind: "tool", Name: t.Name, Backend: []string{backendName},
				Msg: "left out: its inputSchema is not of type object", Severe: true})
			return nil, false
		}
	}
	return &def, true
}

func (b *builder) prompts(c *Catalog) {
	for _, inv := range b.invs {
		for _, p := range inv.Prompts {
			name := b.name(inv.Backend, p.Name)
			prev := c.prompts[name]
			prevBackend := ""
			if prev != nil {
				prevBackend = prev.Backend
			}
			if !b.claim("prompt", name, prevBackend, inv.Backend, prev != nil) {
				continue
			}
			def := *p
			def.Name = name
			e := &Prompt{Def: &def, Backend: inv.Backend, Original: p.Name}
			c.Prompts = append(c.Prompts, e)
			c.prompts[name] = e
		}
	}
}

// resources keeps each URI as the backend gives it; when two backends give
// the same URI, the higher-ranked one keeps it and the other's is offered
// under a namespaced URI (see [NamespacedURI]), so both stay readable.
func (b *builder) resources(c *Catalog) {
	for _, inv := range b.invs {
		for _, r := range inv.Resources {
			if _, err := url.Parse(r.URI); err != nil || r.URI == "" {
				b.report(Problem{Kind: "resource", Name: r.URI, Backend: []string{inv.Backend}, Msg: "left out: not a valid URI", Severe: true})
				continue
			}
			uri := r.URI
			switch prev := c.resources[uri]; {
			case reservedScheme(r.URI):
				uri = NamespacedURI(inv.Backend, r.URI)
				b.report(Problem{Kind: "resource", Name: r.URI, Backend: []string{inv.Backend},
					Msg: fmt.Sprintf("uses vmcp's own URI scheme; offered as %s", uri)})
			case prev != nil:
				uri = NamespacedURI(inv.Backend, r.URI)
				b.report(Problem{Kind: "resource", Name: r.URI, Backend: []string{prev.Backend, inv.Backend},
					Msg: fmt.Sprintf("offered by both; %s's is offered as %s", inv.Backend, uri)})
			}
			if c.resources[uri] != nil {
				continue // listed twice by the same backend
			}
			def := *r
			def.URI = uri
			e := &Resource{Def: &def, Backend: inv.Backend, Original: r.URI}
			c.Resources = append(c.Resources, e)
			c.resources[uri] = e
		}
	}
}

// NamespacedURI is the URI under which a backend's resource is offered when
// a higher-ranked backend offers the same URI, or when the backend's own
// URI is in the vmcp scheme.
//
// The vmcp scheme is vmcp's: a backend's URI in it is never offered as it
// is (nor a template in it), so that every vmcp:// URI a client sees was
// made here, for the backend it names. A backend therefore cannot take the
// namespaced URI of another backend's resource.
func NamespacedURI(backendName, uri string) string {
	return "vmcp://" + backendName + "/" + url.PathEscape(uri)
}

// reservedScheme reports whether uri is in vmcp's own URI scheme.
func reservedScheme(uri string) bool {
	scheme, _, ok := strings.Cut(uri, ":")
	return ok && strings.EqualFold(scheme, "vmcp")
}

func (b *builder) templates(c *Catalog) {
	seen := map[string]string{}
	for _, inv := range b.invs {
		for _, t := range inv.Templates {
			if prev, ok := seen[t.URITemplate]; ok {
				b.report(Problem{Kind: "template", Name: t.URITemplate, Backend: []string{prev, inv.Backend},
					Msg: fmt.Sprintf("offered by both; reads matching it go to %s", prev)})
				continue
			}
			if reservedScheme(t.URITemplate) {
				b.report(Problem{Kind: "template", Name: t.URITemplate, Backend: []string{inv.Backend},
					Msg: "left out: it uses vmcp's own URI scheme", Severe: true})
				continue
			}
			tmpl, err := uritemplate.New(t.URITemplate)
			if err != nil {
				b.report(Problem{Kind: "template", Name: t.URITemplate, Backend: []string{inv.Backend},
					Msg: "left out: " + err.Error(), Severe: true})
				continue
			}
			seen[t.URITemplate] = inv.Backend
			c.Templates = append(c.Templates, &Template{Def: t, Backend: inv.Backend, re: tmpl.Regexp()})
		}
	}
}
