package toolsearch

import (
	"encoding/json"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/router"
)

func testTool(backend, name, desc string, params ...string) *router.Tool {
	props := map[string]any{}
	for _, p := range params {
		n, d, _ := strings.Cut(p, ":")
		props[n] = map[string]any{"type": "string", "description": d}
	}
	schema, _ := json.Marshal(map[string]any{"type": "object", "properties": props})
	return &router.Tool{Def: &mcp.Tool{Name: backend + "_" + name, Description: desc, InputSchema: json.RawMessage(schema)}, Backend: backend, Original: name}
}

// TestLexicalAllow: the caller's filter applies inside the ranking. A
// denied tool never comes back, even searched by its exact name, and the
// allowed ones fill the results up to the limit (a top-k cut before the
// filter would leave them short).
func TestLexicalAllow(t *testing.T) {
	t.Parallel()
	c := loadCatalog(t)
	ix := NewIndex(c.Tools, nil)
	denied := ix.byName["github_create_issue"]
	allow := func(i int) bool { return i != denied && !strings.HasPrefix(ix.Tool(i).Def.Name, "github_") }

	if got := names(ix, ix.Lexical("github_create_issue", 5, allow)); slices.Contains(got, "github_create_issue") {
		t.Errorf("searched by its exact name, the denied tool came back: %v", got)
	}
	if got := names(ix, ix.Lexical("github_create_issue", 5, nil)); len(got) == 0 || got[0] != "github_create_issue" {
		t.Errorf("allowed, a tool searched by its exact name comes first: got %v", got)
	}
	const query = "create a new issue in a GitHub repository"
	got := ix.Lexical(query, 5, allow)
	if len(got) != 5 {
		t.Fatalf("%d results, want 5 (enough allowed tools match)", len(got))
	}
	for _, h := range got {
		if !allow(h.Pos) {
			t.Errorf("a denied tool came back: %s", ix.Tool(h.Pos).Def.Name)
		}
	}
	// The same query cut to 5 before filtering would leave fewer: the
	// filter must not be applied after the cut.
	var post int
	for _, h := range ix.Lexical(query, 5, nil) {
		if allow(h.Pos) {
			post++
		}
	}
	if post >= 5 {
		t.Fatalf("the query's unfiltered top 5 has %d allowed tools: it does not tell the two designs apart", post)
	}
}

// TestIndexIncremental: a new index reuses the analysis of unchanged
// tools, and sees added, changed and removed ones.
func TestIndexIncremental(t *testing.T) {
	t.Parallel()
	a := testTool("notes", "add", "Add a note to the notebook.", "text:the note")
	b := testTool("notes", "list", "List the notes.")
	ix1 := NewIndex([]*router.Tool{a, b}, nil)
	if got := names(ix1, ix1.Lexical("weather forecast", 5, nil)); len(got) != 0 {
		t.Fatalf("no tool is about the weather yet: %v", got)
	}
	changed := testTool("notes", "list", "List the notes, with the weather forecast of the day they were written.")
	added := testTool("weather", "forecast", "Get the weather forecast for a city.", "city:the city")
	ix2 := NewIndex([]*router.Tool{a, changed, added}, ix1)
	if ix2.docs[0] != ix1.docs[0] {
		t.Error("an unchanged tool was analyzed again")
	}
	if ix2.docs[1] == ix1.docs[1] {
		t.Error("a changed tool kept its old analysis")
	}
	if diff := cmp.Diff([]string{"weather_forecast", "notes_list"}, names(ix2, ix2.Lexical("weather forecast", 5, nil))); diff != "" {
		t.Errorf("after the change (-want +got):\n%s", diff)
	}
	ix3 := NewIndex([]*router.Tool{a, b}, ix2)
	if got := names(ix3, ix3.Lexical("weather forecast", 5, nil)); len(got) != 0 {
		t.Errorf("removed tools still found: %v", got)
	}
}

// TestLexicalMatchesReference compares the index's ranking with BM25
// computed the plain way, document by document, over the benchmark
// catalog and the labelled tasks.
func TestLexicalMatchesReference(t *testing.T) {
	t.Parallel()
	ix := NewIndex(loadCatalog(t).Tools, nil)
	for _, l := range loadQueries(t) {
		want := referenceBM25(ix, l.query, 10)
		got := ix.lexical(l.query, 10, nil, false)
		if len(got) != len(want) {
			t.Fatalf("%q: %d hits, reference %d", l.query, len(got), len(want))
		}
		for i := range got {
			if got[i].Pos != want[i].Pos || math.Abs(got[i].Score-want[i].Score) > 1e-9 {
				t.Fatalf("%q: hit %d is %s (%.6f), reference %s (%.6f)", l.query, i,
					ix.Tool(got[i].Pos).Def.Name, got[i].Score, ix.Tool(want[i].Pos).Def.Name, want[i].Score)
			}
		}
	}
}

// referenceBM25 scores every document for every query term (and the
// indexed terms it is a prefix of) straight from the documents' terms.
func referenceBM25(ix *Index, query string, limit int) []Hit {
	n := float64(len(ix.docs))
	df := map[string]float64{}
	var vocab []string
	for _, d := range ix.docs {
		for _, tf := range d.terms {
			if df[tf.term] == 0 {
				vocab = append(vocab, tf.term)
			}
			df[tf.term]++
		}
	}
	qterms := terms(nil, query)
	slices.Sort(qterms)
	qterms = slices.Compact(qterms)
	type match struct {
		term string
		w    float64
	}
	var matches []match
	for _, qt := range qterms {
		for _, term := range vocab {
			switch {
			case term == qt:
				matches = append(matches, match{term, 1})
			case len(qt) >= 3 && strings.HasPrefix(term, qt):
				matches = append(matches, match{term, weightPrefix})
			}
		}
	}
	var hits []Hit
	for pos, d := range ix.docs {
		var score float64
		for _, m := range matches {
			i := sort.Search(len(d.terms), func(i int) bool { return d.terms[i].term >= m.term })
			if i == len(d.terms) || d.terms[i].term != m.term {
				continue
			}
			tf := float64(d.terms[i].tf)
			idf := m.w * math.Log(1+(n-df[m.term]+0.5)/(df[m.term]+0.5))
			score += idf * tf * (bm25K1 + 1) / (tf + bm25K1*(1-bm25B+bm25B*d.length/ix.avgLen))
		}
		if score > 0 {
			hits = append(hits, Hit{Pos: pos, Score: score})
		}
	}
	sortHits(hits)
	return hits[:min(limit, len(hits))]
}

// TestAnalyzeBounds: a tool definition cannot make the index grow past
// its bounds, however large its schema.
func TestAnalyzeBounds(t *testing.T) {
	t.Parallel()
	var params []string
	for i := 0; i < 5000; i++ {
		params = append(params, "param"+strings.Repeat("x", i%30)+":"+strings.Repeat("word ", 20))
	}
	huge := testTool("evil", "tool", strings.Repeat("description ", 100_000), params...)
	ix := NewIndex([]*router.Tool{huge}, nil)
	if n := len(ix.docs[0].text); n > maxDocText {
		t.Errorf("analyzed text is %d bytes, bound %d", n, maxDocText)
	}
}
