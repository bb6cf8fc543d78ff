package toolsearch

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Each caller's share of the query rate: one caller searching hard spends
// its own share and then ranks lexically, while the others keep theirs.
// The global limit still bounds what all callers together cost.
const (
	// callerShare is the part of EmbeddingOptions.QueryRate one caller
	// may use.
	callerShare = 4
	// maxCallers bounds the callers with a bucket. A caller past it, while
	// no bucket can be dropped, ranks lexically.
	maxCallers = 4096
)

type callerKey struct{}

// withCaller returns ctx carrying the key of the searching caller: the
// principal when authenticated, else the MCP session. An empty key is one
// shared bucket.
func withCaller(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, callerKey{}, key)
}

func callerFrom(ctx context.Context) string {
	key, _ := ctx.Value(callerKey{}).(string)
	return key
}

// callerLimits holds a token bucket per caller.
type callerLimits struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	swept   time.Time // when full buckets were last looked for
}

func newCallerLimits(total float64) *callerLimits {
	per := max(total/callerShare, 1)
	return &callerLimits{limit: rate.Limit(per), burst: int(2*per) + 1, now: time.Now, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token from key's bucket. When maxCallers buckets exist,
// the full ones (their callers idle long enough to have lost nothing by
// forgetting them) are dropped first; if none is full the caller is
// refused. They are looked for at most once per refill time (an empty
// bucket's time to fill up), so that callers refused one after another
// do not each walk every bucket under the lock.
func (c *callerLimits) allow(key string) bool {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.buckets[key]
	if !ok {
		if len(c.buckets) >= maxCallers {
			refill := time.Duration(float64(c.burst) / float64(c.limit) * float64(time.Second))
			if now.Sub(c.swept) < refill {
				return false
			}
			c.swept = now
			for k, old := range c.buckets {
				if old.TokensAt(now) >= float64(c.burst) {
					delete(c.buckets, k)
				}
			}
			if len(c.buckets) >= maxCallers {
				return false
			}
		}
		b = rate.NewLimiter(c.limit, c.burst)
		c.buckets[key] = b
	}
	return b.AllowN(now, 1)
}
