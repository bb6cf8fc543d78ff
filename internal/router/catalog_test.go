package router

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/backend"
)

func inv(name string, tools ...string) *backend.Inventory {
	i := &backend.Inventory{Backend: name}
	for _, t := range tools {
		i.Tools = append(i.Tools, &mcp.Tool{Name: t, Description: name + " " + t, InputSchema: map[string]any{"type": "object"}})
	}
	return i
}

// routes lists advertised name -> backend/original, in catalog order.
func routes(c *Catalog) []string {
	var out []string
	for _, t := range c.Tools {
		out = append(out, t.Def.Name+" -> "+t.Backend+"/"+t.Original)
	}
	return out
}

func TestStrategies(t *testing.T) {
	t.Parallel()
	invs := []*backend.Inventory{inv("github", "search", "create_issue"), inv("jira", "search", "create_ticket")}
	tests := []struct {
		name   string
		opts   *Options
		want   []string
		severe bool
	}{
		{"prefix default", nil, []string{
			"github_create_issue -> github/create_issue", "github_search -> github/search",
			"jira_create_ticket -> jira/create_ticket", "jira_search -> jira/search"}, false},
		{"prefix format", &Options{PrefixFormat: "{workload}."}, []string{
			"github.create_issue -> github/create_issue", "github.search -> github/search",
			"jira.create_ticket -> jira/create_ticket", "jira.search -> jira/search"}, false},
		{"priority: configuration order", &Options{Strategy: Priority}, []string{
			"create_issue -> github/create_issue", "create_ticket -> jira/create_ticket", "search -> github/search"}, false},
		{"priority: explicit order", &Options{Strategy: Priority, PriorityOrder: []string{"jira"}}, []string{
			"create_issue -> github/create_issue", "create_ticket -> jira/create_ticket", "search -> jira/search"}, false},
		{"manual: resolved by override", &Options{Strategy: Manual, Workloads: map[string]Workload{
			"jira": {Overrides: map[string]Override{"search": {Name: "jira_search"}}}}}, []string{
			"create_issue -> github/create_issue", "create_ticket -> jira/create_ticket",
			"jira_search -> jira/search", "search -> github/search"}, false},
		{"manual: unresolved clash is severe", &Options{Strategy: Manual}, []string{
			"create_issue -> github/create_issue", "create_ticket -> jira/create_ticket", "search -> github/search"}, true},
		{"filter and override", &Options{Workloads: map[string]Workload{
			"github": {Filter: []string{"search"}, Overrides: map[string]Override{"search": {Name: "code_search", Description: "Search code"}}}}},
			[]string{"code_search -> github/search", "jira_create_ticket -> jira/create_ticket", "jira_search -> jira/search"}, false},
		{"override clashing after prefix", &Options{Workloads: map[string]Workload{
			"jira": {Overrides: map[string]Override{"search": {Name: "github_search"}}}}},
			[]string{"github_create_issue -> github/create_issue", "github_search -> github/search",
				"jira_create_ticket -> jira/create_ticket"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Build(invs, tc.opts)
			if diff := cmp.Diff(tc.want, routes(c)); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
			severe := false
			for _, p := range c.Problems {
				severe = severe || p.Severe
			}
			if severe != tc.severe {
				t.Errorf("severe problem = %v, want %v; problems: %v", severe, tc.severe, c.Problems)
			}
			for _, tool := range c.Tools {
				if got := c.Tool(tool.Def.Name); got != tool {
					t.Errorf("Tool(%q) does not find its own entry", tool.Def.Name)
				}
				if !validName(tool.Def.Name) {
					t.Errorf("advertised name %q is not valid", tool.Def.Name)
				}
			}
		})
	}
}

// validName: s meets the MCP specification's rule for tool names (checked
// independently of the code under test), and ValidName leaves it alone.
func validName(s string) bool { return nameRE(s) && ValidName(s) == s }

func TestOverrideDescription(t *testing.T) {
	t.Parallel()
	c := Build([]*backend.Inventory{inv("a", "x")}, &Options{Workloads: map[string]Workload{
		"a": {Overrides: map[string]Override{"x": {Description: "better words"}}}}})
	if got := c.Tool("a_x").Def.Description; got != "better words" {
		t.Errorf("description = %q", got)
	}
}

func TestBuildDoesNotMutateInventory(t *testing.T) {
	t.Parallel()
	i := inv("a", "x")
	Build([]*backend.Inventory{i}, nil)
	if i.Tools[0].Name != "x" || i.Tools[0].Description != "a x" {
		t.Errorf("inventory changed: %+v", i.Tools[0])
	}
}

func TestValidName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 200)
	long2 := strings.Repeat("a", 199) + "b"
	for _, in := range []string{"ok_name-1.2", "has space/slash", "", long, "ünïcode"} {
		if out := ValidName(in); !nameRE(out) {
			t.Errorf("ValidName(%q) = %q, not valid", in, out)
		}
	}
	if ValidName("has space/slash") != "has_space_slash" {
		t.Errorf("ValidName replaced wrongly: %q", ValidName("has space/slash"))
	}
	if ValidName(long) == ValidName(long2) {
		t.Error("two different long names map to one")
	}
	// Non-ASCII letters are invalid characters: each becomes '_' and the
	// result is ASCII only.
	uni := ValidName("ünïcode")
	for i := 0; i < len(uni); i++ {
		if uni[i] >= utf8.RuneSelf {
			t.Errorf("ValidName(%q) = %q, not ASCII only", "ünïcode", uni)
			break
		}
	}
	if uni != "_n_code" {
		t.Errorf("ValidName(%q) = %q, want %q", "ünïcode", uni, "_n_code")
	}
}

// specName is the MCP specification's rule for tool names, written out
// here rather than taken from the code under test: 1 to 128 characters,
// each an ASCII letter, digit, '_', '-' or '.'.
var specName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

func nameRE(s string) bool { return specName.MatchString(s) }

func TestInvalidToolsAreRepairedOrReported(t *testing.T) {
	t.Parallel()
	i := &backend.Inventory{Backend: "a", Tools: []*mcp.Tool{
		{Name: "no_schema"},
		{Name: "array_schema", InputSchema: map[string]any{"type": "array"}},
		{Name: "bad name!", InputSchema: map[string]any{"type": "object"}},
	}}
	c := Build([]*backend.Inventory{i}, &Options{Strategy: Priority})
	if diff := cmp.Diff([]string{"bad_name_ -> a/bad name!", "no_schema -> a/no_schema"}, routes(c)); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	if len(c.Problems) != 1 || !strings.Contains(c.Problems[0].Msg, "not of type object") {
		t.Errorf("problems = %v", c.Problems)
	}
}

func TestResourceCollisionsStayReadable(t *testing.T) {
	t.Parallel()
	a := &backend.Inventory{Backend: "a", Resources: []*mcp.Resource{{URI: "file:///readme", Name: "readme"}}}
	b := &backend.Inventory{Backend: "b", Resources: []*mcp.Resource{{URI: "file:///readme", Name: "readme"}}}
	c := Build([]*backend.Inventory{a, b}, nil)
	if len(c.Resources) != 2 {
		t.Fatalf("resources = %d, want 2", len(c.Resources))
	}
	if r := c.Resource("file:///readme"); r == nil || r.Backend != "a" {
		t.Errorf("original URI should stay with a, got %+v", r)
	}
	ns := NamespacedURI("b", "file:///readme")
	if r := c.Resource(ns); r == nil || r.Backend != "b" || r.Original != "file:///readme" {
		t.Errorf("namespaced URI %q should route to b's original, got %+v", ns, r)
	}
}

func TestPromptsArePrefixed(t *testing.T) {
	t.Parallel()
	a := &backend.Inventory{Backend: "a", Prompts: []*mcp.Prompt{{Name: "greet"}}}
	b := &backend.Inventory{Backend: "b", Prompts: []*mcp.Prompt{{Name: "greet"}}}
	c := Build([]*backend.Inventory{a, b}, nil)
	if p := c.Prompt("b_greet"); p == nil || p.Original != "greet" || p.Backend != "b" {
		t.Errorf("Prompt(b_greet) = %+v", p)
	}
}

// TestNamespacedURIsCannotBeForged: a backend that publishes a URI in the
// vmcp scheme (here the namespaced URI another backend's resource gets)
// does not take it: its own is offered namespaced under its name, and the
// other backend's resource stays readable under its namespaced URI. A
// template in the vmcp scheme is left out.
func TestNamespacedURIsCannotBeForged(t *testing.T) {
	t.Parallel()
	forged := NamespacedURI("r2", "file:///shared")
	r0 := &backend.Inventory{Backend: "r0", Resources: []*mcp.Resource{{URI: "file:///shared", Name: "shared"}}}
	r1 := &backend.Inventory{Backend: "r1",
		Resources: []*mcp.Resource{{URI: forged, Name: "forged"}, {URI: "VMCP://r2/x", Name: "upper"}},
		Templates: []*mcp.ResourceTemplate{{URITemplate: "vmcp://r2/{path}", Name: "forged"}}}
	r2 := &backend.Inventory{Backend: "r2", Resources: []*mcp.Resource{{URI: "file:///shared", Name: "shared"}}}
	c := Build([]*backend.Inventory{r0, r1, r2}, nil)
	if r := c.Resource(forged); r == nil || r.Backend != "r2" || r.Original != "file:///shared" {
		t.Errorf("%s = %+v; want r2's file:///shared", forged, r)
	}
	own := NamespacedURI("r1", forged)
	if r := c.Resource(own); r == nil || r.Backend != "r1" || r.Original != forged {
		t.Errorf("r1's own vmcp URI: %s = %+v; want r1's %s", own, r, forged)
	}
	if r := c.Resource("VMCP://r2/x"); r != nil {
		t.Errorf("a vmcp URI in capitals offered as it is: %+v", r)
	}
	if len(c.Templates) != 0 {
		t.Errorf("templates %+v; want the vmcp one left out", c.Templates)
	}
	for _, r := range c.Resources {
		if strings.HasPrefix(r.Def.URI, "vmcp://") && !strings.HasPrefix(r.Def.URI, "vmcp://"+r.Backend+"/") {
			t.Errorf("%s is offered for %s", r.Def.URI, r.Backend)
		}
	}
}
