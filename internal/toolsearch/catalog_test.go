package toolsearch

import (
	"bufio"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/backend"
	"github.com/vmcp-dev/vmcp/internal/router"
)

// The benchmark catalog: the tools of real npm MCP servers, captured in
// testdata/servers (TestCaptureServers), and generated variations in the
// style of real servers (testdata/synthetic.txt), merged by the router as
// a gateway would (prefix strategy, "{workload}_").

var benchCatalog = sync.OnceValues(func() (*router.Catalog, error) {
	invs, err := realInventories()
	if err != nil {
		return nil, err
	}
	syn, err := syntheticInventories(filepath.Join("testdata", "synthetic.txt"))
	if err != nil {
		return nil, err
	}
	return router.Build(append(invs, syn...), &router.Options{Strategy: router.Prefix, PrefixFormat: "{workload}_"}), nil
})

func loadCatalog(tb testing.TB) *router.Catalog {
	tb.Helper()
	c, err := benchCatalog()
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// realInventories reads testdata/servers: one backend per file, named after
// the file.
func realInventories() ([]*backend.Inventory, error) {
	files, err := filepath.Glob(filepath.Join("testdata", "servers", "*.json"))
	if err != nil {
		return nil, err
	}
	var invs []*backend.Inventory
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var s capturedServer
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		invs = append(invs, &backend.Inventory{Backend: strings.TrimSuffix(filepath.Base(f), ".json"), Tools: s.Tools})
	}
	return invs, nil
}

// syntheticInventories expands the service descriptions of path into
// tools (the format is described at the top of the file).
func syntheticInventories(path string) ([]*backend.Inventory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var invs []*backend.Inventory
	var svc *service
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		kind, rest, _ := strings.Cut(text, " ")
		parts := strings.Split(rest, " | ")
		head := strings.Fields(parts[0])
		bad := func() error { return fmt.Errorf("%s:%d: malformed %s line", path, line, kind) }
		switch kind {
		case "service":
			if len(head) < 3 || len(parts) != 2 {
				return nil, bad()
			}
			svc = &service{name: head[0], style: head[1], product: strings.Join(head[2:], " ")}
			invs = append(invs, &backend.Inventory{Backend: svc.name})
		case "res":
			if svc == nil || len(head) != 3 || len(parts) != 2 {
				return nil, bad()
			}
			inv := invs[len(invs)-1]
			inv.Tools = append(inv.Tools, svc.resourceTools(head[0], head[1], head[2], fields(parts[1]))...)
		case "act":
			if svc == nil || len(head) != 2 || len(parts) != 3 {
				return nil, bad()
			}
			inv := invs[len(invs)-1]
			inv.Tools = append(inv.Tools, svc.tool(head[0]+"_"+head[1], parts[1], fields(parts[2]), nil))
		default:
			return nil, bad()
		}
	}
	return invs, sc.Err()
}

type service struct{ name, style, product string }

type field struct{ name, desc string }

func fields(s string) []field {
	var out []field
	for _, p := range strings.Split(s, "; ") {
		name, desc, _ := strings.Cut(p, ": ")
		if name != "none" {
			out = append(out, field{name, desc})
		}
	}
	return out
}

// Description templates by verb; one is picked per tool by a hash of its
// name, so that descriptions vary as they do between real servers.
var templates = map[byte][]string{
	'l': {"List {plural} in {product}.", "Returns {plural} from {product}, a page at a time.", "List all {plural} you can access in {product}, newest first."},
	'g': {"Get a {product} {noun} by ID.", "Retrieve one {noun} from {product} with all its fields.", "Fetch the details of a {product} {noun}."},
	'c': {"Create a {noun} in {product}.", "Create a new {product} {noun} and return it.", "Adds a new {noun} to {product}."},
	'u': {"Update a {product} {noun}. Only the fields given are changed.", "Modify an existing {noun} in {product}.", "Change fields of a {noun} in {product}."},
	'd': {"Delete a {product} {noun}. This cannot be undone.", "Permanently delete a {noun} from {product}.", "Remove a {noun} from {product}."},
	's': {"Search {product} {plural} by text.", "Find {plural} in {product} that match a query and filters.", "Full-text search over {plural} in {product}."},
}

var verbs = map[byte]string{'l': "list", 'g': "get", 'c': "create", 'u': "update", 'd': "delete", 's': "search"}

func (s *service) resourceTools(noun, plural, verbLetters string, fs []field) []*mcp.Tool {
	var out []*mcp.Tool
	for _, v := range []byte(verbLetters) {
		name := verbs[v] + "_" + noun
		if v == 'l' || v == 's' {
			name = verbs[v] + "_" + plural
		}
		tmpl := templates[v][hash(s.name+name)%uint32(len(templates[v]))]
		desc := strings.NewReplacer("{product}", s.product, "{noun}", words(noun), "{plural}", words(plural)).Replace(tmpl)
		var params []field
		switch v {
		case 'l':
			params = []field{{"limit", "maximum number of results"}, {"cursor", "cursor from the previous page"}}
		case 'g', 'd':
			params = []field{{"id", "ID of the " + words(noun)}}
		case 'c':
			params = fs
		case 'u':
			params = append([]field{{"id", "ID of the " + words(noun)}}, fs...)
		case 's':
			params = []field{{"query", "text to search for"}, {"limit", "maximum number of results"}}
		}
		out = append(out, s.tool(name, desc, params, params[:min(1, len(params))]))
	}
	return out
}

// tool builds one tool named in the service's style.
func (s *service) tool(name, desc string, params, required []field) *mcp.Tool {
	props := map[string]any{}
	for _, p := range params {
		props[p.name] = map[string]any{"type": "string", "description": p.desc}
	}
	schema := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		schema["required"] = []string{required[0].name}
	}
	raw, _ := json.Marshal(schema)
	return &mcp.Tool{Name: s.styled(name), Description: desc, InputSchema: json.RawMessage(raw)}
}

func (s *service) styled(name string) string {
	parts := splitWords(name)
	switch s.style {
	case "kebab":
		return strings.Join(parts, "-")
	case "camel":
		for i := 1; i < len(parts); i++ {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
		return strings.Join(parts, "")
	}
	return strings.Join(parts, "_")
}

// splitWords splits snake_case and camelCase into lower-case words.
func splitWords(s string) []string {
	var out []string
	for _, p := range strings.Split(s, "_") {
		start := 0
		for i, r := range p {
			if i > 0 && unicode.IsUpper(r) {
				out = append(out, strings.ToLower(p[start:i]))
				start = i
			}
		}
		out = append(out, strings.ToLower(p[start:]))
	}
	return slices.DeleteFunc(out, func(w string) bool { return w == "" })
}

func words(s string) string { return strings.Join(splitWords(s), " ") }

func hash(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

func TestBenchCatalog(t *testing.T) {
	t.Parallel()
	c := loadCatalog(t)
	for _, p := range c.Problems {
		if p.Severe {
			t.Errorf("catalog problem: %s", p)
		}
	}
	if len(c.Tools) < 1000 {
		t.Errorf("the benchmark catalog has %d tools, want at least 1000", len(c.Tools))
	}
	t.Logf("%d tools", len(c.Tools))
}
