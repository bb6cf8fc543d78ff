package controller_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vmcp-dev/vmcp/api/v1alpha1"
	"github.com/vmcp-dev/vmcp/internal/config"
	"github.com/vmcp-dev/vmcp/internal/controller"
	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
	"github.com/vmcp-dev/vmcp/internal/testsupport/redistest"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

var redisSample = filepath.Join("..", "..", "config", "samples", "redis.yaml")

// sampleObjects reads the objects of a sample with every occurrence of
// each key of replace replaced by its value.
func sampleObjects(t *testing.T, path string, replace ...string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer(replace...).Replace(string(b))
	objs, err := decodeObjects([]byte(text))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return objs
}

// secretValue is a value of a Secret in objs.
func secretValue(t *testing.T, objs []*unstructured.Unstructured, name, k string) string {
	t.Helper()
	v, ok, _ := unstructured.NestedString(find(t, objs, "Secret", name).Object, "stringData", k)
	if !ok {
		t.Fatalf("Secret %s has no stringData %s", name, k)
	}
	return v
}

// secretMounts lists a pod's Secret volumes as "secret/key" items mounted
// read-only at SecretsDir/<secret>.
func secretMounts(t *testing.T, pod corev1.PodSpec) []string {
	t.Helper()
	var got []string
	c := pod.Containers[0]
	for _, v := range pod.Volumes {
		s := v.Secret
		if s == nil {
			continue
		}
		for _, it := range s.Items {
			got = append(got, s.SecretName+"/"+it.Key)
		}
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.Name == v.Name && m.MountPath == controller.SecretsDir+"/"+s.SecretName && m.ReadOnly
		}) {
			t.Errorf("Secret %s is not mounted read-only at %s/%s: %v", s.SecretName, controller.SecretsDir, s.SecretName, c.VolumeMounts)
		}
	}
	slices.Sort(got)
	return got
}

// noClaim fails the test if the gateway has a state volume claim.
func noClaim(t *testing.T, ns string) {
	t.Helper()
	err := env.client.Get(context.Background(), key(ns, "vmcp-gateway-state"), &corev1.PersistentVolumeClaim{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("PersistentVolumeClaim vmcp-gateway-state: %v, want none", err)
	}
}

// TestRedisSample is docs/kubernetes.md's storage example
// (config/samples/redis.yaml) with the test's addresses: a real
// redis-server with the sample's password, an IdP, a backend. The gateway
// of three replicas is applied with every storage Secret mounted; two vmcp
// processes run on the ConfigMap the operator generated, behind a
// round-robin balancer (the Service); a user logs in through it, the
// OAuth requests landing on both; the token one issued is accepted by the
// other, which also refreshes it, after which the old refresh token is
// refused on the first. Updating the Redis password Secret rolls the pods.
func TestRedisSample(t *testing.T) {
	ns := setup(t)
	plain := readObjects(t, redisSample, nil)
	rs := redistest.Start(t, &redistest.Options{Password: secretValue(t, plain, "vmcp-redis", "password")})
	idp := fakeidp.Start(t, fakeidp.Options{ClientSecret: secretValue(t, plain, "idp", "clientSecret")})
	lbAddr := vmcptest.FreeAddr(t)
	issuer := "http://" + lbAddr
	create(t, ns, sampleObjects(t, redisSample,
		"https://mcp.example.com", issuer,
		"https://login.example.com", idp.URL(),
		"redis:6379", rs.Addr,
		"http://docs-mcp.tools.svc:8080/mcp", startGoBackend(t))...)
	vs := &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gateway"}}
	waitCondition(t, vs, v1alpha1.ConditionAuthConfigured, metav1.ConditionTrue, "3 Secrets mounted")
	waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionFalse, "0 of 3 vmcp pods available")

	d := deployment(t, ns, "vmcp-gateway")
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	if *d.Spec.Replicas != 3 {
		t.Errorf("replicas = %d, want 3", *d.Spec.Replicas)
	}
	wantStrategy := appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: ptr(intstr.FromInt32(0)), MaxSurge: ptr(intstr.FromInt32(1))}}
	if diff := cmp.Diff(wantStrategy, d.Spec.Strategy); diff != "" {
		t.Errorf("strategy (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"idp/clientSecret", "vmcp-redis/password", "vmcp-storage/key-1"}, secretMounts(t, pod)); diff != "" {
		t.Errorf("Secret volumes (-want +got):\n%s", diff)
	}
	if !slices.Contains(c.Env, corev1.EnvVar{Name: config.SecretsDirEnv, Value: controller.SecretsDir}) {
		t.Errorf("env %v lacks %s", c.Env, config.SecretsDirEnv)
	}
	if slices.Contains(c.Args, "--state-dir") || slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.PersistentVolumeClaim != nil }) {
		t.Errorf("a Redis gateway's pods have a state volume: args %q, volumes %+v", c.Args, pod.Volumes)
	}
	noClaim(t, ns)
	if got := get[corev1.Service](t, ns, "vmcp-gateway").Spec.SessionAffinity; got != corev1.ServiceAffinityClientIP {
		t.Errorf("Service sessionAffinity = %q, want ClientIP (2025-11-25 sessions live on one pod)", got)
	}
	cfg := generated(t, ns, "gateway")
	if got, want := cfg.Storage.Redis.KeyPrefix, "vmcp:"+ns+":gateway:"; got != want {
		t.Errorf("storage.redis.keyPrefix = %q, want %q: gateways named alike in two namespaces must not share keys", got, want)
	}

	// Two pods from the one ConfigMap, behind the Service.
	pods := []*testPod{startPod(t, ns, "vmcp-gateway"), startPod(t, ns, "vmcp-gateway")}
	waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionTrue, "2 of 3 vmcp pods available")
	lb := vmcptest.NewRoundRobin(pods[0].base, pods[1].base)
	lb.Serve(t, lbAddr)
	tok := vmcptest.Login(t, issuer)
	var oauth []int
	for _, p := range []string{"/oauth/register", "/oauth/authorize", "/oauth/callback", "/oauth/token"} {
		oauth = append(oauth, lb.ServedBy(p)...)
	}
	if !slices.Contains(oauth, 0) || !slices.Contains(oauth, 1) {
		t.Errorf("the login's OAuth requests were served by pods %v; want both", oauth)
	}
	issuedBy := lb.ServedBy("/oauth/token")[0]
	other := pods[1-issuedBy]
	for i, p := range pods {
		status, body := vmcptest.Stateless(t, p.base+"/mcp", tok.Access, "tools/call", "docs_hello", `"name":"docs_hello","arguments":{"name":"redis"}`)
		if status != http.StatusOK || !strings.Contains(body, "hello redis") {
			t.Errorf("pod %d (the token is pod %d's): %d %s", i, issuedBy, status, body)
		}
	}
	refreshed := vmcptest.PostForm(t, other.base+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.Refresh}, "client_id": {tok.Client}})
	if refreshed.Status != http.StatusOK || refreshed.Str("access_token") == "" {
		t.Fatalf("refresh on the pod that did not issue the token: %d %v", refreshed.Status, refreshed.Body)
	}
	replayed := vmcptest.PostForm(t, pods[issuedBy].base+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.Refresh}, "client_id": {tok.Client}})
	if replayed.Status == http.StatusOK {
		t.Errorf("the refresh token rotated on one pod was accepted again on the other: %v", replayed.Body)
	}

	// A new Redis password rolls the pods; the document stays.
	hash := deployment(t, ns, "vmcp-gateway").Spec.Template.Annotations[controller.AnnotationConfigHash]
	doc := generatedText(t, ns, "gateway")
	patch(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vmcp-redis"}}, `{"stringData":{"password":"rotated-password"}}`)
	eventually(t, "the pod template's hash annotation changes with the Redis password", func() (bool, string) {
		got := deployment(t, ns, "vmcp-gateway").Spec.Template.Annotations[controller.AnnotationConfigHash]
		return got != hash, got
	})
	if got := generatedText(t, ns, "gateway"); got != doc {
		t.Errorf("the configuration document changed with a Secret:\n%s\n---\n%s", doc, got)
	}
}

// TestRedisStorageSecrets: every Secret of Redis storage (the encryption
// keys, the password, the sentinels' password, the TLS CA) is mounted, and
// a missing one is a condition naming the field and the fix.
func TestRedisStorageSecrets(t *testing.T) {
	ns := setup(t)
	objs := seedObjects(t, "http://127.0.0.1:1/mcp")
	vs := find(t, objs, "VirtualMCPServer", "gateway")
	set(t, vs, int64(2), "spec", "replicas")
	set(t, vs, map[string]any{
		"type":              "redis",
		"encryptionKeyRefs": []any{map[string]any{"name": "keys", "key": "new"}, map[string]any{"name": "keys", "key": "old"}},
		"redis": map[string]any{
			"sentinel":    map[string]any{"masterName": "vmcp", "addrs": []any{"sentinel:26379"}, "passwordRef": map[string]any{"name": "sentinel", "key": "password"}},
			"passwordRef": map[string]any{"name": "redis", "key": "password"},
			"tls":         map[string]any{"caRef": map[string]any{"name": "redis-tls", "key": "ca.crt"}},
		},
	}, "spec", "storage")
	secret := func(name string, data map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret",
			"metadata": map[string]any{"name": name}, "stringData": data}}
	}
	create(t, ns, append(objs,
		secret("keys", map[string]any{"new": strings.Repeat("n", 32), "old": strings.Repeat("o", 32), "unused": "x"}),
		secret("redis", map[string]any{"password": "p"}),
		secret("redis-tls", map[string]any{"ca.crt": "-----BEGIN CERTIFICATE-----", "tls.key": "not for vmcp"}))...)
	g := &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gateway"}}
	waitCondition(t, g, v1alpha1.ConditionReady, metav1.ConditionFalse,
		`Secret "sentinel" (spec.storage.redis.sentinel.passwordRef) does not exist in namespace `+ns+": create it with key password")
	create(t, ns, secret("sentinel", map[string]any{"password": "s"}))
	waitCondition(t, g, v1alpha1.ConditionReady, metav1.ConditionFalse, "0 of 2 vmcp pods available")
	want := []string{"google-oauth/clientSecret", "hmac-secret/hmac-key", "keys/new", "keys/old", "redis-tls/ca.crt", "redis/password", "sentinel/password"}
	if diff := cmp.Diff(want, secretMounts(t, deployment(t, ns, "vmcp-gateway").Spec.Template.Spec)); diff != "" {
		t.Errorf("Secret volumes (-want +got):\n%s", diff)
	}
	noClaim(t, ns)
}

// TestReplicasNeedSharedStorage: more than one replica of a gateway with
// an authorization server is refused unless its storage is Redis, with a
// message naming the field and the fix, and nothing is applied; doing what
// the message says applies it. A gateway without an authorization server
// stores nothing and may have any number.
func TestReplicasNeedSharedStorage(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		storage map[string]any // spec.storage; nil: unset
		want    string
	}{
		{name: "default", want: "spec.replicas is 3, but spec.storage.type is embedded (the default): the authorization server's registered clients, tokens and logins are in one database file on one volume, which one pod at a time can open"},
		{name: "embedded", storage: map[string]any{"type": "embedded"}, want: "spec.replicas is 3, but spec.storage.type is embedded: "},
		{name: "memory", storage: map[string]any{"type": "memory"}, want: "spec.replicas is 3, but spec.storage.type is memory: each pod would keep its own registered clients, tokens and logins"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := setup(t)
			objs := seedObjects(t, "http://127.0.0.1:1/mcp")
			vs := find(t, objs, "VirtualMCPServer", "gateway")
			set(t, vs, int64(3), "spec", "replicas")
			if tc.storage != nil {
				set(t, vs, tc.storage, "spec", "storage")
			}
			keys := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret",
				"metadata": map[string]any{"name": "vmcp-storage"}, "stringData": map[string]any{"key": strings.Repeat("k", 32)}}}
			create(t, ns, append(objs, keys)...)
			g := &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gateway"}}
			c := waitCondition(t, g, v1alpha1.ConditionReady, metav1.ConditionFalse, "not applied", tc.want,
				"set spec.storage.type: redis with spec.storage.redis (addr, or sentinel) and spec.storage.encryptionKeyRefs to share them between replicas, or set spec.replicas: 1")
			if c.Reason != v1alpha1.ReasonSharedStateRequired {
				t.Errorf("reason %q, want %s", c.Reason, v1alpha1.ReasonSharedStateRequired)
			}
			if err := env.client.Get(context.Background(), key(ns, "vmcp-gateway"), &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
				t.Errorf("a Deployment was applied: %v", err)
			}
			noClaim(t, ns)

			patch(t, g, `{"spec":{"storage":{"type":"redis","encryptionKeyRefs":[{"name":"vmcp-storage","key":"key"}],"redis":{"addr":"redis:6379"}}}}`)
			waitCondition(t, g, v1alpha1.ConditionReady, metav1.ConditionFalse, "0 of 3 vmcp pods available")
			if d := deployment(t, ns, "vmcp-gateway"); *d.Spec.Replicas != 3 {
				t.Errorf("replicas = %d, want 3", *d.Spec.Replicas)
			}
		})
	}
	t.Run("no authorization server", func(t *testing.T) {
		ns := setup(t)
		objs := readObjects(t, filepath.Join("..", "..", "config", "samples", "walkthrough.yaml"), nil)
		set(t, find(t, objs, "VirtualMCPServer", "demo"), int64(3), "spec", "replicas")
		create(t, ns, objs...)
		g := &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "demo"}}
		waitCondition(t, g, v1alpha1.ConditionReady, metav1.ConditionFalse, "0 of 3 vmcp pods available")
		d := deployment(t, ns, "vmcp-demo")
		if *d.Spec.Replicas != 3 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
			t.Errorf("replicas %d, strategy %s", *d.Spec.Replicas, d.Spec.Strategy.Type)
		}
		if slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.PersistentVolumeClaim != nil }) {
			t.Errorf("a gateway without an authorization server has a state volume: %+v", d.Spec.Template.Spec.Volumes)
		}
		err := env.client.Get(context.Background(), key(ns, "vmcp-demo-state"), &corev1.PersistentVolumeClaim{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("PersistentVolumeClaim vmcp-demo-state: %v, want none", err)
		}
	})
}

// TestEmbeddedStateVolume: a gateway with an authorization server and no
// spec.storage (the sample less its storage and replicas) keeps its state
// in the embedded store on a PersistentVolumeClaim of its own, one pod at a
// time. A pod replaced by another (a rollout) keeps every login: the old
// access token still works and the refresh token refreshes. The claim
// grows, never shrinks; a class that differs from the claim's is refused
// with the fix; switching to Redis and back changes the strategy each way.
func TestEmbeddedStateVolume(t *testing.T) {
	ns := setup(t)
	ctx := context.Background()
	plain := readObjects(t, redisSample, nil)
	idp := fakeidp.Start(t, fakeidp.Options{ClientSecret: secretValue(t, plain, "idp", "clientSecret")})
	lbAddr := vmcptest.FreeAddr(t)
	issuer := "http://" + lbAddr
	objs := sampleObjects(t, redisSample,
		"https://mcp.example.com", issuer,
		"https://login.example.com", idp.URL(),
		"http://docs-mcp.tools.svc:8080/mcp", startGoBackend(t))
	vsObj := find(t, objs, "VirtualMCPServer", "gateway")
	unstructured.RemoveNestedField(vsObj.Object, "spec", "storage")
	unstructured.RemoveNestedField(vsObj.Object, "spec", "replicas")
	// A class that allows the claim to grow (there is no provisioner).
	class := "vmcp-expandable-" + ns
	set(t, vsObj, map[string]any{"storageClassName": class}, "spec", "stateVolume")
	sc := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
		"metadata": map[string]any{"name": class}, "provisioner": "vmcp.test/none", "allowVolumeExpansion": true}}
	if err := env.client.Create(ctx, sc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.client.Delete(context.Background(), sc) })
	create(t, ns, objs...)
	vs := &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gateway"}}
	waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionFalse, "0 of 1 vmcp pods available",
		"PersistentVolumeClaim vmcp-gateway-state is Pending (kubectl describe pvc -n "+ns+" vmcp-gateway-state; without a default StorageClass set spec.stateVolume.storageClassName)")

	var pvc corev1.PersistentVolumeClaim
	if err := env.client.Get(ctx, key(ns, "vmcp-gateway-state"), &pvc); err != nil {
		t.Fatal(err)
	}
	want := []metav1.OwnerReference{{APIVersion: "vmcp.dev/v1alpha1", Kind: "VirtualMCPServer", Name: "gateway", UID: gateway(t, ns, "gateway").UID,
		Controller: ptr(true), BlockOwnerDeletion: ptr(true)}}
	if diff := cmp.Diff(want, pvc.OwnerReferences); diff != "" {
		t.Errorf("claim owner references (-want +got):\n%s", diff)
	}
	if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) ||
		got.String() != "1Gi" || pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != class || pvc.Labels[controller.LabelManagedBy] != controller.ManagedBy {
		t.Errorf("claim: access %v, request %s, class %v, labels %v", pvc.Spec.AccessModes, got.String(), pvc.Spec.StorageClassName, pvc.Labels)
	}
	d := deployment(t, ns, "vmcp-gateway")
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	if diff := cmp.Diff(appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}, d.Spec.Strategy); diff != "" {
		t.Errorf("strategy (-want +got):\n%s", diff)
	}
	if !slices.Equal(c.Args, []string{"serve", "--config", "/etc/vmcp/config.yaml", "--state-dir", controller.StateDir}) {
		t.Errorf("args %q", c.Args)
	}
	if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
		return v.Name == "state" && v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "vmcp-gateway-state"
	}) || !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == "state" && m.MountPath == controller.StateDir && !m.ReadOnly
	}) {
		t.Errorf("volumes %+v, mounts %+v: want claim vmcp-gateway-state mounted at %s", pod.Volumes, c.VolumeMounts, controller.StateDir)
	}
	if sc := pod.SecurityContext; sc.FSGroup == nil || *sc.FSGroup != 65532 {
		t.Errorf("fsGroup %v: the volume must be writable by vmcp's group", sc.FSGroup)
	}
	if cfg := generated(t, ns, "gateway"); cfg.Storage.Type != config.StorageEmbedded {
		t.Errorf("storage.type = %q", cfg.Storage.Type)
	}

	// A pod, a login; the pod is replaced; the login lives on.
	first := startPod(t, ns, "vmcp-gateway")
	waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionTrue, "1 of 1 vmcp pods available")
	lb := vmcptest.NewRoundRobin(first.base)
	lb.Serve(t, lbAddr)
	tok := vmcptest.Login(t, issuer)
	first.stop()
	lb.Remove(0)
	if files, err := os.ReadDir(claimDir(t, ns, "vmcp-gateway-state")); err != nil || len(files) == 0 {
		t.Errorf("nothing was written on the state volume: %v", err)
	}
	second := startPod(t, ns, "vmcp-gateway")
	lb.Add(second.base)
	if status, body := vmcptest.Stateless(t, issuer+"/mcp", tok.Access, "tools/list", "", ""); status != http.StatusOK || !strings.Contains(body, "docs_hello") {
		t.Errorf("the access token after the pod was replaced: %d %s", status, body)
	}
	refreshed := vmcptest.PostForm(t, issuer+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.Refresh}, "client_id": {tok.Client}})
	if refreshed.Status != http.StatusOK || refreshed.Str("access_token") == "" {
		t.Errorf("refresh after the pod was replaced: %d %v", refreshed.Status, refreshed.Body)
	}

	// The claim grows, and does not shrink when asked to.
	patch(t, vs, `{"spec":{"stateVolume":{"size":"2Gi"}}}`)
	claimSize := func(want string) {
		t.Helper()
		eventually(t, "the claim requests "+want, func() (bool, string) {
			if err := env.client.Get(ctx, key(ns, "vmcp-gateway-state"), &pvc); err != nil {
				return false, err.Error()
			}
			got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
			return got.Cmp(resource.MustParse(want)) == 0, got.String()
		})
	}
	claimSize("2Gi")
	patch(t, vs, `{"spec":{"stateVolume":{"size":"1Gi"}}}`)
	waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionTrue, "1 of 1 vmcp pods available")
	claimSize("2Gi")

	// A claim's class cannot change: the condition says what to do.
	patch(t, vs, `{"spec":{"stateVolume":{"storageClassName":"other"}}}`)
	cond := waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionFalse,
		"spec.stateVolume.storageClassName is other, but PersistentVolumeClaim vmcp-gateway-state has StorageClass "+class+", which a claim cannot change: set it back to "+class+
			", or delete the claim (kubectl delete pvc -n "+ns+" vmcp-gateway-state; every login it holds is lost) to have it made again")
	if cond.Reason != v1alpha1.ReasonInvalid {
		t.Errorf("reason %q", cond.Reason)
	}
	// Unset, the claim keeps its class.
	patch(t, vs, `{"spec":{"stateVolume":{"storageClassName":null}}}`)
	waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionTrue, "1 of 1 vmcp pods available")

	// To Redis and back: the strategy follows, the claim stays.
	patch(t, vs, `{"spec":{"storage":{"type":"redis","encryptionKeyRefs":[{"name":"vmcp-storage","key":"key-1"}],"redis":{"addr":"redis:6379"}}}}`)
	eventually(t, "the Deployment rolls with Redis", func() (bool, string) {
		d = deployment(t, ns, "vmcp-gateway")
		claimed := slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.PersistentVolumeClaim != nil })
		return d.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType && !claimed && !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--state-dir"),
			fmt.Sprintf("%+v, state volume %v", d.Spec.Strategy, claimed)
	})
	if err := env.client.Get(ctx, key(ns, "vmcp-gateway-state"), &pvc); err != nil {
		t.Errorf("the claim is gone after a switch to Redis: %v", err)
	}
	patch(t, vs, `{"spec":{"storage":null}}`)
	eventually(t, "the Deployment is Recreate again", func() (bool, string) {
		d = deployment(t, ns, "vmcp-gateway")
		return d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType && d.Spec.Strategy.RollingUpdate == nil, fmt.Sprintf("%+v", d.Spec.Strategy)
	})
}

// TestRecreateAfterAnOlderOperator: a Deployment an older operator
// applied without a strategy has the API server's defaults (RollingUpdate
// with its parameters, owned by no field manager), which an apply of
// Recreate leaves and the API server then refuses. The gateway, now on the
// embedded store, still gets its Recreate Deployment.
func TestRecreateAfterAnOlderOperator(t *testing.T) {
	ns := setup(t)
	ctx := context.Background()
	objs := seedObjects(t, "http://127.0.0.1:1/mcp")
	set(t, find(t, objs, "VirtualMCPServer", "gateway"), int64(3), "spec", "replicas") // nothing applied yet
	create(t, ns, objs...)
	vs := &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gateway"}}
	waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionFalse, "spec.replicas is 3")
	labels := map[string]string{controller.LabelName: "vmcp", controller.LabelInstance: "gateway"}
	older := appsv1ac.Deployment("vmcp-gateway", ns).
		WithLabels(map[string]string{controller.LabelManagedBy: controller.ManagedBy}).
		WithOwnerReferences(metav1ac.OwnerReference().WithAPIVersion("vmcp.dev/v1alpha1").WithKind("VirtualMCPServer").
			WithName("gateway").WithUID(vs.UID).WithController(true).WithBlockOwnerDeletion(true)).
		WithSpec(appsv1ac.DeploymentSpec().WithReplicas(1).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(labels)).
			WithTemplate(corev1ac.PodTemplateSpec().WithLabels(labels).
				WithSpec(corev1ac.PodSpec().WithContainers(corev1ac.Container().WithName("vmcp").WithImage(env.image)))))
	if err := env.client.Apply(ctx, older, controller.FieldOwner, client.ForceOwnership); err != nil {
		t.Fatal(err)
	}
	if d := deployment(t, ns, "vmcp-gateway"); d.Spec.Strategy.RollingUpdate == nil {
		t.Fatalf("the API server did not default the strategy: %+v", d.Spec.Strategy)
	}
	patch(t, vs, `{"spec":{"replicas":1}}`)
	waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionFalse, "0 of 1 vmcp pods available", "PersistentVolumeClaim vmcp-gateway-state is Pending")
	d := deployment(t, ns, "vmcp-gateway")
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate != nil {
		t.Errorf("strategy %+v, want Recreate", d.Spec.Strategy)
	}
}
