package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"

	"github.com/vmcp-dev/vmcp/internal/config"
)

// Observed is the target of [CompareConfig.Observe]: vmcp with every kind of
// telemetry on.
const Observed = "vmcp+obs"

// Everything on, for the Observed target: the request metrics, the audit
// log (to a file), and tracing of every request (sampled at 100 %) over
// OTLP/HTTP to a receiver in this process that reads and drops the spans.
// The Through target then runs with everything off, request metrics
// included (config.telemetry.metricsEnabled: false).
func observeAll(otlp, auditFile string) func(*config.Config) {
	return func(c *config.Config) {
		on, rate := true, 1.0
		t := &c.Config.Telemetry
		t.MetricsEnabled, t.TracingEnabled, t.Endpoint, t.SamplingRate = &on, &on, otlp, &rate
		c.Config.Audit = config.Audit{Enabled: true, LogFile: auditFile}
	}
}

func observeNone(c *config.Config) {
	off := false
	c.Config.Telemetry.MetricsEnabled = &off
}

// spanDrain is an OTLP/HTTP receiver that reads every export and keeps
// nothing: the exporter's work is measured, no collector's.
func spanDrain() (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/v1/traces", func() { _ = srv.Close() }, nil
}

// startObserved starts the Observed gateway beside the others (t.gateway
// becomes the one with everything off).
func startObserved(ctx context.Context, cfg *CompareConfig, t *targets, yaml string) error {
	if cfg.Isolate {
		return errors.New("--observe runs in one process (not with --isolate)")
	}
	otlp, stop, err := spanDrain()
	if err != nil {
		return err
	}
	t.closers = append(t.closers, stop)
	dir, err := os.MkdirTemp("", "vmcp-load-audit")
	if err != nil {
		return err
	}
	t.closers = append(t.closers, func() { _ = os.RemoveAll(dir) })
	gw, err := StartGatewayWith(ctx, yaml, observeAll(otlp, filepath.Join(dir, "audit.log")))
	if err != nil {
		return fmt.Errorf("the observed gateway: %w", err)
	}
	t.closers, t.observed = append(t.closers, gw.Close), gw.URL
	return nil
}

func (c *Comparison) hasObserved() bool {
	return slices.ContainsFunc(c.Samples, func(x Sample) bool { return x.Target == Observed })
}

// ObservedRatios are, per round at concurrency conc, the Observed target's
// throughput over the Through target's (everything on over everything
// off).
func (c *Comparison) ObservedRatios(conc int) []float64 {
	return pairedWith(c, Through, Observed, conc, func(off, on *Result) float64 {
		if off.Throughput == 0 {
			return 0
		}
		return on.Throughput / off.Throughput
	})
}

// ObservedCPURatios are, per round at concurrency conc, the Through
// target's CPU time per request over the Observed target's (everything
// off over everything on): the throughput ratio a CPU-bound machine would
// show, steadier than throughput when neighbours load the machine.
func (c *Comparison) ObservedCPURatios(conc int) []float64 {
	return pairedWith(c, Through, Observed, conc, func(off, on *Result) float64 {
		if on.CPU == 0 {
			return 0
		}
		return float64(off.CPU) / float64(on.CPU)
	})
}

func minOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return slices.Min(xs)
}

func maxOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return slices.Max(xs)
}
