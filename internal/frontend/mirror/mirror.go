// Package mirror keeps an [mcp.Server]'s registrations a mirror of a
// [router.Catalog]: each Apply registers the items that are new or changed
// and removes the ones that are gone, so that the SDK tells clients what
// changed (list_changed) and nothing else. An item the SDK refuses (it
// panics: a tool without an object input schema, invalid parameter-header
// annotations, an invalid URI or URI template) is left out, logged and
// reported, so that the caller can publish the catalog without it.
package mirror

import (
	"fmt"
	"log/slog"
	"reflect"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/router"
)

// Handlers serve the registered items.
type Handlers struct {
	Tool     mcp.ToolHandler
	Prompt   mcp.PromptHandler
	Resource mcp.ResourceHandler
	// Template returns the handler of a template of the given backend.
	Template func(backend string) mcp.ResourceHandler
}

// Refused are the names (tools) and URIs (resources) and URI templates the
// SDK refused to register in one Apply.
type Refused struct{ Tools, Resources, Templates []string }

// Empty reports whether nothing was refused.
func (r Refused) Empty() bool { return len(r.Tools)+len(r.Resources)+len(r.Templates) == 0 }

// Mirror mirrors catalogs onto one mcp.Server. It is not safe for
// concurrent use: its caller serializes Apply.
type Mirror struct {
	server  *mcp.Server
	h       Handlers
	logger  *slog.Logger
	changes int // changes made to the server's registrations

	tools     map[string]*router.Tool
	prompts   map[string]*router.Prompt
	resources map[string]*router.Resource
	templates map[string]*router.Template
}

// New returns a mirror of an empty catalog onto server.
func New(server *mcp.Server, h Handlers, logger *slog.Logger) *Mirror {
	return &Mirror{server: server, h: h, logger: logger}
}

// kind describes one kind of catalog item for [apply].
type kind[T any] struct {
	noun, attr string                // in the log: "tool left out", "tool", NAME
	key        func(T) string        // the name or URI the SDK registers it under
	backend    func(T) string        // for the log
	same       func(old, cur T) bool // the registration of old serves cur
	add        func(T)               // registers; panics if the SDK refuses
	remove     func(keys ...string)  // unregisters
}

// Apply brings the server's registrations in line with c: it registers new
// and changed items and removes gone ones. It reports whether anything
// changed, and what the SDK refused.
func (m *Mirror) Apply(c *router.Catalog) (changed bool, refused Refused) {
	before := m.changes
	s := m.server
	m.tools, refused.Tools = apply(m, c.Tools, m.tools, kind[*router.Tool]{
		noun: "tool", attr: "tool",
		key:     func(t *router.Tool) string { return t.Def.Name },
		backend: func(t *router.Tool) string { return t.Backend },
		same:    func(old, cur *router.Tool) bool { return reflect.DeepEqual(old.Def, cur.Def) },
		add:     func(t *router.Tool) { s.AddTool(t.Def, m.h.Tool) },
		remove:  s.RemoveTools,
	})
	m.prompts, _ = apply(m, c.Prompts, m.prompts, kind[*router.Prompt]{
		noun: "prompt", attr: "prompt",
		key:     func(p *router.Prompt) string { return p.Def.Name },
		backend: func(p *router.Prompt) string { return p.Backend },
		same:    func(old, cur *router.Prompt) bool { return reflect.DeepEqual(old.Def, cur.Def) },
		add:     func(p *router.Prompt) { s.AddPrompt(p.Def, m.h.Prompt) },
		remove:  s.RemovePrompts,
	})
	m.resources, refused.Resources = apply(m, c.Resources, m.resources, kind[*router.Resource]{
		noun: "resource", attr: "uri",
		key:     func(r *router.Resource) string { return r.Def.URI },
		backend: func(r *router.Resource) string { return r.Backend },
		same:    func(old, cur *router.Resource) bool { return reflect.DeepEqual(old.Def, cur.Def) },
		add:     func(r *router.Resource) { s.AddResource(r.Def, m.h.Resource) },
		remove:  s.RemoveResources,
	})
	m.templates, refused.Templates = apply(m, c.Templates, m.templates, kind[*router.Template]{
		noun: "resource template", attr: "template",
		key:     func(t *router.Template) string { return t.Def.URITemplate },
		backend: func(t *router.Template) string { return t.Backend },
		// The handler is the backend's: a template that moves is registered again.
		same: func(old, cur *router.Template) bool {
			return old.Backend == cur.Backend && reflect.DeepEqual(old.Def, cur.Def)
		},
		add:    func(t *router.Template) { s.AddResourceTemplate(t.Def, m.h.Template(t.Backend)) },
		remove: s.RemoveResourceTemplates,
	})
	return m.changes != before, refused
}

// apply mirrors items of one kind, registered before as prev; it returns
// what is registered now and the keys the SDK refused.
func apply[T any](m *Mirror, items []T, prev map[string]T, k kind[T]) (cur map[string]T, refused []string) {
	cur = make(map[string]T, len(items))
	for _, it := range items {
		key := k.key(it)
		if old, ok := prev[key]; !ok || !k.same(old, it) {
			if err := safely(func() { k.add(it) }); err != nil {
				m.logger.Error(k.noun+" left out", k.attr, key, "backend", k.backend(it), "error", err)
				refused = append(refused, key)
				continue
			}
			m.changes++
		}
		cur[key] = it
	}
	var gone []string
	for key := range prev {
		if _, ok := cur[key]; !ok {
			gone = append(gone, key)
		}
	}
	if len(gone) > 0 {
		k.remove(gone...)
		m.changes++
	}
	return cur, refused
}

// safely runs f, turning a panic (the SDK's way to refuse an item) into an
// error.
func safely(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	f()
	return nil
}
