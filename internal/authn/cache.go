package authn

import (
	"crypto/sha256"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// tokenCache remembers what was learnt about tokens (a verified identity,
// an introspection answer) until a deadline each, keyed by the SHA-256 of
// the token, never the token. It holds at most max entries; when full, the
// least recently used one makes room, so a burst of new tokens never drops
// the ones in use. It is safe for concurrent use.
type tokenCache[V any] struct {
	c *lru.Cache[[sha256.Size]byte, cacheEntry[V]]
}

type cacheEntry[V any] struct {
	v     V
	until time.Time
}

func newTokenCache[V any](max int) *tokenCache[V] {
	c, err := lru.New[[sha256.Size]byte, cacheEntry[V]](max)
	if err != nil {
		panic("authn: token cache: " + err.Error()) // max < 1: a programmer error
	}
	return &tokenCache[V]{c: c}
}

// get returns the entry of key unless it expired by now (a deadline is
// expired at that instant).
func (c *tokenCache[V]) get(key [sha256.Size]byte, now time.Time) (V, bool) {
	e, ok := c.c.Get(key)
	if ok && !now.Before(e.until) {
		c.c.Remove(key)
		var zero V
		return zero, false
	}
	return e.v, ok
}

// put stores v under key until the deadline.
func (c *tokenCache[V]) put(key [sha256.Size]byte, v V, until time.Time) {
	c.c.Add(key, cacheEntry[V]{v: v, until: until})
}

// len is the number of entries, expired ones included.
func (c *tokenCache[V]) len() int {
	return c.c.Len()
}
