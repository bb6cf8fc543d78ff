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
