package router

import (
	"fmt"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/backend"
)

// benchInventories returns n backends of m tools each, with definitions of
// a realistic size (a sentence of description, three parameters).
func benchInventories(n, m int) []*backend.Inventory {
	invs := make([]*backend.Inventory, n)
	for i := range invs {
		name := fmt.Sprintf("backend%02d", i)
		inv := &backend.Inventory{Backend: name}
		for j := range m {
			inv.Tools = append(inv.Tools, &mcp.Tool{
				Name:        fmt.Sprintf("tool_%03d", j),
				Description: fmt.Sprintf("Searches the %s index for documents matching a query and returns the best matches (tool %d).", name, j),
				InputSchema: map[string]any{
					"type": "object",
					"properties": map[string]any{
						"query": map[string]any{"type": "string", "description": "What to search for."},
						"limit": map[string]any{"type": "integer", "minimum": 1, "maximum": 100},
						"sort":  map[string]any{"type": "string", "enum": []any{"relevance", "date", "title"}},
					},
					"required": []any{"query"},
				},
			})
		}
		invs[i] = inv
	}
	return invs
}

// BenchmarkBuild measures a catalog rebuild of 20 backends × 50 tools, as
// after any backend change.
func BenchmarkBuild(b *testing.B) {
	invs := benchInventories(20, 50)
	filtered := &Options{Workloads: map[string]Workload{}}
	for i, inv := range invs {
		if i%2 == 0 {
			w := Workload{Overrides: map[string]Override{"tool_000": {Name: inv.Backend + "_primary", Description: "Overridden."}}}
			for j := 0; j < 50; j += 2 {
				w.Filter = append(w.Filter, fmt.Sprintf("tool_%03d", j))
			}
			filtered.Workloads[inv.Backend] = w
		}
	}
	for _, bc := range []struct {
		name string
		opts *Options
	}{
		{"20x50/prefix", nil},
		{"20x50/priority", &Options{Strategy: Priority, PriorityOrder: []string{"backend19", "backend07"}}},
		{"20x50/prefix+filters+overrides", filtered},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c := Build(invs, bc.opts)
				if len(c.Tools) == 0 {
					b.Fatal("empty catalog")
				}
			}
		})
	}
}

// BenchmarkToolLookup measures the per-call routing lookup.
func BenchmarkToolLookup(b *testing.B) {
	c := Build(benchInventories(20, 50), nil)
	b.ReportAllocs()
	for b.Loop() {
		if c.Tool("backend13_tool_042") == nil {
			b.Fatal("not found")
		}
	}
}

// BenchmarkValidName measures the name check every advertised name passes.
func BenchmarkValidName(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = ValidName("backend13_tool_042")
	}
}
