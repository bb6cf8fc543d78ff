package controller_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// TestInstallManifests checks config/default as TestMain installed it
// (rendered by kustomize, applied to the API server, which validated every
// object): the operator's Deployment, its identity and its permissions.
// That the operator works with those permissions is what every other test
// shows, since the manager runs as the ServiceAccount.
func TestInstallManifests(t *testing.T) {
	if env.client == nil {
		t.Skip("envtest is not running (see TestMain)")
	}
	t.Parallel()
	ctx := context.Background()
	var kinds []string
	for _, o := range env.installed {
		kinds = append(kinds, o.GetKind()+"/"+o.GetName())
	}
	slices.Sort(kinds)
	want := []string{
		"ClusterRole/vmcp-operator", "ClusterRoleBinding/vmcp-operator",
		"CustomResourceDefinition/mcpgroups.vmcp.dev", "CustomResourceDefinition/mcpoidcconfigs.vmcp.dev",
		"CustomResourceDefinition/mcpservers.vmcp.dev", "CustomResourceDefinition/virtualmcpservers.vmcp.dev",
		"Deployment/vmcp-operator", "Namespace/vmcp-system", "Role/vmcp-operator-leader-election",
		"RoleBinding/vmcp-operator-leader-election", "ServiceAccount/vmcp-operator",
	}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("config/default objects (-want +got):\n%s", diff)
	}

	var d appsv1.Deployment
	if err := env.client.Get(ctx, key(operatorNamespace, "vmcp-operator"), &d); err != nil {
		t.Fatal(err)
	}
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	if pod.ServiceAccountName != "vmcp-operator" || !slices.Contains(c.Args, "--leader-elect") {
		t.Errorf("service account %q, args %q", pod.ServiceAccountName, c.Args)
	}
	if !slices.Contains(c.Env, corev1.EnvVar{Name: "VMCP_IMAGE", Value: c.Image}) || c.Image != "ghcr.io/vmcp-dev/vmcp:latest" {
		t.Errorf("image %q, env %v: gateways must default to the operator's own image", c.Image, c.Env)
	}
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes %+v %+v", c.LivenessProbe, c.ReadinessProbe)
	}

	// The image holds the binaries where the manifests run them.
	dockerfile, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"COPY --from=build /out/vmcp /out/vmcp-operator /usr/local/bin/",
		`ENTRYPOINT ["/usr/local/bin/vmcp"]`,
		"./cmd/vmcp ./cmd/vmcp-operator",
	} {
		if !strings.Contains(string(dockerfile), line) {
			t.Errorf("Dockerfile lacks %q", line)
		}
	}
	if !slices.Equal(c.Command, []string{"/usr/local/bin/vmcp-operator"}) {
		t.Errorf("operator command %q", c.Command)
	}

	// The ClusterRole is the one controller-gen generates from the
	// reconcilers' markers.
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var generated rbacv1.ClusterRole
	if err := yaml.Unmarshal(data, &generated); err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := env.client.Get(ctx, client.ObjectKey{Name: "vmcp-operator"}, &role); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(generated.Rules, role.Rules); diff != "" {
		t.Errorf("installed ClusterRole (-generated +installed):\n%s", diff)
	}

	// The operator's identity is not an administrator: it may read Secrets,
	// not write them.
	sa := rest.CopyConfig(env.cfg)
	sa.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + operatorNamespace + ":vmcp-operator",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + operatorNamespace, "system:authenticated"},
	}
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	c2, err := client.New(sa, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	err = c2.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "not-allowed"}})
	if !apierrors.IsForbidden(err) {
		t.Errorf("the operator's ServiceAccount created a Secret: %v", err)
	}
}
