package toolsearch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/vmcp-dev/vmcp/internal/router"
)

// Options configure a [Searcher]. Zero fields mean their documented
// default.
type Options struct {
	// Embedding enables hybrid ranking with an embeddings endpoint.
	// Default: nil, lexical ranking only.
	Embedding *EmbeddingOptions
	// Cache keeps tool embeddings across restarts. Default: in memory
	// only.
	Cache Cache
	// Logger receives the embedding service's state changes. Default:
	// discard.
	Logger *slog.Logger
}

// Searcher ranks tools: lexically, and when an embedding service is
// configured and answering, by a weighted sum of the lexical and the
// semantic scores (each scaled to [0, 1]). Tool embeddings are computed in the background
// ([Searcher.Run]) once per tool definition; a search embeds only its
// query. The embedding service being slow, down or wrong costs a search at
// most one bounded request, and then nothing while the breaker is open:
// searches are lexical until it answers again.
type Searcher struct {
	logger     *slog.Logger
	emb        *embedClient // nil: lexical only
	cache      Cache
	wake       chan struct{}
	flight     singleflight.Group
	queryLimit *rate.Limiter // query embedding requests, over all callers
	callers    *callerLimits // each caller's share of them
	// buildMu serializes Index calls, so that the newest index is built
	// from the one before it.
	buildMu sync.Mutex

	mu      sync.Mutex // guards the fields below
	last    *Index     // the newest index, which the embedder completes
	vecs    map[string][]float32
	queries map[string][]float32 // query embeddings, bounded by maxQueries
}

// errQueryRate: more queries than EmbeddingOptions.QueryRate, over all
// callers or past this caller's share; this search ranks lexically.
var errQueryRate = errors.New("query embedding rate exceeded")

// Search defaults.
const (
	// candidates is how many of each ranking are fused.
	candidates = 50
	maxQueries = 1024
)

// New returns a Searcher.
func New(opts *Options) *Searcher {
	var o Options
	if opts != nil {
		o = *opts
	}
	s := &Searcher{logger: o.Logger, cache: o.Cache, wake: make(chan struct{}, 1), vecs: map[string][]float32{}, queries: map[string][]float32{}}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if o.Embedding != nil {
		s.emb = newEmbedClient(*o.Embedding)
		s.queryLimit = rate.NewLimiter(rate.Limit(s.emb.opts.QueryRate), int(2*s.emb.opts.QueryRate)+1)
		s.callers = newCallerLimits(s.emb.opts.QueryRate)
		if s.cache == nil {
			s.cache = &memoryCache{vecs: map[string][]float32{}, max: DefaultCacheEntries}
		}
	}
	return s
}

// Index indexes tools (the catalog's, sorted as listed), reusing the
// analysis of tools that did not change since the previous call, and asks
// the embedder to complete it. Safe for concurrent use; searches are not
// held up while it runs.
func (s *Searcher) Index(tools []*router.Tool) *Index {
	s.buildMu.Lock()
	defer s.buildMu.Unlock()
	s.mu.Lock()
	prev := s.last
	s.mu.Unlock()
	ix := NewIndex(tools, prev)
	if s.emb != nil {
		s.keys(ix, prev)
	}
	s.mu.Lock()
	if s.emb != nil {
		// Vectors already known are attached at once; the rest come from
		// the cache or the service, in the background.
		s.attach(ix)
	}
	s.last = ix
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return ix
}

// keys sets the embedding keys of ix's tools, reusing prev's for tools
// whose analysis was reused.
func (s *Searcher) keys(ix, prev *Index) {
	known := map[*doc]string{}
	if prev != nil {
		for i, d := range prev.docs {
			known[d] = prev.embedKeys[i]
		}
	}
	ix.embedKeys = make([]string, len(ix.docs))
	for i, d := range ix.docs {
		k, ok := known[d]
		if !ok {
			k = s.embedKey(d.text)
		}
		ix.embedKeys[i] = k
	}
}

// Search returns the best limit tools for query among those allow accepts
// (nil accepts all), best first. It never fails: without an answer from
// the embedding service it ranks lexically.
func (s *Searcher) Search(ctx context.Context, ix *Index, query string, limit int, allow func(int) bool) []Hit {
	if limit <= 0 {
		return nil
	}
	n := max(limit, candidates)
	vecs := ix.vectors.Load()
	if s.emb == nil || vecs == nil || strings.TrimSpace(query) == "" {
		return ix.Lexical(query, limit, allow)
	}
	qv, ok := s.queryVector(ctx, query, vecs.dims)
	if !ok {
		return ix.Lexical(query, limit, allow)
	}
	lex := ix.lexical(query, n, allow, false)
	sem := ix.semantic(qv, vecs, n, allow)
	hits := fuse(lex, sem, s.emb.opts.SemanticWeight, limit)
	if pos, ok := ix.byName[strings.TrimSpace(query)]; ok && (allow == nil || allow(pos)) {
		hits = exactFirst(hits, pos, limit)
	}
	return hits
}

// queryVector embeds a query (remembered, and collapsed with the same
// query in flight). False if the service did not answer well, which
// includes a vector of other dimensions than the tools'.
func (s *Searcher) queryVector(ctx context.Context, query string, dims int) ([]float32, bool) {
	s.mu.Lock()
	v, ok := s.queries[query]
	s.mu.Unlock()
	if ok {
		return v, true
	}
	res, err, _ := s.flight.Do(strconv.Itoa(dims)+"\x00"+query, func() (any, error) {
		if !s.callers.allow(callerFrom(ctx)) || !s.queryLimit.Allow() {
			return nil, errQueryRate
		}
		vs, err := s.emb.embed(context.WithoutCancel(ctx), []string{query})
		if err == nil && len(vs[0]) != dims {
			s.emb.breaker.failure()
			err = fmt.Errorf("the query's embedding has %d dimensions, the tools' %d", len(vs[0]), dims)
		}
		s.reportBreaker(err)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		if len(s.queries) >= maxQueries {
			clear(s.queries)
		}
		s.queries[query] = vs[0]
		s.mu.Unlock()
		return vs[0], nil
	})
	if err != nil {
		return nil, false
	}
	return res.([]float32), true
}

// reportBreaker logs when the service stops or starts answering: one line
// per change, not one per search.
func (s *Searcher) reportBreaker(err error) {
	changed, open, failures := s.emb.breaker.changed()
	if !changed {
		return
	}
	if open {
		s.logger.Warn("embedding service failed: tool search is lexical until it answers again", "error", err, "failures", failures)
	} else {
		s.logger.Info("embedding service answers again: tool search is hybrid")
	}
}

// Run computes the embeddings of indexed tools in the background, until
// ctx is done: from the cache first, then from the service in batches. It
// returns at once without an embedding service.
func (s *Searcher) Run(ctx context.Context) {
	if s.emb == nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		s.fill(ctx)
	}
}

// fill completes the newest index's vectors, until done, ctx ends, or a
// newer index arrives (then the loop in Run starts over with it).
func (s *Searcher) fill(ctx context.Context) {
	s.mu.Lock()
	ix := s.last
	missing := s.missing(ix)
	s.mu.Unlock()
	if len(missing) == 0 {
		return
	}
	keys := make([]string, 0, len(missing))
	for k := range missing {
		keys = append(keys, k)
	}
	if got, err := s.cache.Load(ctx, keys); err != nil {
		s.logger.Warn("reading the embedding cache failed", "error", err)
	} else if len(got) > 0 {
		s.learn(ix, got)
		for k := range got {
			delete(missing, k)
		}
	}
	pending := make([]string, 0, len(missing))
	for k := range missing {
		pending = append(pending, k)
	}
	for len(pending) > 0 {
		if !s.waitForService(ctx) {
			return
		}
		batch := pending[:min(len(pending), s.emb.opts.BatchSize)]
		texts := make([]string, len(batch))
		for i, k := range batch {
			texts[i] = missing[k]
		}
		vs, err := s.emb.embed(ctx, texts)
		s.reportBreaker(err)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			continue // the breaker is open now: wait, then try again
		}
		got := make(map[string][]float32, len(batch))
		for i, k := range batch {
			got[k] = vs[i]
		}
		if err := s.cache.Store(ctx, got); err != nil {
			s.logger.Warn("writing the embedding cache failed", "error", err)
		}
		s.learn(ix, got)
		pending = pending[len(batch):]
		if s.superseded(ix) {
			return
		}
	}
}

// waitForService waits until the breaker may let a request through, or a
// newer index arrives (false: start over), or ctx ends (false).
func (s *Searcher) waitForService(ctx context.Context) bool {
	for {
		d := s.emb.breaker.wait()
		if d <= 0 {
			return true
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-s.wake:
			t.Stop()
			// A newer index: requeue the wake-up for Run and start over.
			select {
			case s.wake <- struct{}{}:
			default:
			}
			return false
		case <-t.C:
		}
	}
}

func (s *Searcher) superseded(ix *Index) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last != ix
}

// missing returns the embedding keys of ix's tools with no vector yet,
// with the text to embed. The caller holds s.mu.
func (s *Searcher) missing(ix *Index) map[string]string {
	out := map[string]string{}
	for i, d := range ix.docs {
		k := ix.embedKeys[i]
		if _, ok := s.vecs[k]; !ok {
			out[k] = d.text
		}
	}
	return out
}

// learn keeps new vectors and attaches them to ix (and to the newest
// index, if another).
func (s *Searcher) learn(ix *Index, got map[string][]float32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range got {
		s.vecs[k] = v
	}
	s.attach(ix)
	if s.last != ix {
		s.attach(s.last)
	}
	s.prune()
}

// attach gives ix the vectors known for its tools. The caller holds s.mu.
func (s *Searcher) attach(ix *Index) {
	vt := &vectorTable{byPos: make([][]float32, len(ix.docs))}
	for i, k := range ix.embedKeys {
		v := s.vecs[k]
		if v == nil {
			continue
		}
		if vt.dims == 0 {
			vt.dims = len(v)
		}
		if len(v) == vt.dims { // another dimension: a model change mid-way; left out
			vt.byPos[i] = v
		}
	}
	if vt.dims > 0 {
		ix.vectors.Store(vt)
	}
}

// prune forgets vectors of tools no longer in the newest index, keeping
// memory bounded by the catalog (the cache still has them). The caller
// holds s.mu.
func (s *Searcher) prune() {
	if len(s.vecs) <= 2*len(s.last.docs)+64 {
		return
	}
	keep := make(map[string][]float32, len(s.last.docs))
	for _, k := range s.last.embedKeys {
		if v, ok := s.vecs[k]; ok {
			keep[k] = v
		}
	}
	s.vecs = keep
}

// embedKey is the cache key of a tool's text under this model.
func (s *Searcher) embedKey(text string) string {
	h := sha256.New()
	h.Write([]byte("vmcp-toolsearch-1\x00"))
	h.Write([]byte(s.emb.opts.Model))
	h.Write([]byte{0})
	h.Write([]byte(text))
	return hex.EncodeToString(h.Sum(nil))
}

// vectorTable holds the unit vectors of an index's tools by position (nil
// where not known yet).
type vectorTable struct {
	byPos [][]float32
	dims  int
}

// semantic ranks the allowed tools with a vector by cosine similarity to
// q (all vectors are unit length: a dot product).
func (ix *Index) semantic(q []float32, vt *vectorTable, limit int, allow func(int) bool) []Hit {
	scores := make([]float64, len(vt.byPos))
	for i, v := range vt.byPos {
		if v == nil {
			continue
		}
		var dot float32
		for j, x := range v {
			dot += x * q[j]
		}
		// Shifted to be positive (topK keeps only positive scores).
		scores[i] = float64(dot) + 2
	}
	return topK(scores, limit, allow)
}

// fuse merges two rankings by a weighted sum of their scores, each scaled
// to [0, 1] over its candidates (min-max), and returns the best limit. A
// tool in only one ranking gets 0 from the other.
func fuse(lex, sem []Hit, semanticWeight float64, limit int) []Hit {
	score := map[int]float64{}
	add := func(hits []Hit, w float64) {
		if len(hits) == 0 {
			return
		}
		hi, lo := hits[0].Score, hits[len(hits)-1].Score
		for _, h := range hits {
			v := 1.0
			if hi > lo {
				v = (h.Score - lo) / (hi - lo)
			}
			score[h.Pos] += w * v
		}
	}
	add(lex, 1-semanticWeight)
	add(sem, semanticWeight)
	hits := make([]Hit, 0, len(score))
	for pos, sc := range score {
		hits = append(hits, Hit{Pos: pos, Score: sc})
	}
	sortHits(hits)
	return hits[:min(limit, len(hits))]
}

func sortHits(hits []Hit) {
	slices.SortFunc(hits, func(a, b Hit) int {
		if better(a, b) {
			return -1
		}
		if better(b, a) {
			return 1
		}
		return 0
	})
}

// exactFirst puts the tool at pos first.
func exactFirst(hits []Hit, pos, limit int) []Hit {
	top := 1.0
	if len(hits) > 0 {
		top += hits[0].Score
	}
	out := append(make([]Hit, 0, limit), Hit{Pos: pos, Score: top})
	for _, h := range hits {
		if h.Pos != pos && len(out) < limit {
			out = append(out, h)
		}
	}
	return out
}
