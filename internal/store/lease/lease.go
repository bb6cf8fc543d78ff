// Package lease is a table of short leases on names within one process,
// for the stores whose state lives in one process (memory, bolt): the
// grant locks of [authserver.GrantStore] without a network.
package lease

import (
	"sync"
	"time"
)

// Table holds leases by name. The zero value is ready to use.
type Table struct {
	mu sync.Mutex // guards m
	m  map[string]entry
}

type entry struct {
	owner string
	until time.Time
}

// Acquire gives name to owner until now+ttl, unless another owner holds
// an unexpired lease on it. An owner may renew its own lease.
func (t *Table) Acquire(name, owner string, ttl time.Duration, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]entry{}
	}
	if e, ok := t.m[name]; ok && e.owner != owner && now.Before(e.until) {
		return false
	}
	if len(t.m) >= 1024 {
		for k, e := range t.m {
			if !now.Before(e.until) {
				delete(t.m, k)
			}
		}
	}
	t.m[name] = entry{owner: owner, until: now.Add(ttl)}
	return true
}

// Release ends owner's lease on name; a lease held by another owner stays.
func (t *Table) Release(name, owner string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.m[name]; ok && e.owner == owner {
		delete(t.m, name)
	}
}
