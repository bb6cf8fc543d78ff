package controller_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vmcp-dev/vmcp/api/v1alpha1"
	"github.com/vmcp-dev/vmcp/internal/config"
	"github.com/vmcp-dev/vmcp/internal/controller"
)

var seedSample = filepath.Join("..", "..", "config", "samples", "seed.yaml")

// seedObjects returns the objects of config/samples/seed.yaml with the
// MCPServer's URL set to backend.
func seedObjects(t *testing.T, backend string) []*unstructured.Unstructured {
	t.Helper()
	objs := readObjects(t, seedSample, nil)
	set(t, find(t, objs, "MCPServer", "everything"), backend, "spec", "url")
	return objs
}

// generated returns the configuration document the operator wrote for a
// gateway, parsed as vmcp parses it.
func generated(t *testing.T, ns, name string) *config.Config {
	t.Helper()
	var cm corev1.ConfigMap
	if err := env.client.Get(context.Background(), key(ns, "vmcp-"+name), &cm); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(cm.Data[controller.ConfigKey]), "generated")
	if err != nil {
		t.Fatalf("the generated configuration does not parse: %v\n%s", err, cm.Data[controller.ConfigKey])
	}
	return cfg
}

func deployment(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	return get[appsv1.Deployment](t, ns, name)
}

// TestSeedSampleIsTheSeedManifest checks that the sample's gateway is the
// seed manifest with only apiVersion changed: the seed works as written.
func TestSeedSampleIsTheSeedManifest(t *testing.T) {
	t.Parallel()
	seed := readObjects(t, filepath.Join("..", "..", "docs", "examples", "seed-manifest.yaml"), nil)
	if len(seed) != 1 {
		t.Fatalf("the seed manifest holds %d objects", len(seed))
	}
	want := seed[0].Object
	want["apiVersion"] = v1alpha1.GroupVersion.String()
	got := find(t, readObjects(t, seedSample, nil), "VirtualMCPServer", "gateway").Object
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config/samples/seed.yaml's VirtualMCPServer is not the seed manifest (-seed +sample):\n%s", diff)
	}
}

// TestSeedManifest applies the seed manifest with its MCPOIDCConfig and
// Secrets, and checks what the operator makes of it.
func TestSeedManifest(t *testing.T) {
	ns := setup(t)
	backend := startGoBackend(t)
	create(t, ns, seedObjects(t, backend)...)
	vs := &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gateway"}}
	waitCondition(t, vs, v1alpha1.ConditionBackendsDiscovered, metav1.ConditionTrue, "1 backends from MCPGroup my-mcps (1 remote, 0 run by the operator): everything")
	waitCondition(t, vs, v1alpha1.ConditionAuthConfigured, metav1.ConditionTrue, "authorization server https://gateway.example.com", "2 Secrets mounted")
	waitCondition(t, vs, v1alpha1.ConditionAuthzConfigured, metav1.ConditionTrue)
	waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionFalse, "0 of 1 vmcp pods available")

	cfg := generated(t, ns, "gateway")
	if diff := cmp.Diff([]config.Backend{{Name: "everything", URL: backend, Transport: config.TransportStreamableHTTP}}, cfg.Backends); diff != "" {
		t.Errorf("backends (-want +got):\n%s", diff)
	}
	if cfg.Name != "gateway" || cfg.Server.PublicURL != "https://gateway.example.com/mcp" || cfg.Server.Listen != "0.0.0.0:4483" {
		t.Errorf("name %q, publicURL %q, listen %q", cfg.Name, cfg.Server.PublicURL, cfg.Server.Listen)
	}
	if ref := cfg.IncomingAuth.OIDCConfigRef; ref == nil || ref.Audience != "https://gateway.example.com/mcp" {
		t.Errorf("incomingAuth.oidcConfigRef = %+v, want the embedded authorization server's tokens", ref)
	}
	if az := cfg.IncomingAuth.AuthzConfig; az.PrimaryUpstreamProvider != "google" || az.Inline.Policies[0] != "permit(principal, action, resource);" {
		t.Errorf("authzConfig = %+v", az)
	}

	d := deployment(t, ns, "vmcp-gateway")
	vs = gateway(t, ns, "gateway")
	pod := d.Spec.Template.Spec
	if got := d.Spec.Template.Annotations[controller.AnnotationConfigHash]; got == "" || got != vs.Status.ConfigHash {
		t.Errorf("pod annotation %s = %q, status.configHash %q", controller.AnnotationConfigHash, got, vs.Status.ConfigHash)
	}
	c := pod.Containers[0]
	if c.Image != env.image || !slices.Equal(c.Args, []string{"serve", "--config", "/etc/vmcp/config.yaml", "--state-dir", "/var/lib/vmcp"}) {
		t.Errorf("container image %q args %q", c.Image, c.Args)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: readiness %s, liveness %s", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}
	if !slices.Contains(c.Env, corev1.EnvVar{Name: config.SecretsDirEnv, Value: controller.SecretsDir}) {
		t.Errorf("env %v lacks %s", c.Env, config.SecretsDirEnv)
	}
	mounted := map[string][]string{}
	for _, v := range pod.Volumes {
		if s := v.Secret; s != nil {
			for _, it := range s.Items {
				mounted[s.SecretName] = append(mounted[s.SecretName], it.Key+"->"+it.Path)
			}
			if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
				return m.Name == v.Name && m.MountPath == controller.SecretsDir+"/"+s.SecretName && m.ReadOnly
			}) {
				t.Errorf("Secret %s is not mounted read-only at %s/%s: %v", s.SecretName, controller.SecretsDir, s.SecretName, c.VolumeMounts)
			}
		}
	}
	// vmcp runs as 65532, and the Secrets' files are readable by its group
	// (they are root's, so a mode of 0400 would lock vmcp out).
	if sc := pod.SecurityContext; sc == nil || sc.FSGroup == nil || *sc.FSGroup != 65532 || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		t.Errorf("pod security context %+v: want user and fsGroup 65532", sc)
	}
	for _, v := range pod.Volumes {
		if s := v.Secret; s != nil && (s.DefaultMode == nil || *s.DefaultMode != 0o440) {
			t.Errorf("Secret volume %s mode %v, want 0440", v.Name, s.DefaultMode)
		}
	}
	want := map[string][]string{"hmac-secret": {"hmac-key->hmac-key"}, "google-oauth": {"clientSecret->clientSecret"}}
	if diff := cmp.Diff(want, mounted); diff != "" {
		t.Errorf("Secret volumes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"google-oauth", "hmac-secret"}, vs.Status.Secrets); diff != "" {
		t.Errorf("status.secrets (-want +got):\n%s", diff)
	}
	if vs.Status.URL != "http://vmcp-gateway."+ns+".svc:4483/mcp" {
		t.Errorf("status.url = %q", vs.Status.URL)
	}

	// vmcp validate accepts the generated document, as the operator did.
	bin, err := vmcpBinary()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(generatedText(t, ns, "gateway")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "validate", "--config", file).CombinedOutput(); err != nil || !strings.Contains(string(out), "valid (1 backends") {
		t.Errorf("vmcp validate on the generated document: %v\n%s", err, out)
	}

	// The test plays the kubelet: vmcp runs on the mounted ConfigMap and
	// Secrets and answers its readiness probe; the gateway is then Ready.
	base := runPod(t, ns, "vmcp-gateway")
	waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionTrue, "1 of 1 vmcp pods available at http://vmcp-gateway."+ns+".svc:4483/mcp")
	// The seed's gateway asks for a token of its own authorization server.
	resp := httpGet(t, base+"/mcp")
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "https://gateway.example.com/.well-known/oauth-protected-resource") {
		t.Errorf("GET /mcp without a token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

// TestSeedOwnedObjects checks the owner references that make deleting a
// gateway delete its ConfigMap, Deployment and Service. envtest runs no
// garbage collector, so the deletion itself is Kubernetes' part: the test
// checks that each object names the gateway, by UID, as its controller and
// blocks its owner's foreground deletion, and that the gateway itself goes
// away without waiting for the operator (no finalizer).
func TestSeedOwnedObjects(t *testing.T) {
	ns := setup(t)
	ctx := context.Background()
	create(t, ns, seedObjects(t, "http://127.0.0.1:1/mcp")...)
	vs := &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gateway"}}
	waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionFalse, "0 of 1 vmcp pods available")
	owned := []client.Object{&corev1.ConfigMap{}, &appsv1.Deployment{}, &corev1.Service{}}
	for _, o := range owned {
		if err := env.client.Get(ctx, key(ns, "vmcp-gateway"), o); err != nil {
			t.Fatalf("%T: %v", o, err)
		}
		refs := o.GetOwnerReferences()
		want := []metav1.OwnerReference{{APIVersion: "vmcp.dev/v1alpha1", Kind: "VirtualMCPServer", Name: "gateway", UID: vs.UID,
			Controller: ptr(true), BlockOwnerDeletion: ptr(true)}}
		if diff := cmp.Diff(want, refs); diff != "" {
			t.Errorf("%T owner references (-want +got):\n%s", o, diff)
		}
		if o.GetLabels()[controller.LabelManagedBy] != controller.ManagedBy {
			t.Errorf("%T labels %v", o, o.GetLabels())
		}
	}
	if err := env.client.Delete(ctx, vs); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the VirtualMCPServer is deleted", func() (bool, string) {
		err := env.client.Get(ctx, key(ns, "gateway"), &v1alpha1.VirtualMCPServer{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}

func ptr[T any](v T) *T { return &v }

// TestSecretUpdateRollsPods updates a Secret the gateway reads: the pod
// template's hash annotation changes (so the Deployment rolls its pods),
// the configuration document does not.
func TestSecretUpdateRollsPods(t *testing.T) {
	ns := setup(t)
	create(t, ns, seedObjects(t, "http://127.0.0.1:1/mcp")...)
	vs := &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gateway"}}
	waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionFalse, "0 of 1 vmcp pods available")
	before := deployment(t, ns, "vmcp-gateway")
	hash := before.Spec.Template.Annotations[controller.AnnotationConfigHash]
	doc := generatedText(t, ns, "gateway")

	patch(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hmac-secret"}},
		`{"stringData":{"hmac-key":"0123456789abcdef0123456789abcdef-rotated"}}`)
	var after *appsv1.Deployment
	eventually(t, "the pod template's hash annotation changes", func() (bool, string) {
		after = deployment(t, ns, "vmcp-gateway")
		got := after.Spec.Template.Annotations[controller.AnnotationConfigHash]
		return got != hash, got
	})
	if after.Generation == before.Generation {
		t.Errorf("the Deployment's generation stayed %d: its pods would not roll", after.Generation)
	}
	if got := generatedText(t, ns, "gateway"); got != doc {
		t.Errorf("the configuration document changed with a Secret:\n%s\n---\n%s", doc, got)
	}
	eventually(t, "status.configHash follows", func() (bool, string) {
		got := gateway(t, ns, "gateway").Status.ConfigHash
		return got == after.Spec.Template.Annotations[controller.AnnotationConfigHash], got
	})
	// The annotation is a hash of versions, not of the Secret's value.
	if strings.Contains(fmt.Sprint(after.Spec.Template.Annotations), "rotated") {
		t.Errorf("the annotation shows the Secret: %v", after.Spec.Template.Annotations)
	}
}

func generatedText(t *testing.T, ns, name string) string {
	t.Helper()
	var cm corev1.ConfigMap
	if err := env.client.Get(context.Background(), key(ns, "vmcp-"+name), &cm); err != nil {
		t.Fatal(err)
	}
	return cm.Data[controller.ConfigKey]
}

// TestImageServer runs an MCPServer from an image: the operator makes its
// Deployment and Service, the gateway reaches it through the Service, and
// turning it into a remote server removes them.
func TestImageServer(t *testing.T) {
	ns := setup(t)
	objs := readObjects(t, filepath.Join("..", "..", "config", "samples", "walkthrough.yaml"), nil)
	create(t, ns, objs...)
	s := &v1alpha1.MCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "everything"}}
	waitCondition(t, s, v1alpha1.ConditionReady, metav1.ConditionFalse, "no pod of Deployment mcp-everything is available")
	waitCondition(t, s, v1alpha1.ConditionGroupRefValid, metav1.ConditionTrue, "in MCPGroup demo")
	url := "http://mcp-everything." + ns + ".svc:8080/mcp"
	if s.Status.URL != url {
		t.Errorf("status.url = %q, want %q", s.Status.URL, url)
	}
	d := deployment(t, ns, "mcp-everything")
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "node:22-alpine" || c.Args[0] != "npx" || c.Env[0].Name != "PORT" || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("container %+v", c)
	}
	var svc corev1.Service
	if err := env.client.Get(context.Background(), key(ns, "mcp-everything"), &svc); err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{d, &svc} {
		if refs := o.GetOwnerReferences(); len(refs) != 1 || refs[0].Kind != "MCPServer" || refs[0].UID != s.UID || !*refs[0].Controller {
			t.Errorf("%T owner references %+v", o, refs)
		}
	}
	vs := &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "demo"}}
	waitCondition(t, vs, v1alpha1.ConditionBackendsDiscovered, metav1.ConditionTrue, "1 backends from MCPGroup demo (0 remote, 1 run by the operator): everything")
	if got := generated(t, ns, "demo").Backends[0].URL; got != url {
		t.Errorf("the gateway reaches the server at %q, want %q", got, url)
	}
	var g v1alpha1.MCPGroup
	eventually(t, "the MCPGroup lists its server and gateway", func() (bool, string) {
		if err := env.client.Get(context.Background(), key(ns, "demo"), &g); err != nil {
			return false, err.Error()
		}
		return g.Status.ServerCount == 1 && slices.Equal(g.Status.Servers, []string{"everything"}) && slices.Equal(g.Status.Gateways, []string{"demo"}),
			fmt.Sprintf("%+v", g.Status)
	})

	patch(t, s, `{"spec":{"image":null,"args":null,"env":null,"port":null,"path":null,"url":"http://everything.example.com/mcp"}}`)
	eventually(t, "the Deployment and Service go", func() (bool, string) {
		errD := env.client.Get(context.Background(), key(ns, "mcp-everything"), &appsv1.Deployment{})
		errS := env.client.Get(context.Background(), key(ns, "mcp-everything"), &corev1.Service{})
		return apierrors.IsNotFound(errD) && apierrors.IsNotFound(errS), fmt.Sprint(errD, errS)
	})
	eventually(t, "the gateway follows", func() (bool, string) {
		got := generated(t, ns, "demo").Backends[0].URL
		return got == "http://everything.example.com/mcp", got
	})
}
