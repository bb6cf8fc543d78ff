package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/router"
)

var object = json.RawMessage(`{"type":"object"}`)

func tool(name, desc string) *router.Tool {
	return &router.Tool{Def: &mcp.Tool{Name: name, Description: desc, InputSchema: object}, Backend: "b"}
}

func prompt(name, desc string) *router.Prompt {
	return &router.Prompt{Def: &mcp.Prompt{Name: name, Description: desc}, Backend: "b"}
}

func resource(uri, desc string) *router.Resource {
	return &router.Resource{Def: &mcp.Resource{URI: uri, Name: uri, Description: desc}, Backend: "b"}
}

func template(tmpl, backend string) *router.Template {
	return &router.Template{Def: &mcp.ResourceTemplate{URITemplate: tmpl, Name: tmpl}, Backend: backend}
}

// fixture is a mirror onto a real server, with a client session to see
// what the server lists and which handler serves a template.
type fixture struct {
	m      *Mirror
	cs     *mcp.ClientSession
	log    *bytes.Buffer
	served []string // backends whose template handler served a read
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{log: &bytes.Buffer{}}
	srv := mcp.NewServer(&mcp.Implementation{Name: "s"}, nil)
	h := Handlers{
		Tool: func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{}, nil
		},
		Prompt: func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{}, nil
		},
		Resource: func(_ context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: r.Params.URI, Text: "x"}}}, nil
		},
		Template: func(backend string) mcp.ResourceHandler {
			return func(_ context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
				f.served = append(f.served, backend)
				return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: r.Params.URI, Text: backend}}}, nil
			}
		},
	}
	f.m = New(srv, h, slog.New(slog.NewTextHandler(f.log, nil)))
	st, ct := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c"}, nil).Connect(context.Background(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close(); _ = ss.Close() })
	f.cs = cs
	return f
}

// listed returns what the server lists, each kind sorted, as one string.
func (f *fixture) listed(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	var tools, prompts, resources, templates []string
	for x, err := range f.cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		tools = append(tools, x.Name+":"+x.Description)
	}
	for x, err := range f.cs.Prompts(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		prompts = append(prompts, x.Name+":"+x.Description)
	}
	for x, err := range f.cs.Resources(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		resources = append(resources, x.URI+":"+x.Description)
	}
	for x, err := range f.cs.ResourceTemplates(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		templates = append(templates, x.URITemplate)
	}
	for _, s := range [][]string{tools, prompts, resources, templates} {
		slices.Sort(s)
	}
	return fmt.Sprint(tools, prompts, resources, templates)
}

func TestApply(t *testing.T) {
	f := newFixture(t)
	c := &router.Catalog{
		Tools:     []*router.Tool{tool("t1", "a"), tool("t2", "a")},
		Prompts:   []*router.Prompt{prompt("p1", "a"), prompt("p2", "a")},
		Resources: []*router.Resource{resource("file:///r1", "a"), resource("file:///r2", "a")},
		Templates: []*router.Template{template("file:///x/{n}", "b1")},
	}
	if changed, refused := f.m.Apply(c); !changed || !refused.Empty() {
		t.Fatalf("first Apply: changed %v, refused %+v", changed, refused)
	}
	want := "[t1:a t2:a] [p1:a p2:a] [file:///r1:a file:///r2:a] [file:///x/{n}]"
	if got := f.listed(t); got != want {
		t.Fatalf("listed %s, want %s", got, want)
	}
	// The same catalog, built anew (equal, not identical, items): nothing changes.
	same := &router.Catalog{
		Tools:     []*router.Tool{tool("t1", "a"), tool("t2", "a")},
		Prompts:   []*router.Prompt{prompt("p1", "a"), prompt("p2", "a")},
		Resources: []*router.Resource{resource("file:///r1", "a"), resource("file:///r2", "a")},
		Templates: []*router.Template{template("file:///x/{n}", "b1")},
	}
	if changed, _ := f.m.Apply(same); changed {
		t.Error("an equal catalog counted as a change")
	}
	// Each kind: one item changed, one gone, one new.
	next := &router.Catalog{
		Tools:     []*router.Tool{tool("t1", "b"), tool("t3", "a")},
		Prompts:   []*router.Prompt{prompt("p1", "b"), prompt("p3", "a")},
		Resources: []*router.Resource{resource("file:///r1", "b"), resource("file:///r3", "a")},
		Templates: []*router.Template{template("file:///x/{n}", "b1"), template("file:///y/{n}", "b1")},
	}
	if changed, refused := f.m.Apply(next); !changed || !refused.Empty() {
		t.Fatalf("second Apply: changed %v, refused %+v", changed, refused)
	}
	want = "[t1:b t3:a] [p1:b p3:a] [file:///r1:b file:///r3:a] [file:///x/{n} file:///y/{n}]"
	if got := f.listed(t); got != want {
		t.Fatalf("listed %s, want %s", got, want)
	}
}

// TestTemplateMoves: a template whose definition is unchanged but whose
// backend changed is registered again, so that its reads reach the new
// backend.
func TestTemplateMoves(t *testing.T) {
	f := newFixture(t)
	f.m.Apply(&router.Catalog{Templates: []*router.Template{template("file:///x/{n}", "b1")}})
	if changed, _ := f.m.Apply(&router.Catalog{Templates: []*router.Template{template("file:///x/{n}", "b2")}}); !changed {
		t.Fatal("a template that moved to another backend is no change")
	}
	if _, err := f.cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "file:///x/1"}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(f.served) != "[b2]" {
		t.Errorf("the read was served by %v, want [b2]", f.served)
	}
}

// TestRefused: items the SDK refuses are left out, logged and reported; a
// registered item that becomes invalid is removed; the rest is mirrored.
func TestRefused(t *testing.T) {
	f := newFixture(t)
	bad := &router.Tool{Def: &mcp.Tool{Name: "bad", InputSchema: json.RawMessage(`{"type":"string"}`)}, Backend: "b"}
	c := &router.Catalog{
		Tools:     []*router.Tool{tool("ok", "a"), bad, tool("t2", "a")},
		Resources: []*router.Resource{resource("file:///r1", "a"), resource("::not a uri", "a")},
		Templates: []*router.Template{template("file:///x/{n", "b1"), template("file:///y/{n}", "b1")},
	}
	changed, refused := f.m.Apply(c)
	if !changed {
		t.Error("no change reported")
	}
	if want := (Refused{Tools: []string{"bad"}, Resources: []string{"::not a uri"}, Templates: []string{"file:///x/{n"}}); fmt.Sprint(refused) != fmt.Sprint(want) {
		t.Errorf("refused %+v, want %+v", refused, want)
	}
	want := "[ok:a t2:a] [] [file:///r1:a] [file:///y/{n}]"
	if got := f.listed(t); got != want {
		t.Errorf("listed %s, want %s", got, want)
	}
	for _, s := range []string{`msg="tool left out" tool=bad backend=b`, `msg="resource left out" uri="::not a uri"`, `msg="resource template left out" template=file:///x/{n backend=b1`} {
		if !strings.Contains(f.log.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, f.log)
		}
	}
	// t2 becomes invalid: it is removed, and refused again.
	t2 := &router.Tool{Def: &mcp.Tool{Name: "t2"}, Backend: "b"} // no input schema
	if _, refused := f.m.Apply(&router.Catalog{Tools: []*router.Tool{tool("ok", "a"), t2}}); fmt.Sprint(refused.Tools) != "[t2]" {
		t.Errorf("refused %+v, want t2", refused)
	}
	if got, want := f.listed(t), "[ok:a] [] [] []"; got != want {
		t.Errorf("listed %s, want %s", got, want)
	}
}
