package toolsearch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFileCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state", "embeddings")
	c, err := OpenFileCache(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	vec := func(x float32) []float32 { return []float32{x, -x, 0.5} }
	for i := range 2 {
		if err := c.Store(ctx, map[string][]float32{fmt.Sprint("k", i): vec(float32(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}

	// Reopened, it has what was stored.
	c2, err := OpenFileCache(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := c2.Load(ctx, []string{"k0", "k1", "k9"})
	if diff := cmp.Diff(map[string][]float32{"k0": vec(0), "k1": vec(1)}, got); diff != "" {
		t.Errorf("after reopening (-want +got):\n%s", diff)
	}

	// A torn last record (a crash mid-write) is dropped, the rest kept.
	if err := c2.Store(ctx, map[string][]float32{"k2": vec(2)}); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if err := os.Truncate(path, fi.Size()-3); err != nil {
		t.Fatal(err)
	}
	c3, err := OpenFileCache(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = c3.Load(ctx, []string{"k0", "k1", "k2"})
	if diff := cmp.Diff(map[string][]float32{"k0": vec(0), "k1": vec(1)}, got); diff != "" {
		t.Errorf("after a torn write (-want +got):\n%s", diff)
	}

	// Past its bound, the oldest entries go, in memory and on disk.
	for i := 3; i < 10; i++ {
		if err := c3.Store(ctx, map[string][]float32{fmt.Sprint("k", i): vec(float32(i))}); err != nil {
			t.Fatal(err)
		}
	}
	c4, err := OpenFileCache(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = c4.Load(ctx, []string{"k0", "k1", "k7", "k8", "k9"})
	if diff := cmp.Diff(map[string][]float32{"k7": vec(7), "k8": vec(8), "k9": vec(9)}, got); diff != "" {
		t.Errorf("past the bound (-want +got):\n%s", diff)
	}
	if fi, _ := os.Stat(path); fi.Size() > 4*(2+2+4+3*4+4)+int64(len(fileMagic)) {
		t.Errorf("the file is %d bytes for 3 entries: not compacted", fi.Size())
	}
}

func TestFileCacheRefusesOtherFiles(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "embeddings")
	if err := os.WriteFile(path, []byte("something else"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileCache(path, 0); err == nil {
		t.Fatal("a file that is not an embedding cache was opened (and would be overwritten)")
	}
}

// TestEmbeddingsSurviveRestart: tool embeddings are computed once per
// definition; a new Searcher (a restart) over the same cache file asks the
// service for none of them.
func TestEmbeddingsSurviveRestart(t *testing.T) {
	t.Parallel()
	srv := newEmbedServer(t)
	path := filepath.Join(t.TempDir(), "embeddings")
	tools := loadCatalog(t).Tools[:300]

	cache1, err := OpenFileCache(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	s1 := startSearcher(t, srv, cache1, nil)
	waitEmbedded(t, s1.Index(tools))
	if n := srv.inputs.Load(); n != int64(len(tools)) {
		t.Fatalf("%d texts embedded for %d tools", n, len(tools))
	}
	// The same catalog indexed again (another catalog build) costs nothing.
	waitEmbedded(t, s1.Index(tools))
	if n := srv.inputs.Load(); n != int64(len(tools)) {
		t.Errorf("re-indexing the same tools embedded %d texts more", n-int64(len(tools)))
	}

	cache2, err := OpenFileCache(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	s2 := startSearcher(t, srv, cache2, nil)
	before := srv.inputs.Load()
	ix := s2.Index(tools)
	waitEmbedded(t, ix)
	if n := srv.inputs.Load() - before; n != 0 {
		t.Errorf("after a restart, %d tool texts were embedded again, want 0", n)
	}
	// And one changed tool costs one text.
	changed := append(tools[:0:0], tools...)
	t2 := *changed[0]
	def := *t2.Def
	def.Description = "A new description."
	t2.Def = &def
	changed[0] = &t2
	waitEmbedded(t, s2.Index(changed))
	if n := srv.inputs.Load() - before; n != 1 {
		t.Errorf("one changed tool embedded %d texts, want 1", n)
	}
}

// TestBreaker walks the breaker through its states with a test clock.
func TestBreaker(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Unix(0, 0)}
	b := &breaker{now: clock.Now}
	step := func(name string, want bool) {
		t.Helper()
		if got := b.allow(); got != want {
			t.Fatalf("%s: allow() = %v, want %v", name, got, want)
		}
	}
	step("closed", true)
	b.failure()
	step("just opened", false)
	clock.Add(breakerMin - time.Millisecond)
	step("before the backoff", false)
	clock.Add(time.Millisecond)
	step("the trial", true)
	step("during the trial", false)
	b.failure()
	clock.Add(breakerMin)
	step("the second backoff is longer", false)
	clock.Add(breakerMin)
	step("second trial", true)
	b.success()
	step("closed again", true)
	step("closed again, twice", true)
	for range 20 {
		b.failure()
	}
	clock.Add(breakerMax)
	step("the backoff is bounded", true)
}
