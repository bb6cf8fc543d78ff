package controller_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/vmcp-dev/vmcp/internal/controller"
)

// The tests run against a real kube-apiserver and etcd (envtest), built by
// scripts/tools.sh envtest; `eval "$(scripts/tools.sh env)"` sets
// KUBEBUILDER_ASSETS. No controller-manager runs there: no garbage
// collector, no Deployment controller, no pods. The tests play the kubelet
// themselves where it matters (pod_test.go).
//
//	eval "$(scripts/tools.sh env)" && VMCP_E2E=1 go test -race -count=1 ./internal/controller/
var env struct {
	cfg       *rest.Config // the API server, as an administrator
	client    client.Client
	image     string                       // the vmcp image the operator defaults to
	installed []*unstructured.Unstructured // the objects of config/default
	te        *envtest.Environment
}

// operatorNamespace is where config/default installs the operator.
const operatorNamespace = "vmcp-system"

// install renders config/default with kustomize (tools/go.mod's) and
// applies every object, as `kubectl apply -k config/default` would.
func install(ctx context.Context) ([]*unstructured.Unstructured, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return nil, err
	}
	out, err := exec.Command("go", "-C", filepath.Join(root, "tools"), "tool", "-n", "kustomize").Output()
	if err != nil {
		return nil, fmt.Errorf("building kustomize (tools/go.mod): %w", err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(strings.TrimSpace(string(out)), "build", filepath.Join(root, "config", "default"))
	cmd.Stderr = &stderr
	rendered, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kustomize build config/default: %w\n%s", err, stderr.String())
	}
	objs, err := decodeObjects(rendered)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if err := env.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()), client.FieldOwner("kubectl"), client.ForceOwnership); err != nil {
			return nil, fmt.Errorf("applying %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return objs, nil
}

// Deadlines: bounds on waits for things that should happen, not
// assertions about speed.
const (
	waitTimeout  = 60 * time.Second
	pollInterval = 100 * time.Millisecond
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if testing.Short() || !assetsPresent() {
		if os.Getenv("VMCP_E2E") == "1" {
			fmt.Fprintf(os.Stderr, "controller: KUBEBUILDER_ASSETS (%q) has no kube-apiserver and etcd: run scripts/tools.sh envtest, then eval \"$(scripts/tools.sh env)\"\n", os.Getenv("KUBEBUILDER_ASSETS"))
			return 1
		}
		fmt.Println("controller: skipping the envtest tests (-short, or KUBEBUILDER_ASSETS unset; make test runs them)")
		return m.Run()
	}
	log.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	te := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := te.Start()
	env.te = te
	if err != nil {
		fmt.Fprintln(os.Stderr, "controller: starting envtest:", err)
		return 1
	}
	defer func() {
		if err := te.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "controller: stopping envtest:", err)
		}
	}()
	env.cfg = cfg
	env.image = "vmcp.test/vmcp:test"
	scheme, _ := controller.NewScheme()
	if env.client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, "controller: client:", err)
		return 1
	}
	// Install the operator as users do (config/default, rendered by
	// kustomize), then run the manager under the operator's ServiceAccount:
	// every test then also checks that the RBAC in config/ is enough.
	if env.installed, err = install(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "controller: installing config/default:", err)
		return 1
	}
	operator := rest.CopyConfig(cfg)
	operator.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + operatorNamespace + ":vmcp-operator",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + operatorNamespace, "system:authenticated"},
	}
	mgr, err := controller.NewManager(operator, ctrl.Options{
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                true,
		LeaderElectionID:              "vmcp-operator.vmcp.dev",
		LeaderElectionNamespace:       operatorNamespace,
		LeaderElectionReleaseOnCancel: true,
		// Generous: a manager that cannot renew its lease in time stops,
		// and a loaded test machine can stall it for seconds.
		LeaseDuration: ptr(2 * time.Minute),
		RenewDeadline: ptr(90 * time.Second),
		RetryPeriod:   ptr(5 * time.Second),
	}, env.image)
	if err != nil {
		fmt.Fprintln(os.Stderr, "controller: manager:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	code := m.Run()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			fmt.Fprintln(os.Stderr, "controller: manager:", err)
			code = 1
		}
	case <-time.After(30 * time.Second):
		fmt.Fprintln(os.Stderr, "controller: the manager did not stop within 30s")
		code = 1
	}
	return code
}

func assetsPresent() bool {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		return false
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := exec.LookPath(filepath.Join(dir, b)); err != nil {
			return false
		}
	}
	return true
}

// setup skips the test when envtest is not running and returns a fresh
// namespace, deleted when the test ends.
func setup(t *testing.T) string {
	t.Helper()
	if env.client == nil {
		t.Skip("envtest is not running (see TestMain)")
	}
	t.Parallel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-" + strings.ToLower(safeName(t.Name())) + "-"}}
	if err := env.client.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	t.Cleanup(func() { _ = env.client.Delete(context.Background(), ns) })
	return ns.Name
}

func safeName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
		if b.Len() >= 30 {
			break
		}
	}
	return strings.Trim(b.String(), "-")
}

// eventually polls f until it reports done, failing the test with f's last
// explanation after waitTimeout.
func eventually(t *testing.T, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	last := ""
	for {
		ok, why := f()
		if ok {
			return
		}
		last = why
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, waitTimeout, last)
		}
		time.Sleep(pollInterval)
	}
}
