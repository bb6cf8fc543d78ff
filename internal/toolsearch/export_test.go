package toolsearch

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var export = flag.String("export", "", "write the benchmark catalog (as indexed text) and the labelled tasks to this directory, for testdata/blevecompare")

// TestExport writes what testdata/blevecompare indexes with bleve:
//
//	go test ./internal/toolsearch -run TestExport -export /tmp/compare
func TestExport(t *testing.T) {
	if *export == "" {
		t.Skip("run with -export DIR")
	}
	type exported struct{ Name, Backend, Description, Params string }
	var docs []exported
	for _, tool := range loadCatalog(t).Tools {
		var p strings.Builder
		if n := schemaOf(tool.Def.InputSchema); n != nil {
			params(n, 0, func(s string, _ float64) { p.WriteString(s + "\n") })
		}
		docs = append(docs, exported{tool.Def.Name, tool.Backend, tool.Def.Description, p.String()})
	}
	var queries [][2]string
	for _, q := range loadQueries(t) {
		queries = append(queries, [2]string{q.query, strings.Join(q.want, ",")})
	}
	for name, v := range map[string]any{"docs.json": docs, "queries.json": queries} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(*export, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
