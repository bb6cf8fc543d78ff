package authn

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/vmcp-dev/vmcp/internal/identity"
)

// verifiedCache remembers tokens whose signature and claims were verified,
// keyed by the SHA-256 of the token (never the token), so that a client's
// next request with the same token skips the signature check. An entry
// lives no longer than its token (exp plus skew) and at most maxAge; the
// Check hook still runs on every request.
type verifiedCache struct {
	maxEntries int
	maxAge     time.Duration

	mu      sync.Mutex // guards entries
	entries map[[sha256.Size]byte]verifiedEntry
}

type verifiedEntry struct {
	id    *identity.Identity // its Claims are the token's
	until time.Time
}

func newVerifiedCache(maxEntries int, maxAge time.Duration) *verifiedCache {
	return &verifiedCache{maxEntries: maxEntries, maxAge: maxAge, entries: map[[sha256.Size]byte]verifiedEntry{}}
}

func (c *verifiedCache) get(key [sha256.Size]byte, now time.Time) (verifiedEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if ok && now.After(e.until) {
		delete(c.entries, key)
		return verifiedEntry{}, false
	}
	return e, ok
}

func (c *verifiedCache) put(key [sha256.Size]byte, e verifiedEntry, now time.Time) {
	if limit := now.Add(c.maxAge); e.until.After(limit) {
		e.until = limit
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.maxEntries {
		// Drop expired entries, then arbitrary ones (map order is random)
		// until a tenth of the room is free.
		for k, old := range c.entries {
			if now.After(old.until) || len(c.entries) > c.maxEntries*9/10 {
				delete(c.entries, k)
			}
		}
	}
	c.entries[key] = e
}
