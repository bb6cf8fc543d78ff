package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmcp-dev/vmcp/internal/audit"
	"github.com/vmcp-dev/vmcp/internal/telemetry"
)

// telemetry builds the request metrics, tracing and access log the
// configuration asks for (nil: none), registering the metrics in reg.
func (a *App) newTelemetry(reg prometheus.Registerer) (*telemetry.Telemetry, error) {
	cfg := a.cfg
	t := &cfg.Config.Telemetry
	opts := &telemetry.Options{Logger: a.logger}
	if t.MetricsOn() {
		opts.Metrics = reg
	}
	if cfg.Server.AccessLog {
		opts.AccessLog = a.logger
	}
	if telemetry.TracingWanted(t.TracingEnabled, os.Getenv) {
		opts.Tracing = &telemetry.Tracing{Endpoint: t.Endpoint, Protocol: t.Protocol, Insecure: t.Insecure,
			SamplingRate: t.SamplingRate, ServiceName: t.ServiceName, ServiceVersion: Version, Getenv: os.Getenv}
	}
	tel, err := telemetry.New(context.Background(), opts)
	if err != nil {
		return nil, fmt.Errorf("config.telemetry: %w", err)
	}
	return tel, nil
}

// newAudit opens the audit log the configuration asks for (nil: none).
func (a *App) newAudit(reg prometheus.Registerer) (*audit.Log, io.Closer, error) {
	c := a.cfg.Config.Audit
	if !c.Enabled {
		return nil, nil, nil
	}
	var dst io.Writer = os.Stderr
	var closer io.Closer
	if c.LogFile != "" {
		f, err := os.OpenFile(c.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("config.audit.logFile: %w", err)
		}
		dst, closer = f, f
	}
	return audit.New(dst, &audit.Options{IncludeArguments: c.IncludeArguments, IncludeClaims: c.IncludeClaims, Logger: a.logger,
		Metrics: reg}), closer, nil
}

// metricsServer serves /metrics on server.metricsListen, if set; the
// returned listener is already bound.
func (a *App) metricsServer(reg *prometheus.Registry, guard func(http.Handler) http.Handler) (*http.Server, net.Listener, error) {
	addr := a.cfg.Server.MetricsListen
	if addr == "" {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("server.metricsListen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler(reg))
	s := a.cfg.Server
	return &http.Server{Handler: guard(mux), ReadHeaderTimeout: s.ReadHeaderTimeout.D(), ReadTimeout: s.ReadTimeout.D(),
		IdleTimeout: s.IdleTimeout.D(), MaxHeaderBytes: s.MaxHeaderBytes,
		ErrorLog: slog.NewLogLogger(a.logger.Handler(), slog.LevelDebug)}, ln, nil
}

// MetricsAddr is the address /metrics is served on: server.metricsListen's
// (as bound), or the main listener's.
func (a *App) MetricsAddr() string {
	if a.metricsLn != nil {
		return a.metricsLn.Addr().String()
	}
	return a.ln.Addr().String()
}

// stopTelemetry sends the spans not yet sent and writes the audit records
// not yet written, within ctx.
func (a *App) stopTelemetry(ctx context.Context) error {
	var errs []error
	if err := a.telemetry.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("sending the last spans: %w", err))
	}
	if err := a.audit.Close(); err != nil {
		errs = append(errs, fmt.Errorf("writing the audit log: %w", err))
	}
	if a.auditFile != nil {
		if err := a.auditFile.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the audit log: %w", err))
		}
	}
	return errors.Join(errs...)
}
