package toolsearch

import (
	"cmp"
	"container/heap"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/router"
)

// Field weights: a word in a tool's name says more about what the tool does
// than one in a parameter's description. A term's frequency in a document
// is the weighted sum of its occurrences (BM25F with one length norm).
const (
	weightName      = 3
	weightTitle     = 2
	weightBackend   = 1.5
	weightDesc      = 1
	weightParamName = 1
	weightParamDesc = 0.5
	// weightPrefix scales a query word's matches on longer indexed words
	// it is a prefix of ("repo" on "repository").
	weightPrefix = 0.5
)

// BM25 parameters (the usual defaults).
const (
	bm25K1 = 1.2
	bm25B  = 0.75
)

// Bounds on what one tool definition can put in the index: a backend may
// send anything, and a huge schema must not cost more than a few pages.
const (
	maxDocText     = 16 << 10 // bytes of text analyzed per tool
	maxSchemaDepth = 4
	maxStems       = 100_000 // words remembered across rebuilds
)

// doc is one tool as analyzed: it depends only on the tool's definition
// and backend, so an unchanged tool keeps its doc across catalogs.
type doc struct {
	key    string     // hash of the definition and backend
	terms  []termFreq // sorted by term
	length float64    // weighted number of terms
	text   string     // the text embedded for semantic search
}

type termFreq struct {
	term string
	tf   float32
}

type posting struct {
	pos int32 // position of the tool in the index
	tf  float32
}

// Index is a lexical index over a list of tools, immutable once built. A
// tool is identified by its position in the list the index was built from.
type Index struct {
	tools    []*router.Tool
	docs     []*doc
	byName   map[string]int
	postings map[string][]posting
	vocab    []string // sorted, for prefix matches
	avgLen   float64
	stems    stems // the stems of the indexed words; read-only once built

	// vectors are the tools' embeddings, attached by a Searcher as they
	// become known (nil until then); embedKeys are their cache keys, set
	// by the Searcher before the index is shared.
	vectors   atomic.Pointer[vectorTable]
	embedKeys []string
}

// NewIndex indexes tools. Tools whose definition did not change since prev
// (which may be nil) are not analyzed again.
func NewIndex(tools []*router.Tool, prev *Index) *Index {
	known := map[string]*doc{}
	if prev != nil {
		for _, d := range prev.docs {
			known[d.key] = d
		}
	}
	ix := &Index{tools: tools, docs: make([]*doc, len(tools)), byName: make(map[string]int, len(tools)), postings: map[string][]posting{}, stems: newStems()}
	if prev != nil && len(prev.stems.m) < maxStems {
		maps.Copy(ix.stems.m, prev.stems.m) // else start afresh: words of tools long gone are dropped
	}
	var total float64
	for i, t := range tools {
		key := definitionKey(t)
		d := known[key]
		if d == nil {
			d = analyze(t, key, ix.stems)
			known[key] = d
		}
		ix.docs[i] = d
		ix.byName[t.Def.Name] = i
		total += d.length
		for _, tf := range d.terms {
			ix.postings[tf.term] = append(ix.postings[tf.term], posting{pos: int32(i), tf: tf.tf})
		}
	}
	if len(tools) > 0 {
		ix.avgLen = total / float64(len(tools))
	}
	ix.vocab = make([]string, 0, len(ix.postings))
	for term := range ix.postings {
		ix.vocab = append(ix.vocab, term)
	}
	slices.Sort(ix.vocab)
	return ix
}

// Len is the number of tools indexed.
func (ix *Index) Len() int { return len(ix.tools) }

// Tool returns the tool at position pos.
func (ix *Index) Tool(pos int) *router.Tool { return ix.tools[pos] }

// definitionKey identifies a tool's definition: everything about it that
// is indexed or embedded, and its backend.
func definitionKey(t *router.Tool) string {
	h := sha256.New()
	def := t.Def
	for _, s := range []string{t.Backend, def.Name, def.Title, annotationsTitle(def), def.Description} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	switch s := def.InputSchema.(type) {
	case nil:
	case json.RawMessage:
		h.Write(s)
	default:
		b, _ := json.Marshal(s) // a schema that cannot be encoded is not indexed either
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func annotationsTitle(t *mcp.Tool) string {
	if t.Annotations == nil || t.Annotations.Title == t.Title {
		return ""
	}
	return t.Annotations.Title
}

// schemaNode is the part of a JSON schema that describes parameters.
type schemaNode struct {
	Description string                 `json:"description"`
	Properties  map[string]*schemaNode `json:"properties"`
	Items       json.RawMessage        `json:"items"`
}

// analyze turns a tool into a doc: the weighted terms of its fields and
// the text that represents it for embeddings.
func analyze(t *router.Tool, key string, st stems) *doc {
	var text strings.Builder
	counts := map[string]float64{}
	var length float64
	add := func(s string, w float64) {
		if text.Len() > 0 && text.Len() < maxDocText {
			text.WriteString("\n")
		}
		if s == "" || text.Len() >= maxDocText {
			return
		}
		if room := maxDocText - text.Len(); len(s) > room {
			s = s[:room]
		}
		text.WriteString(s)
		for _, term := range st.terms(nil, s) {
			counts[term] += w
			length += w
		}
	}
	def := t.Def
	add(def.Name, weightName)
	add(def.Title, weightTitle)
	add(annotationsTitle(def), weightTitle)
	add(t.Backend, weightBackend)
	add(def.Description, weightDesc)
	if root := schemaOf(def.InputSchema); root != nil {
		params(root, 0, add)
	}
	d := &doc{key: key, length: length, text: text.String(), terms: make([]termFreq, 0, len(counts))}
	for term, n := range counts {
		d.terms = append(d.terms, termFreq{term: term, tf: float32(n)})
	}
	slices.SortFunc(d.terms, func(a, b termFreq) int { return cmp.Compare(a.term, b.term) })
	return d
}

// params adds the names and descriptions of a schema's properties, and of
// the properties of nested objects and array items, in a stable order.
func params(n *schemaNode, depth int, add func(string, float64)) {
	if depth >= maxSchemaDepth {
		return
	}
	names := make([]string, 0, len(n.Properties))
	for name := range n.Properties {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p := n.Properties[name]
		add(name, weightParamName)
		if p == nil {
			continue
		}
		add(p.Description, weightParamDesc)
		params(p, depth+1, add)
	}
	if len(n.Items) > 0 {
		var items schemaNode
		if json.Unmarshal(n.Items, &items) == nil { // a tuple (an array of schemas) is skipped
			params(&items, depth+1, add)
		}
	}
}

func schemaOf(s any) *schemaNode {
	var raw []byte
	switch v := s.(type) {
	case nil:
		return nil
	case json.RawMessage:
		raw = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil
		}
		raw = b
	}
	var n schemaNode
	if json.Unmarshal(raw, &n) != nil {
		return nil
	}
	return &n
}

// Hit is one search result: the tool's position in the index and its
// score (higher is better; comparable only within one search).
type Hit struct {
	Pos   int
	Score float64
}

var scoresPool = sync.Pool{New: func() any { return new([]float64) }}

// Lexical ranks the tools allowed by allow (nil allows all) against query
// with BM25 and returns the best limit of them, best first. Tools with no
// query term are not returned. A query equal to a tool's name puts that
// tool first. The filter applies before the cut, so a caller who may see
// few tools still gets up to limit of them.
func (ix *Index) Lexical(query string, limit int, allow func(int) bool) []Hit {
	return ix.lexical(query, limit, allow, true)
}

// lexical is Lexical, with the exact name first only if exact.
func (ix *Index) lexical(query string, limit int, allow func(int) bool, exact bool) []Hit {
	if limit <= 0 || len(ix.tools) == 0 {
		return nil
	}
	sp := scoresPool.Get().(*[]float64)
	defer scoresPool.Put(sp)
	scores := slices.Grow((*sp)[:0], len(ix.tools))[:len(ix.tools)]
	clear(scores)
	*sp = scores
	ix.score(scores, query)
	if pos, ok := ix.byName[strings.TrimSpace(query)]; exact && ok && scores[pos] > 0 {
		scores[pos] += 1e6 // the exact name: first, if allowed
	}
	return topK(scores, limit, allow)
}

// score adds the BM25 score of every tool for query to scores.
func (ix *Index) score(scores []float64, query string) {
	qterms := ix.stems.lookup().terms(nil, query)
	slices.Sort(qterms)
	qterms = slices.Compact(qterms)
	n := float64(len(ix.tools))
	for _, qt := range qterms {
		ix.scoreTerm(scores, qt, 1, n)
		if len(qt) < 3 {
			continue
		}
		// Longer words this one is a prefix of.
		i := sort.SearchStrings(ix.vocab, qt)
		for ; i < len(ix.vocab) && strings.HasPrefix(ix.vocab[i], qt); i++ {
			if ix.vocab[i] != qt {
				ix.scoreTerm(scores, ix.vocab[i], weightPrefix, n)
			}
		}
	}
}

func (ix *Index) scoreTerm(scores []float64, term string, weight, n float64) {
	ps := ix.postings[term]
	if len(ps) == 0 {
		return
	}
	df := float64(len(ps))
	idf := weight * math.Log(1+(n-df+0.5)/(df+0.5))
	for _, p := range ps {
		tf := float64(p.tf)
		norm := bm25K1 * (1 - bm25B + bm25B*ix.docs[p.pos].length/ix.avgLen)
		scores[p.pos] += idf * tf * (bm25K1 + 1) / (tf + norm)
	}
}

// topK returns the limit positions with the highest positive scores among
// those allowed, best first; ties go to the earlier position (the catalog
// is sorted by name).
func topK(scores []float64, limit int, allow func(int) bool) []Hit {
	h := make(hitHeap, 0, limit+1)
	for i, s := range scores {
		if s <= 0 {
			continue
		}
		if len(h) == limit && !better(Hit{i, s}, h[0]) {
			continue
		}
		if allow != nil && !allow(i) {
			continue
		}
		heap.Push(&h, Hit{i, s})
		if len(h) > limit {
			heap.Pop(&h)
		}
	}
	out := make([]Hit, len(h))
	for i := len(h) - 1; i >= 0; i-- {
		out[i] = heap.Pop(&h).(Hit)
	}
	return out
}

func better(a, b Hit) bool {
	if a.Score != b.Score {
		return a.Score > b.Score
	}
	return a.Pos < b.Pos
}

// hitHeap is a min-heap: the worst hit kept is at the top.
type hitHeap []Hit

func (h hitHeap) Len() int           { return len(h) }
func (h hitHeap) Less(i, j int) bool { return better(h[j], h[i]) }
func (h hitHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *hitHeap) Push(x any)        { *h = append(*h, x.(Hit)) }
func (h *hitHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
