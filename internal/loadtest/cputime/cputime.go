// Package cputime reads the CPU time the process has used. On a shared,
// busy machine wall-clock figures swing with the neighbours' load; CPU time
// per request swings much less, so the harness and the benchmarks report
// both.
package cputime

import (
	"testing"
	"time"
)

// Process returns the user plus system CPU time used by the process so far,
// or 0 where it cannot be read.
func Process() time.Duration { return process() }

// Bench reports the process's CPU time per iteration of b as the metric
// cpu-ns/op. Call it with the value of Process taken just before the loop,
// after the loop.
func Bench(b *testing.B, start time.Duration) {
	if start == 0 || b.N == 0 {
		return
	}
	b.ReportMetric(float64(Process()-start)/float64(b.N), "cpu-ns/op")
}

// Of returns the user plus system CPU time used so far by process pid (Linux
// only; 0 elsewhere or on error). Its resolution is the kernel's clock tick,
// usually 10ms.
func Of(pid int) time.Duration { return of(pid) }
