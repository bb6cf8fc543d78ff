package authn

import (
	"crypto/sha256"
	"sync"
	"time"
)

// tokenCache remembers what was learnt about tokens (a verified identity,
// an introspection answer) until a deadline each, keyed by the SHA-256 of
// the token, never the token. It holds at most max entries: when full it
// drops expired entries, then arbitrary ones (map order is random) until a
// tenth of the room is free.
type tokenCache[V any] struct {
	max int

	mu sync.Mutex // guards m
	m  map[[sha256.Size]byte]cacheEntry[V]
}

type cacheEntry[V any] struct {
	v     V
	until time.Time
}

func newTokenCache[V any](max int) *tokenCache[V] {
	return &tokenCache[V]{max: max, m: map[[sha256.Size]byte]cacheEntry[V]{}}
}

// get returns the entry of key unless it expired by now (a deadline is
// expired at that instant).
func (c *tokenCache[V]) get(key [sha256.Size]byte, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if ok && !now.Before(e.until) {
		delete(c.m, key)
		ok = false
	}
	return e.v, ok
}

// put stores v under key until the deadline.
func (c *tokenCache[V]) put(key [sha256.Size]byte, v V, until, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		target := c.max - max(1, c.max/10)
		for k, e := range c.m {
			if !now.Before(e.until) || len(c.m) > target {
				delete(c.m, k)
			}
		}
	}
	c.m[key] = cacheEntry[V]{v: v, until: until}
}

// len is the number of entries, expired ones included.
func (c *tokenCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
