package controller_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/vmcp-dev/vmcp/api/v1alpha1"
	"github.com/vmcp-dev/vmcp/internal/config"
	"github.com/vmcp-dev/vmcp/internal/controller"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

const externalIdP = `
apiVersion: v1
kind: Secret
metadata: {name: introspection}
stringData: {secret: s3cret}
---
apiVersion: v1
kind: Secret
metadata: {name: backend-key}
stringData: {token: backend-token}
---
apiVersion: vmcp.dev/v1alpha1
kind: MCPOIDCConfig
metadata: {name: corp-idp}
spec:
  type: inline
  inline:
    issuer: https://idp.example.com
    introspectionUrl: https://idp.example.com/introspect
    clientId: vmcp
    clientSecretRef: {name: introspection, key: secret}
    scopes: [mcp]
---
apiVersion: vmcp.dev/v1alpha1
kind: MCPGroup
metadata: {name: tools}
---
apiVersion: vmcp.dev/v1alpha1
kind: MCPServer
metadata: {name: search}
spec:
  groupRef: {name: tools}
  url: https://search.example.com/mcp
  outgoingAuth:
    type: header_injection
    headerInjection: {headerName: X-Api-Key, valueSecretRef: {name: backend-key, key: token}}
---
apiVersion: vmcp.dev/v1alpha1
kind: VirtualMCPServer
metadata: {name: corp}
spec:
  groupRef: {name: tools}
  incomingAuth:
    type: oidc
    oidcConfigRef: {name: corp-idp, audience: "https://mcp.example.com/mcp"}
`

// TestExternalIdP references an MCPOIDCConfig of another issuer and an
// MCPServer with a Secret of its own: both become part of the document,
// their Secrets are mounted, a change to either Secret rolls the pods, and
// a problem in the MCPOIDCConfig is reported there.
func TestExternalIdP(t *testing.T) {
	ns := setup(t)
	objs, err := decodeObjects([]byte(externalIdP))
	if err != nil {
		t.Fatal(err)
	}
	create(t, ns, objs...)
	vs := &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "corp"}}
	waitCondition(t, vs, v1alpha1.ConditionAuthConfigured, metav1.ConditionTrue, "OIDC bearer tokens for https://mcp.example.com/mcp", "2 Secrets mounted")
	waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionFalse, "0 of 1 vmcp pods available")

	cfg := generated(t, ns, "corp")
	want := &config.OIDCConfig{Issuer: "https://idp.example.com", Audience: "https://mcp.example.com/mcp",
		IntrospectionURL: "https://idp.example.com/introspect", ClientID: "vmcp",
		ClientSecretRef: &config.SecretRef{Name: "introspection", Key: "secret"}, Scopes: []string{"mcp"},
		ClockSkew: config.Duration(config.DefaultClockSkew)}
	if diff := cmp.Diff(want, cfg.IncomingAuth.OIDCConfig); diff != "" || cfg.IncomingAuth.OIDCConfigRef != nil {
		t.Errorf("incomingAuth.oidcConfig (-want +got):\n%s\noidcConfigRef %+v", diff, cfg.IncomingAuth.OIDCConfigRef)
	}
	if a := cfg.Backends[0].OutgoingAuth; a == nil || a.HeaderInjection.ValueSecretRef.Name != "backend-key" {
		t.Errorf("backend outgoingAuth = %+v", a)
	}
	if cfg.Server.PublicURL != "https://mcp.example.com/mcp" {
		t.Errorf("publicURL = %q", cfg.Server.PublicURL)
	}
	var oc v1alpha1.MCPOIDCConfig
	eventually(t, "the MCPOIDCConfig lists its gateway", func() (bool, string) {
		if err := env.client.Get(context.Background(), key(ns, "corp-idp"), &oc); err != nil {
			return false, err.Error()
		}
		return slices.Equal(oc.Status.Gateways, []string{"corp"}), fmt.Sprint(oc.Status.Gateways)
	})

	// Secrets named by the MCPOIDCConfig and by the MCPServer roll the pods.
	for _, secret := range []string{"introspection", "backend-key"} {
		hash := deployment(t, ns, "vmcp-corp").Spec.Template.Annotations[controller.AnnotationConfigHash]
		patch(t, secretObject(ns, secret), `{"metadata":{"annotations":{"rotated":"yes"}},"stringData":{"x":"y"}}`)
		eventually(t, "a change to Secret "+secret+" rolls the pods", func() (bool, string) {
			got := deployment(t, ns, "vmcp-corp").Spec.Template.Annotations[controller.AnnotationConfigHash]
			return got != hash, got
		})
	}

	// A bad issuer is reported in the MCPOIDCConfig's terms.
	patch(t, &oc, `{"spec":{"inline":{"issuer":"ftp://idp.example.com"}}}`)
	waitCondition(t, vs, v1alpha1.ConditionAuthConfigured, metav1.ConditionFalse,
		`MCPOIDCConfig corp-idp spec.inline.issuer: "ftp://idp.example.com" must be an absolute http or https URL`)
	// And a bad backend setting in the MCPServer's.
	patch(t, &oc, `{"spec":{"inline":{"issuer":"https://idp.example.com"}}}`)
	patch(t, &v1alpha1.MCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "search"}},
		`{"spec":{"outgoingAuth":{"type":"upstream_inject","headerInjection":null,"upstreamInject":{"provider":"google"}}}}`)
	waitCondition(t, vs, v1alpha1.ConditionAuthConfigured, metav1.ConditionFalse,
		"MCPServer search spec.outgoingAuth.upstreamInject.provider: names an upstream provider, but there is no authServerConfig")
}

// TestOperatorBinary runs cmd/vmcp-operator as users do (flags, kubeconfig,
// leader election) beside the tests' own operator, which holds the lease:
// the binary serves its probes and metrics and waits to lead.
func TestOperatorBinary(t *testing.T) {
	if env.client == nil {
		t.Skip("envtest is not running (see TestMain)")
	}
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "vmcp-operator")
	build := exec.Command("go", "build", "-o", bin, "./cmd/vmcp-operator")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building vmcp-operator: %v\n%s", err, out)
	}
	user, err := env.te.AddUser(envtest.User{Name: "vmcp-operator-binary", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	metrics, probes := vmcptest.FreeAddr(t), vmcptest.FreeAddr(t)
	cmd := exec.Command(bin, "--leader-elect", "--leader-election-namespace", operatorNamespace,
		"--metrics-bind-address", metrics, "--health-probe-bind-address", probes, "--vmcp-image", "example/vmcp:1")
	cmd.Env = []string{"KUBECONFIG=" + kc, "HOME=" + dir}
	cmd.Stdout, cmd.Stderr = testWriter{t, "vmcp-operator"}, testWriter{t, "vmcp-operator"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	eventually(t, "the operator's /readyz", func() (bool, string) {
		code, body := get("http://" + probes + "/readyz")
		return code == http.StatusOK, body
	})
	eventually(t, "the operator's metrics", func() (bool, string) {
		_, body := get("http://" + metrics + "/metrics")
		return strings.Contains(body, "leader_election_master_status"), body
	})
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("vmcp-operator exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Errorf("vmcp-operator did not stop within 30s of SIGTERM")
	}
}
