package authn

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"
)

// TestTokenCacheKeepsTokensInUse: when the cache is full, new tokens push
// out the least recently used ones, never the tokens in use. (It used to
// drop a tenth of the entries at random.)
func TestTokenCacheKeepsTokensInUse(t *testing.T) {
	t.Parallel()
	const max = 1000
	c := newTokenCache[int](max)
	now := time.Unix(1000, 0)
	until := now.Add(time.Hour)
	key := func(i int) [sha256.Size]byte { return sha256.Sum256(fmt.Appendf(nil, "token-%d", i)) }
	for i := range max {
		c.put(key(i), i, until)
	}
	// The first 100 tokens are in use; then 100 new tokens arrive.
	for i := range 100 {
		if _, ok := c.get(key(i), now); !ok {
			t.Fatalf("token %d is not cached before the cache overflows", i)
		}
	}
	for i := max; i < max+100; i++ {
		c.put(key(i), i, until)
	}
	if n := c.len(); n != max {
		t.Errorf("the cache holds %d entries, want its bound %d", n, max)
	}
	for i := range 100 {
		if v, ok := c.get(key(i), now); !ok || v != i {
			t.Errorf("token %d, in use, was dropped when new tokens arrived", i)
		}
	}
	for i := 100; i < 200; i++ {
		if _, ok := c.get(key(i), now); ok {
			t.Errorf("token %d, the least recently used, is still cached", i)
		}
	}
	if _, ok := c.get(key(0), until); ok {
		t.Error("an entry is returned at its deadline")
	}
}
