package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/backend"
	"github.com/vmcp-dev/vmcp/internal/loadtest/echoserver"
	"github.com/vmcp-dev/vmcp/internal/router"
)

// benchCatalog returns a catalog of n backends × m tools as the gateway
// holds it after a sync (schemas decoded from JSON, as a backend sends them).
func benchCatalog(b *testing.B, n, m int) []*backend.Inventory {
	b.Helper()
	invs := make([]*backend.Inventory, n)
	for i := range invs {
		inv := &backend.Inventory{Backend: fmt.Sprintf("b%02d", i)}
		for j := range m {
			t := echoserver.ToolDef(inv.Backend, j)
			raw, _ := json.Marshal(t.InputSchema)
			var schema map[string]any
			if err := json.Unmarshal(raw, &schema); err != nil {
				b.Fatal(err)
			}
			t.InputSchema = schema
			inv.Tools = append(inv.Tools, t)
		}
		invs[i] = inv
	}
	return invs
}

func benchListGateway(b *testing.B, pageSize int, apply bool) *Gateway {
	g := New(backend.NewSet(nil, nil), &Options{PageSize: pageSize})
	c := router.Build(benchCatalog(b, 20, 50), nil)
	if apply {
		for _, t := range c.Tools { // what sync does: encodes the schemas once, registers the tools
			t.Def = encodedSchemas(t.Def)
		}
		g.mirror.Apply(c)
	}
	g.publish(c)
	return g
}

// BenchmarkPaginate measures cutting a page out of the sorted tool list.
func BenchmarkPaginate(b *testing.B) {
	tools := router.Build(benchCatalog(b, 20, 50), nil).Tools
	key := func(t *router.Tool) string { return t.Def.Name }
	b.Run("1000/first-page", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if page, _, _ := paginate(tools, key, "", 1000); len(page) != 1000 {
				b.Fatal(len(page))
			}
		}
	})
	cursor := encodeCursor(tools[499].Def.Name)
	b.Run("1000/cursor/size-100", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if page, next, _ := paginate(tools, key, cursor, 100); len(page) != 100 || next == "" {
				b.Fatal(len(page))
			}
		}
	})
}

// BenchmarkListTools measures answering tools/list of 1,000 tools and
// encoding the result as the SDK does (encoding/json), with the schemas as
// the catalog holds them after a sync (encoded once) and, for comparison,
// as decoded maps (what every list re-encoded before).
func BenchmarkListTools(b *testing.B) {
	req := &mcp.ListToolsRequest{Params: &mcp.ListToolsParams{}}
	for _, bc := range []struct {
		name  string
		apply bool
	}{{"1000/encoded-schemas", true}, {"1000/map-schemas", false}} {
		b.Run(bc.name, func(b *testing.B) {
			g := benchListGateway(b, 1000, bc.apply)
			b.ReportAllocs()
			for b.Loop() {
				res, err := g.listTools(context.Background(), req)
				if err != nil || len(res.Tools) != 1000 {
					b.Fatal(err)
				}
				out, err := json.Marshal(res)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(out)))
			}
		})
	}
	// What answering from per-tool JSON encoded once per catalog would cost
	// (joined per request, so that a per-user filter can skip tools): the
	// floor for a gateway that writes tools/list answers itself instead of
	// going through the SDK's two encoding passes.
	b.Run("1000/pre-encoded-join", func(b *testing.B) {
		g := benchListGateway(b, 1000, true)
		chunks := make([][]byte, len(g.Catalog().Tools))
		for i, t := range g.Catalog().Tools {
			chunks[i], _ = json.Marshal(t.Def)
		}
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = append(buf[:0], `{"jsonrpc":"2.0","id":1,"result":{"tools":[`...)
			for i, c := range chunks {
				if i > 0 {
					buf = append(buf, ',')
				}
				buf = append(buf, c...)
			}
			buf = append(buf, "]}}"...)
			b.SetBytes(int64(len(buf)))
		}
	})
	b.Run("1000/page-of-100", func(b *testing.B) {
		g := benchListGateway(b, 100, true)
		cursor := encodeCursor(g.Catalog().Tools[499].Def.Name)
		req := &mcp.ListToolsRequest{Params: &mcp.ListToolsParams{Cursor: cursor}}
		b.ReportAllocs()
		for b.Loop() {
			res, err := g.listTools(context.Background(), req)
			if err != nil || len(res.Tools) != 100 {
				b.Fatal(err)
			}
			if _, err := json.Marshal(res); err != nil {
				b.Fatal(err)
			}
		}
	})
}
