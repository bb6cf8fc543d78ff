// Command blevecompare measures bleve (v2.6.3, in memory, English analyzer)
// on the tool search benchmark: index build time and heap, search latency
// without and with an authorization filter (a DocIDQuery of the allowed
// tools), and recall@5 and MRR@10 on the labelled tasks. It is a separate
// module so that bleve is no dependency of vmcp (docs/toolsearch.md):
//
//	go test ./internal/toolsearch -run TestExport -export /tmp/compare
//	cd internal/toolsearch/testdata/blevecompare && go run . /tmp/compare
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search/query"
)

type doc struct{ Name, Backend, Description, Params string }

func main() {
	dir := os.Args[1]
	var docs []doc
	var queries [][2]string
	read(filepath.Join(dir, "docs.json"), &docs)
	read(filepath.Join(dir, "queries.json"), &queries)

	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	mapping := bleve.NewIndexMapping()
	mapping.DefaultAnalyzer = "en"
	start := time.Now()
	idx, err := bleve.NewMemOnly(mapping)
	check(err)
	batch := idx.NewBatch()
	for i, d := range docs {
		// Names split at _ and - as vmcp's analyzer splits them.
		name := strings.NewReplacer("_", " ", "-", " ").Replace(d.Name)
		check(batch.Index(fmt.Sprint(i), map[string]any{"name": name, "backend": d.Backend, "description": d.Description, "params": d.Params}))
	}
	check(idx.Batch(batch))
	build := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&m1)

	// The same field weights as vmcp's index.
	match := func(q string) query.Query {
		var qs []query.Query
		for field, boost := range map[string]float64{"name": 3, "backend": 1.5, "description": 1, "params": 0.75} {
			m := bleve.NewMatchQuery(q)
			m.SetField(field)
			m.SetBoost(boost)
			qs = append(qs, m)
		}
		return bleve.NewDisjunctionQuery(qs...)
	}
	var allowed []string
	for i := range docs {
		if i%2 == 0 {
			allowed = append(allowed, fmt.Sprint(i))
		}
	}
	var recall, mrr float64
	var plain, filtered []time.Duration
	for round := range 5 {
		for _, q := range queries {
			t := time.Now()
			res, err := idx.Search(bleve.NewSearchRequestOptions(match(q[0]), 10, 0, false))
			plain = append(plain, time.Since(t))
			check(err)
			t = time.Now()
			_, err = idx.Search(bleve.NewSearchRequestOptions(bleve.NewConjunctionQuery(match(q[0]), bleve.NewDocIDQuery(allowed)), 5, 0, false))
			filtered = append(filtered, time.Since(t))
			check(err)
			if round > 0 {
				continue
			}
			want := strings.Split(q[1], ",")
			for rank, h := range res.Hits {
				var i int
				fmt.Sscan(h.ID, &i)
				if slices.Contains(want, docs[i].Name) {
					if rank < 5 {
						recall++
					}
					mrr += 1 / float64(rank+1)
					break
				}
			}
		}
	}
	slices.Sort(plain)
	slices.Sort(filtered)
	n := float64(len(queries))
	fmt.Printf("bleve: %d tools indexed in %v, heap %d KiB; search p50 %v, filtered p50 %v; recall@5 %.3f, MRR@10 %.3f\n",
		len(docs), build.Round(time.Millisecond), (m1.HeapAlloc-m0.HeapAlloc)/1024, plain[len(plain)/2], filtered[len(filtered)/2], recall/n, mrr/n)
}

func read(path string, v any) {
	b, err := os.ReadFile(path)
	check(err)
	check(json.Unmarshal(b, v))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
