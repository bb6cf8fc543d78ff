package gctune

import (
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

// TestTune checks that the collector is tuned only where the environment
// is silent.
func TestTune(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old); debug.SetMemoryLimit(math.MaxInt64) })
	env := map[string]string{"GOGC": "100", "GOMEMLIMIT": "1GiB"}
	if got := Tune(func(k string) string { return env[k] }); got != "" {
		t.Errorf("with GOGC and GOMEMLIMIT set, Tune did %q", got)
	}
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("with GOGC set, the GC percent became %d", p)
	}
	got := Tune(func(string) string { return "" })
	if !strings.Contains(got, "GOGC=400") {
		t.Errorf("Tune did %q, want GOGC=400", got)
	}
	if p := debug.SetGCPercent(100); p != GCPercent {
		t.Errorf("the GC percent is %d, want %d", p, GCPercent)
	}
}

// TestServedStartsTheTriesOver: a large answer's request that ends after
// the tries for the answer ran out (a slow client) starts them over, with
// the answer's size, so that its memory is handed back after all.
func TestServedStartsTheTriesOver(t *testing.T) {
	var r Releaser
	t.Cleanup(r.Stop)
	r.Large(32 << 20)
	if r.Answers() != 1 {
		t.Fatalf("%d answers counted, want 1", r.Answers())
	}
	r.mu.Lock()
	r.pending.Stop()
	r.pending, r.lastSize, r.size, r.tries = nil, r.size, 0, releaseTries // the tries ran out
	r.mu.Unlock()
	r.Served()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil || r.tries != 0 || r.size != 32<<20 {
		t.Errorf("after Served: pending %v, tries %d, size %d; want a new round of tries for the 32 MiB answer", r.pending != nil, r.tries, r.size)
	}
}
