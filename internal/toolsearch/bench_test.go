package toolsearch

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"
)

// BenchmarkLexical is one lexical search of the 1,000-tool benchmark
// catalog, cycling through the labelled tasks, with half the tools
// allowed (the filter is applied inside the ranking). It reports the p50
// and p99 of single searches besides the mean.
func BenchmarkLexical(b *testing.B) {
	ix := NewIndex(loadCatalog(b).Tools, nil)
	queries := loadQueries(b)
	allow := func(i int) bool { return i%2 == 0 }
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		ix.Lexical(queries[i%len(queries)].query, 5, allow)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkIndexBuild indexes the catalog from scratch.
func BenchmarkIndexBuild(b *testing.B) {
	tools := loadCatalog(b).Tools
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var ix *Index
	for i := 0; i < b.N; i++ {
		ix = NewIndex(tools, nil)
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1024, "heap-KiB")
	runtime.KeepAlive(ix)
}

// BenchmarkIndexUpdate rebuilds the index after one tool changed: only
// that tool is analyzed again.
func BenchmarkIndexUpdate(b *testing.B) {
	tools := loadCatalog(b).Tools
	prev := NewIndex(tools, nil)
	changed := slices.Clone(tools)
	t := *changed[500]
	def := *t.Def
	def.Description += " (changed)"
	t.Def = &def
	changed[500] = &t
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		NewIndex(changed, prev)
	}
}

// BenchmarkHybrid is one hybrid search of the benchmark catalog with the
// test embedding server, the query's embedding already known (the cost
// vmcp adds; the embedding request itself is the service's), half the
// tools allowed.
func BenchmarkHybrid(b *testing.B) {
	srv := newEmbedServer(b)
	s := startSearcher(b, srv, nil, nil)
	ix := s.Index(loadCatalog(b).Tools)
	waitEmbedded(b, ix)
	queries := loadQueries(b)
	allow := func(i int) bool { return i%2 == 0 }
	ctx := context.Background()
	for _, q := range queries { // embed the queries once
		s.Search(ctx, ix, q.query, 5, allow)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		s.Search(ctx, ix, queries[i%len(queries)].query, 5, allow)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}
