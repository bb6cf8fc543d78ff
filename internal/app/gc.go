package app

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
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

// TuneGC sets the collector up for a gateway process, leaving alone what
// the environment (getenv) sets: GOGC unset means [GCPercent]; GOMEMLIMIT
// unset, under a cgroup memory limit, means a soft limit of 90 % of it, so
// that the larger heap target never costs an out-of-memory kill (the
// collector works harder near the limit instead). It returns what it did,
// for the log. Call it once, at start-up, from the process's main.
func TuneGC(getenv func(string) string) string {
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
