package toolsearch

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// labelled is one task of testdata/queries.txt.
type labelled struct {
	query string
	want  []string // any of these is right
	line  int
}

func loadQueries(tb testing.TB) []labelled {
	tb.Helper()
	path := filepath.Join("testdata", "queries.txt")
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []labelled
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		want, query, ok := strings.Cut(text, " | ")
		if !ok {
			tb.Fatalf("%s:%d: want <tools> | <task>", path, line)
		}
		out = append(out, labelled{query: query, want: strings.Split(want, ","), line: line})
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// quality is recall@5 (the share of tasks with a right tool among the
// first five results) and MRR@10 (the mean of 1/rank of the first right
// tool, 0 past rank 10).
type quality struct {
	recall5, mrr float64
	misses       []string
}

func (q quality) String() string { return fmt.Sprintf("recall@5 %.3f, MRR@10 %.3f", q.recall5, q.mrr) }

// measure runs every task through rank (which returns advertised names,
// best first) and scores the answers.
func measure(tb testing.TB, queries []labelled, rank func(query string) []string) quality {
	tb.Helper()
	var q quality
	for _, l := range queries {
		got := rank(l.query)
		r := 0
		for i, name := range got[:min(10, len(got))] {
			for _, w := range l.want {
				if name == w && r == 0 {
					r = i + 1
				}
			}
		}
		if r > 0 && r <= 5 {
			q.recall5++
		} else {
			q.misses = append(q.misses, fmt.Sprintf("line %d %q: want %v, got %v", l.line, l.query, l.want, got[:min(5, len(got))]))
		}
		if r > 0 {
			q.mrr += 1 / float64(r)
		}
	}
	q.recall5 /= float64(len(queries))
	q.mrr /= float64(len(queries))
	return q
}

func TestQuerySet(t *testing.T) {
	t.Parallel()
	c := loadCatalog(t)
	queries := loadQueries(t)
	if len(queries) < 100 {
		t.Errorf("%d labelled tasks, want at least 100", len(queries))
	}
	for _, l := range queries {
		for _, w := range l.want {
			if c.Tool(w) == nil {
				t.Errorf("queries.txt:%d: no tool %q in the benchmark catalog", l.line, w)
			}
		}
	}
}

func TestLexicalQuality(t *testing.T) {
	t.Parallel()
	c := loadCatalog(t)
	ix := NewIndex(c.Tools, nil)
	q := measure(t, loadQueries(t), func(query string) []string {
		var names []string
		for _, h := range ix.Lexical(query, 10, nil) {
			names = append(names, ix.Tool(h.Pos).Def.Name)
		}
		return names
	})
	t.Logf("lexical: %s", q)
	for _, m := range q.misses {
		t.Log(m)
	}
	if q.recall5 < 0.8 {
		t.Errorf("lexical recall@5 = %.3f, want >= 0.8", q.recall5)
	}
}
