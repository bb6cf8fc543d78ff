// Package gctune sets the Go garbage collector up for a gateway process
// ([Tune]) and hands the memory of large answers back to the operating
// system once their calls are over ([Releaser]).
package gctune

import (
	"fmt"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// GCPercent is the garbage collection target vmcp runs with unless GOGC is
// set: the heap may grow to five times the live heap between collections.
//
// A gateway's live heap is small (its catalog and sessions), while every
// message it relays allocates a lot that dies at once (the go-sdk allocates
// a 32 KiB decoding buffer per JSON value it decodes, several per call).
// With the default of 100 the collector then runs hundreds of times a
// second and gives freed pages back to the OS only to fault them in again.
// Measured with vmcp-load (backend and vmcp in processes of their own,
// interleaved, docs/benchmarks.md): 400 gave 25–35 % more calls per second
// than 100 at 1 and 32 sessions, for a heap of a few tens of MB more.
const GCPercent = 400

// Tune sets the collector up for a gateway process, leaving alone what
// the environment (getenv) sets: GOGC unset means [GCPercent]; GOMEMLIMIT
// unset, under a cgroup memory limit, means a soft limit of 90 % of it, so
// that the larger heap target never costs an out-of-memory kill (the
// collector works harder near the limit instead). It returns what it did,
// for the log. Call it once, at start-up, from the process's main.
func Tune(getenv func(string) string) string {
	var did []string
	if getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
		did = append(did, "GOGC="+strconv.Itoa(GCPercent))
	}
	if getenv("GOMEMLIMIT") == "" {
		if limit, ok := cgroupMemoryLimit(); ok {
			soft := limit / 10 * 9
			debug.SetMemoryLimit(soft)
			did = append(did, fmt.Sprintf("GOMEMLIMIT=%dMiB (90%% of the cgroup's memory limit)", soft>>20))
		}
	}
	return strings.Join(did, " ")
}

// cgroupMemoryLimit reads the memory limit of the process's cgroup (v2,
// else v1), as mounted in a container.
func cgroupMemoryLimit() (int64, bool) {
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		// "max" (v2) and a value near MaxInt64 (v1) mean no limit.
		if err != nil || v <= 0 || v >= 1<<62 {
			return 0, false
		}
		return v, true
	}
	return 0, false
}

// releaseDelay is how long after a large answer its memory is handed back
// (time for the call to finish writing it to the client); further tries,
// while it is still in use, come after twice as long each time, up to
// releaseMaxDelay, at most releaseTries times (about three minutes).
const (
	releaseDelay    = time.Second
	releaseMaxDelay = 5 * time.Second
	releaseTries    = 40
	minTries        = 4 // after 1, 3, 7 and 12 s
)

// Releaser hands the memory of large answers back to the operating system
// once their calls are over (backend.Options.OnLargeAnswer): with GOGC=400
// the garbage of a result of many megabytes would otherwise stay until the
// heap grows fivefold or the runtime's two-minute collection, and the
// process's resident size with it. A release is a forced collection (a few
// milliseconds for a gateway's small live heap) that returns freed memory:
// releaseDelay after the answer, and again, less and less often, while the
// answer seems in use (its call is still writing it); one at a time, only
// after answers of backend.LargeAnswer bytes or more. Its zero value is ready;
// pass Large as backend.Options.OnLargeAnswer.
type Releaser struct {
	answers atomic.Uint64 // large answers so far (Answers)

	mu       sync.Mutex // guards the fields below
	pending  *time.Timer
	quiet    uint64 // the live heap after the last release that found the answers gone; 0: none yet
	floor    uint64 // the live heap without the answers being released
	last     uint64 // the live heap after the previous try
	size     int    // the largest of them
	lastSize int    // size, when the last release ended
	tries    int
	stopped  bool
}

// Large schedules a release after an answer of n bytes.
func (r *Releaser) Large(n int) {
	r.answers.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.size = max(r.size, n)
	r.schedule()
}

// Answers counts the large answers so far. A request that saw it change
// while it was served reports its end with Served.
func (r *Releaser) Answers() uint64 { return r.answers.Load() }

// Served tells that a request during which a large answer came in has been
// answered: its memory is garbage now, however long the client took to
// read it, so the tries start over from now.
func (r *Releaser) Served() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	if r.size == 0 {
		r.size = r.lastSize // the tries for the answer ended already
	}
	pending := r.pending != nil
	r.schedule()
	if pending {
		r.pending.Reset(releaseDelay) // the next try a delay from now
	}
}

// schedule starts the tries of a release, or starts them over if some are
// pending. r.mu is held.
func (r *Releaser) schedule() {
	if r.pending != nil || r.stopped {
		r.tries = 0 // as many tries as for a new answer
		return
	}
	// The live heap as of the last collection, which may have run while
	// the answer was being read: the quiet heap of the last release is a
	// better floor, when it is lower.
	r.floor, r.tries, r.last = liveHeap(), 0, 0
	if r.quiet > 0 {
		r.floor = min(r.floor, r.quiet)
	}
	r.pending = time.AfterFunc(releaseDelay, r.release)
}

func (r *Releaser) release() {
	debug.FreeOSMemory()
	live := liveHeap()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tries++
	// Once more, later, while the answers seem in use (the live heap holds
	// about one of them), or the last release still freed some (its call
	// was finishing), and at least minTries times (about 12 s): buffers
	// kept in a sync.Pool live through one collection, and the live-heap
	// floor can be too high (a collection ran while the answer was being
	// read), which would end the tries while a slow client is still being
	// written to (seen on a loaded machine: the memory stayed).
	again := live > r.floor+uint64(r.size/2) || r.last > live+uint64(r.size/4) || r.tries < minTries
	r.last = live
	if again && r.tries < releaseTries && !r.stopped {
		r.pending.Reset(min(releaseDelay<<min(r.tries, 8), releaseMaxDelay))
		return
	}
	r.pending, r.lastSize, r.size, r.quiet = nil, r.size, 0, live
}

// liveHeap is the heap the last collection found live.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// Stop cancels a pending release.
func (r *Releaser) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	if r.pending != nil {
		r.pending.Stop()
	}
}
