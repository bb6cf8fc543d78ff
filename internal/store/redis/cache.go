package redis

import (
	"sync"
	"sync/atomic"
	"time"
)

// cache keeps answers of the per-request checks (is this access token
// active, is this grant revoked, the grant itself) so that a request does
// not wait for Redis. Entries are dropped when any replica changes what
// they copy (an invalidation message on the store's channel), at the
// record's own expiry, after maxAge at the latest, and all at once while
// the invalidation channel is not known to work.
type cache struct {
	maxAge time.Duration
	max    int

	live atomic.Bool   // subscribed: invalidations arrive
	gen  atomic.Uint64 // bumped by every invalidation and clear

	mu sync.Mutex // guards m
	m  map[string]cached
}

type cached struct {
	v    any
	exp  time.Time // the record's expiry in the store's clock; zero: none
	born time.Time // wall clock
}

func newCache(maxAge time.Duration, max int) *cache {
	return &cache{maxAge: maxAge, max: max, m: map[string]cached{}}
}

// get returns the live entry of key; now is the store's clock.
func (c *cache) get(key string, now time.Time) (any, bool) {
	if !c.live.Load() {
		return nil, false
	}
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if !ok || time.Since(e.born) > c.maxAge || (!e.exp.IsZero() && !now.Before(e.exp)) {
		return nil, false
	}
	return e.v, true
}

// put stores v under key, unless an invalidation happened since gen was
// read (the value may predate it) or invalidations do not arrive.
func (c *cache) put(key string, v any, exp time.Time, gen uint64) {
	if !c.live.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if len(c.m) >= c.max {
		now := time.Now()
		target := c.max - max(1, c.max/10)
		for k, e := range c.m {
			if now.Sub(e.born) > c.maxAge || len(c.m) > target {
				delete(c.m, k)
			}
		}
	}
	c.m[key] = cached{v: v, exp: exp, born: time.Now()}
}

// drop forgets the entries of keys.
func (c *cache) drop(keys ...string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.gen.Add(1)
	for _, k := range keys {
		delete(c.m, k)
	}
	c.mu.Unlock()
}

// clear forgets everything; live says whether invalidations arrive now.
func (c *cache) clear(live bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.gen.Add(1)
	c.live.Store(live)
	clear(c.m)
	c.mu.Unlock()
}
