// Command vmcp-operator runs the vmcp Kubernetes operator: it reconciles
// VirtualMCPServer, MCPGroup, MCPServer and MCPOIDCConfig resources
// (vmcp.dev/v1alpha1) into the ConfigMaps, Deployments and Services that
// run vmcp gateways. See docs/kubernetes.md.
//
//	vmcp-operator [--vmcp-image IMAGE] [--leader-elect] [--metrics-bind-address ADDR] [--health-probe-bind-address ADDR]
//
// It is a separate binary so that the gateway (cmd/vmcp) does not link
// controller-runtime and client-go.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/vmcp-dev/vmcp/internal/app"
	"github.com/vmcp-dev/vmcp/internal/controller"
)

// defaultImage is the vmcp image of gateways that name none; the release
// build sets it to the image the operator ships in.
var defaultImage = "ghcr.io/vmcp-dev/vmcp:" + app.Version

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "vmcp-operator:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("vmcp-operator", flag.ContinueOnError)
	image := fs.String("vmcp-image", envOr("VMCP_IMAGE", defaultImage), "vmcp image of gateways that name none (env VMCP_IMAGE)")
	metricsAddr := fs.String("metrics-bind-address", ":8080", `address of the Prometheus metrics endpoint ("0" turns it off)`)
	probeAddr := fs.String("health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	leaderElect := fs.Bool("leader-elect", false, "elect a leader, so that only one of several operator pods reconciles")
	leaderNamespace := fs.String("leader-election-namespace", "", "namespace of the leader election lease (default: the pod's)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := logr.FromSlogHandler(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctrl.SetLogger(logger)
	if *image == "" {
		return errors.New("--vmcp-image is empty")
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubernetes client configuration: %w", err)
	}
	mgr, err := controller.NewManager(cfg, ctrl.Options{
		Metrics:                 metricsserver.Options{BindAddress: *metricsAddr},
		HealthProbeBindAddress:  *probeAddr,
		LeaderElection:          *leaderElect,
		LeaderElectionID:        "vmcp-operator.vmcp.dev",
		LeaderElectionNamespace: *leaderNamespace,
		// The manager stops its reconcilers before it gives the lease up.
		LeaderElectionReleaseOnCancel: true,
	}, *image)
	if err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	logger.Info("starting", "version", app.Version, "vmcpImage", *image, "leaderElection", *leaderElect)
	return mgr.Start(ctrl.SetupSignalHandler())
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
