package toolsearch

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/testsupport/logbuf"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/time/rate"
)

// startSearcher returns a Searcher using srv (nil: lexical only), running
// until the test ends. setup, if not nil, changes it before it runs.
func startSearcher(t testing.TB, srv *embedServer, cache Cache, logger *slog.Logger, setup ...func(*Searcher)) *Searcher {
	t.Helper()
	var emb *EmbeddingOptions
	if srv != nil {
		emb = &EmbeddingOptions{URL: srv.URL + "/v1/embeddings", Model: "test-model", Headers: map[string]string{"Authorization": "Bearer test-key"}}
	}
	s := New(&Options{Embedding: emb, Cache: cache, Logger: logger})
	if s.emb != nil {
		s.queryLimit = rate.NewLimiter(rate.Inf, 0) // tests search faster than any rate; TestQueryRate sets one
		s.callers.limit = rate.Inf
		s.emb.opts.Timeout = time.Minute // a loaded machine is no failing service; failure tests set theirs
	}
	for _, f := range setup {
		f(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return s
}

// waitEmbedded waits until every tool of ix has its vector.
func waitEmbedded(t testing.TB, ix *Index) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		vt := ix.vectors.Load()
		known := 0
		if vt != nil {
			for _, v := range vt.byPos {
				if v != nil {
					known++
				}
			}
		}
		if known == ix.Len() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 2 minutes, %d of %d tools have an embedding", known, ix.Len())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func names(ix *Index, hits []Hit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = ix.Tool(h.Pos).Def.Name
	}
	return out
}

func TestHybridQuality(t *testing.T) {
	t.Parallel()
	srv := newEmbedServer(t)
	s := startSearcher(t, srv, nil, nil)
	ix := s.Index(loadCatalog(t).Tools)
	waitEmbedded(t, ix)
	ctx := context.Background()
	q := measure(t, loadQueries(t), func(query string) []string { return names(ix, s.Search(ctx, ix, query, 10, nil)) })
	t.Logf("hybrid: %s", q)
	for _, m := range q.misses {
		t.Log(m)
	}
	if q.recall5 < 0.9 {
		t.Errorf("hybrid recall@5 = %.3f, want >= 0.9", q.recall5)
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer = logbuf.Buffer

// TestEmbeddingServiceFailures: whatever the service does wrong, a search
// answers with the lexical ranking, says so once in the log, and while the
// breaker is open costs no request.
func TestEmbeddingServiceFailures(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"down", "slow", "garbage-json", "garbage-count", "garbage-dims", "garbage-zero", "garbage-strings"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			srv := newEmbedServer(t)
			var logs syncBuffer
			clock := &testClock{now: time.Now()} // stands still: the breaker stays open
			s := startSearcher(t, srv, nil, slog.New(slog.NewTextHandler(&logs, nil)), func(s *Searcher) {
				s.emb.opts.Timeout = time.Second // "slow" answers after the client's timeout
				s.emb.breaker.now = clock.Now
			})
			ix := s.Index(loadCatalog(t).Tools[:200])
			waitEmbedded(t, ix)
			srv.setMode(mode)
			ctx := context.Background()
			const query = "start a long running operation that reports progress"
			want := names(ix, ix.Lexical(query, 5, nil))
			if got := names(ix, s.Search(ctx, ix, query, 5, nil)); !cmp.Equal(got, want) {
				t.Errorf("with the service %s, Search = %v, want the lexical ranking %v", mode, got, want)
			}
			before := srv.requests.Load()
			for _, q := range []string{"read a file", "create a branch", "list the channels"} {
				if got, want := names(ix, s.Search(ctx, ix, q, 5, nil)), names(ix, ix.Lexical(q, 5, nil)); !cmp.Equal(got, want) {
					t.Errorf("Search(%q) = %v, want the lexical ranking %v", q, got, want)
				}
			}
			if n := srv.requests.Load() - before; n != 0 {
				t.Errorf("%d requests to the service while its breaker is open, want 0", n)
			}
			if n := strings.Count(logs.String(), "tool search is lexical"); n != 1 {
				t.Errorf("%d log lines saying search is lexical, want 1:\n%s", n, logs.String())
			}
		})
	}
}

// TestEmbeddingServiceRecovers: once the breaker lets a trial through and
// the service answers, search is hybrid again.
func TestEmbeddingServiceRecovers(t *testing.T) {
	t.Parallel()
	srv := newEmbedServer(t)
	var logs syncBuffer
	clock := &testClock{now: time.Now()}
	s := startSearcher(t, srv, nil, slog.New(slog.NewTextHandler(&logs, nil)), func(s *Searcher) { s.emb.breaker.now = clock.Now })
	ix := s.Index(loadCatalog(t).Tools)
	waitEmbedded(t, ix)
	ctx := context.Background()
	const query = "will it rain in Oslo this weekend"
	hybrid := names(ix, s.Search(ctx, ix, query, 5, nil))
	lexical := names(ix, ix.Lexical(query, 5, nil))
	if cmp.Equal(hybrid, lexical) {
		t.Fatalf("hybrid and lexical rankings of %q are the same (%v): pick a query that tells them apart", query, hybrid)
	}
	srv.setMode("down")
	if got := names(ix, s.Search(ctx, ix, "another query", 5, nil)); !cmp.Equal(got, names(ix, ix.Lexical("another query", 5, nil))) {
		t.Errorf("with the service down: %v, want the lexical ranking", got)
	}
	srv.setMode("ok")
	s.mu.Lock()
	clear(s.queries) // the query's vector was remembered
	s.mu.Unlock()
	if got := names(ix, s.Search(ctx, ix, query, 5, nil)); !cmp.Equal(got, lexical) {
		t.Errorf("before the backoff passed: %v, want the lexical ranking %v", got, lexical)
	}
	clock.Add(breakerMin)
	if got := names(ix, s.Search(ctx, ix, query, 5, nil)); !cmp.Equal(got, hybrid) {
		t.Errorf("after the backoff: %v, want the hybrid ranking %v", got, hybrid)
	}
	if !strings.Contains(logs.String(), "tool search is hybrid") {
		t.Errorf("no log line says search is hybrid again:\n%s", logs.String())
	}
}

// testClock is a clock that moves only when told.
type testClock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestEmbeddingNoRedirect: the headers (an API key) go to the configured
// URL only; a redirect elsewhere is a failure, not followed.
func TestEmbeddingNoRedirect(t *testing.T) {
	t.Parallel()
	elsewhere := newEmbedServer(t)
	var sawKey atomicString
	elsewhere.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawKey.Store(r.Header.Get("Authorization"))
		http.Error(w, "no", http.StatusTeapot)
	})
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/v1/embeddings", http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	c := newEmbedClient(EmbeddingOptions{URL: redirector.URL + "/v1/embeddings", Model: "m", Headers: map[string]string{"Authorization": "Bearer secret"}})
	if _, err := c.embed(context.Background(), []string{"x"}); err == nil {
		t.Error("a redirect was taken as an answer")
	}
	if k := sawKey.Load(); k != "" {
		t.Errorf("the redirect target got the Authorization header %q", k)
	}
}

type atomicString struct{ v atomic.Value }

func (a *atomicString) Store(s string) { a.v.Store(s) }
func (a *atomicString) Load() string {
	s, _ := a.v.Load().(string)
	return s
}

// TestQueryRate: past the query rate, searches rank lexically and cost the
// service nothing; the service's own state is untouched (no breaker).
func TestQueryRate(t *testing.T) {
	t.Parallel()
	srv := newEmbedServer(t)
	clock := &testClock{now: time.Now()}
	s := startSearcher(t, srv, nil, nil, func(s *Searcher) {
		s.queryLimit = rate.NewLimiter(0, 3) // three queries, then none
		s.emb.breaker.now = clock.Now
	})
	ix := s.Index(loadCatalog(t).Tools[:200])
	waitEmbedded(t, ix)
	before := srv.requests.Load()
	for i := range 10 {
		s.Search(context.Background(), ix, fmt.Sprint("query number ", i), 5, nil)
	}
	if n := srv.requests.Load() - before; n != 3 {
		t.Errorf("%d query embeddings requested, want 3 (the limit)", n)
	}
	if _, open, _ := s.emb.breaker.changed(); open {
		t.Error("the rate limit opened the breaker")
	}
}
