package controller_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vmcp-dev/vmcp/api/v1alpha1"
)

// TestBrokenGateways applies broken variants of the seed manifest. Each
// reaches a condition whose message names the field and the fix; nothing
// is deployed while it would not start; and once the user does what the
// message says, the gateway is applied.
func TestBrokenGateways(t *testing.T) {
	t.Parallel()
	type fixFunc func(t *testing.T, ns string)
	cases := []struct {
		name   string
		break_ func(t *testing.T, objs []*unstructured.Unstructured) []*unstructured.Unstructured
		cond   string
		reason string
		want   []string
		// blocking: nothing may be applied.
		blocking bool
		fix      fixFunc
	}{
		{
			name: "missing secret",
			break_: func(_ *testing.T, o []*unstructured.Unstructured) []*unstructured.Unstructured {
				return without(o, "Secret", "hmac-secret")
			},
			cond: v1alpha1.ConditionAuthConfigured, reason: v1alpha1.ReasonNotFound, blocking: true,
			want: []string{`Secret "hmac-secret" (spec.authServerConfig.hmacSecretRefs[0]) does not exist in namespace`,
				"kubectl create secret generic hmac-secret --from-literal=hmac-key="},
			fix: func(t *testing.T, ns string) {
				create(t, ns, find(t, readObjects(t, seedSample, nil), "Secret", "hmac-secret"))
			},
		},
		{
			name: "secret without the key",
			break_: func(t *testing.T, o []*unstructured.Unstructured) []*unstructured.Unstructured {
				set(t, find(t, o, "Secret", "google-oauth"), map[string]any{"client-secret": "x"}, "stringData")
				return o
			},
			cond: v1alpha1.ConditionAuthConfigured, reason: v1alpha1.ReasonNotFound, blocking: true,
			want: []string{`Secret google-oauth has no key "clientSecret" (spec.authServerConfig.upstreamProviders[0].oidcConfig.clientSecretRef); its keys: client-secret`},
			fix: func(t *testing.T, ns string) {
				patch(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "google-oauth"}}, `{"stringData":{"clientSecret":"s3cret"}}`)
			},
		},
		{
			// The seed's root cause: policies bound to a provider that is
			// not the one users log in with.
			name: "misspelled provider",
			break_: func(t *testing.T, o []*unstructured.Unstructured) []*unstructured.Unstructured {
				set(t, find(t, o, "VirtualMCPServer", "gateway"), "gogle", "spec", "incomingAuth", "authzConfig", "primaryUpstreamProvider")
				return o
			},
			cond: v1alpha1.ConditionAuthzConfigured, reason: v1alpha1.ReasonInvalid, blocking: true,
			want: []string{`spec.incomingAuth.authzConfig.primaryUpstreamProvider: "gogle" is not an upstream provider (one of google)`},
			fix: func(t *testing.T, ns string) {
				patch(t, &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gateway"}},
					`{"spec":{"incomingAuth":{"authzConfig":{"primaryUpstreamProvider":"google"}}}}`)
			},
		},
		{
			name: "backend in no group",
			break_: func(t *testing.T, o []*unstructured.Unstructured) []*unstructured.Unstructured {
				unstructured.RemoveNestedField(find(t, o, "MCPServer", "everything").Object, "spec", "groupRef")
				return o
			},
			cond: v1alpha1.ConditionBackendsDiscovered, reason: v1alpha1.ReasonNoBackends,
			want: []string{"MCPGroup my-mcps has no MCPServers", "MCPServer everything has no spec.groupRef, so no gateway serves it (set spec.groupRef.name: my-mcps to add it here)"},
			fix: func(t *testing.T, ns string) {
				s := &v1alpha1.MCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "everything"}}
				waitCondition(t, s, v1alpha1.ConditionGroupRefValid, metav1.ConditionFalse,
					"spec.groupRef is not set, so no VirtualMCPServer serves this server: set spec.groupRef.name to an MCPGroup of namespace "+ns+" (my-mcps)")
				patch(t, s, `{"spec":{"groupRef":{"name":"my-mcps"}}}`)
				waitCondition(t, s, v1alpha1.ConditionGroupRefValid, metav1.ConditionTrue)
			},
		},
		{
			name: "missing group",
			break_: func(_ *testing.T, o []*unstructured.Unstructured) []*unstructured.Unstructured {
				return without(o, "MCPGroup", "my-mcps")
			},
			cond: v1alpha1.ConditionBackendsDiscovered, reason: v1alpha1.ReasonNotFound,
			want: []string{`MCPGroup "my-mcps" (spec.groupRef.name) does not exist in namespace`, "create it, or name one of: none",
				`MCPServer everything names MCPGroup "my-mcps", which does not exist`},
			fix: func(t *testing.T, ns string) {
				create(t, ns, find(t, readObjects(t, seedSample, nil), "MCPGroup", "my-mcps"))
			},
		},
		{
			name: "missing MCPOIDCConfig",
			break_: func(_ *testing.T, o []*unstructured.Unstructured) []*unstructured.Unstructured {
				return without(o, "MCPOIDCConfig", "gateway-incoming")
			},
			cond: v1alpha1.ConditionAuthConfigured, reason: v1alpha1.ReasonNotFound, blocking: true,
			want: []string{`MCPOIDCConfig "gateway-incoming" (spec.incomingAuth.oidcConfigRef.name) does not exist in namespace`,
				"create it with spec.type: inline and spec.inline.issuer: https://gateway.example.com (authServerConfig.issuer"},
			fix: func(t *testing.T, ns string) {
				create(t, ns, find(t, readObjects(t, seedSample, nil), "MCPOIDCConfig", "gateway-incoming"))
			},
		},
		{
			name: "policy that does not parse",
			break_: func(t *testing.T, o []*unstructured.Unstructured) []*unstructured.Unstructured {
				set(t, find(t, o, "VirtualMCPServer", "gateway"), []any{"permit(principal, action, resource);", "permit(principal, action"},
					"spec", "incomingAuth", "authzConfig", "inline", "policies")
				return o
			},
			cond: v1alpha1.ConditionAuthzConfigured, reason: v1alpha1.ReasonInvalid, blocking: true,
			want: []string{"spec.incomingAuth.authzConfig.inline.policies[1]: "},
			fix: func(t *testing.T, ns string) {
				patch(t, &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gateway"}},
					`{"spec":{"incomingAuth":{"authzConfig":{"inline":{"policies":["permit(principal, action, resource);"]}}}}}`)
			},
		},
		{
			name: "audience that is not the public URL",
			break_: func(t *testing.T, o []*unstructured.Unstructured) []*unstructured.Unstructured {
				set(t, find(t, o, "VirtualMCPServer", "gateway"), "https://other.example.com/mcp", "spec", "server", "publicURL")
				return o
			},
			cond: v1alpha1.ConditionAuthConfigured, reason: v1alpha1.ReasonInvalid, blocking: true,
			want: []string{"the audience of spec.incomingAuth.oidcConfigRef (https://gateway.example.com/mcp) is not spec.server.publicURL (https://other.example.com/mcp)",
				"leave spec.server.publicURL unset"},
			fix: func(t *testing.T, ns string) {
				patch(t, &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gateway"}}, `{"spec":{"server":null}}`)
			},
		},
		{
			name: "several replicas",
			break_: func(t *testing.T, o []*unstructured.Unstructured) []*unstructured.Unstructured {
				set(t, find(t, o, "VirtualMCPServer", "gateway"), int64(3), "spec", "replicas")
				return o
			},
			cond: v1alpha1.ConditionReady, reason: v1alpha1.ReasonSharedStateRequired, blocking: true,
			want: []string{"spec.replicas is 3, but spec.storage.type is embedded (the default)",
				"set spec.storage.type: redis with spec.storage.redis (addr, or sentinel) and spec.storage.encryptionKeyRefs to share them between replicas, or set spec.replicas: 1"},
			fix: func(t *testing.T, ns string) {
				patch(t, &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gateway"}}, `{"spec":{"replicas":1}}`)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := setup(t)
			create(t, ns, tc.break_(t, seedObjects(t, "http://127.0.0.1:1/mcp"))...)
			vs := &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gateway"}}
			c := waitCondition(t, vs, tc.cond, metav1.ConditionFalse, tc.want...)
			if c.Reason != tc.reason {
				t.Errorf("%s reason = %q, want %q", tc.cond, c.Reason, tc.reason)
			}
			ready := waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionFalse)
			if tc.blocking {
				if !strings.HasPrefix(ready.Message, "not applied (what runs, if anything, is unchanged): ") || !strings.Contains(ready.Message, tc.want[0]) {
					t.Errorf("Ready message = %q", ready.Message)
				}
				err := env.client.Get(context.Background(), key(ns, "vmcp-gateway"), &appsv1.Deployment{})
				if !apierrors.IsNotFound(err) {
					t.Errorf("a Deployment exists for a gateway that would not start: %v", err)
				}
			}
			tc.fix(t, ns)
			if tc.cond != v1alpha1.ConditionReady {
				waitCondition(t, vs, tc.cond, metav1.ConditionTrue)
			}
			waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionFalse, "0 of 1 vmcp pods available")
			deployment(t, ns, "vmcp-gateway")
		})
	}
}

// TestBreakingKeepsWhatRuns breaks a gateway that was applied: the
// condition says why, and the ConfigMap and Deployment stay as they were.
func TestBreakingKeepsWhatRuns(t *testing.T) {
	ns := setup(t)
	create(t, ns, seedObjects(t, "http://127.0.0.1:1/mcp")...)
	vs := &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gateway"}}
	waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionFalse, "0 of 1 vmcp pods available")
	before := deployment(t, ns, "vmcp-gateway")
	var cm corev1.ConfigMap
	if err := env.client.Get(context.Background(), key(ns, "vmcp-gateway"), &cm); err != nil {
		t.Fatal(err)
	}
	patch(t, vs, `{"spec":{"incomingAuth":{"authzConfig":{"primaryUpstreamProvider":"gogle"}}}}`)
	waitCondition(t, vs, v1alpha1.ConditionAuthzConfigured, metav1.ConditionFalse, `"gogle" is not an upstream provider (one of google)`)
	waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionFalse, "not applied")
	after := deployment(t, ns, "vmcp-gateway")
	var cmAfter corev1.ConfigMap
	if err := env.client.Get(context.Background(), key(ns, "vmcp-gateway"), &cmAfter); err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != before.ResourceVersion || cmAfter.ResourceVersion != cm.ResourceVersion {
		t.Errorf("the running gateway changed: Deployment %s -> %s, ConfigMap %s -> %s",
			before.ResourceVersion, after.ResourceVersion, cm.ResourceVersion, cmAfter.ResourceVersion)
	}
}

// TestCELRules checks the rules the API server enforces itself.
func TestCELRules(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		edit func(t *testing.T, vs *unstructured.Unstructured)
		want string
	}{
		{
			name: "several providers without a primary",
			edit: func(t *testing.T, vs *unstructured.Unstructured) {
				providers, _, _ := unstructured.NestedSlice(vs.Object, "spec", "authServerConfig", "upstreamProviders")
				second := map[string]any{"name": "okta", "type": "oidc", "oidcConfig": map[string]any{"issuerUrl": "https://okta.example.com", "clientId": "x"}}
				set(t, vs, append(providers, second), "spec", "authServerConfig", "upstreamProviders")
			},
			want: "spec.incomingAuth.authzConfig: Required value: with several authServerConfig.upstreamProviders, policies need to know whose identity they see",
		},
		{
			name: "two different groups",
			edit: func(t *testing.T, vs *unstructured.Unstructured) { set(t, vs, "other", "spec", "config", "groupRef") },
			want: "spec.config.groupRef: Invalid value: config.groupRef differs from groupRef.name: set the same group in both, or only one of them",
		},
		{
			name: "a policy type vmcp does not have",
			edit: func(t *testing.T, vs *unstructured.Unstructured) {
				set(t, vs, "opa", "spec", "incomingAuth", "authzConfig", "type")
			},
			want: `spec.incomingAuth.authzConfig.type: Unsupported value: "opa": supported values: "inline", "configMap"`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := setup(t)
			vs := find(t, readObjects(t, seedSample, nil), "VirtualMCPServer", "gateway")
			tc.edit(t, vs)
			vs.SetNamespace(ns)
			err := env.client.Create(context.Background(), vs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("create: %v\nwant an error with %q", err, tc.want)
			}
		})
	}
}

// patch applies a JSON merge patch to obj, as kubectl patch --type merge.
func patch(t *testing.T, obj client.Object, p string) {
	t.Helper()
	if err := env.client.Patch(context.Background(), obj, client.RawPatch("application/merge-patch+json", []byte(p))); err != nil {
		t.Fatalf("patching %s: %v", obj.GetName(), err)
	}
}

// TestApplyFailure gives a gateway policies that fit their own ConfigMap
// but make the generated one too large for the API server: the failure is
// a condition with the API server's reason, not only a log line.
func TestApplyFailure(t *testing.T) {
	ns := setup(t)
	var policy strings.Builder
	policy.WriteString("permit (principal, action, resource);\n")
	for policy.Len() < 1000000 {
		policy.WriteString("// a long comment line that pads the policy document towards a megabyte\n")
	}
	objs := readObjects(t, filepath.Join("..", "..", "config", "samples", "walkthrough.yaml"), nil)
	set(t, find(t, objs, "ConfigMap", "demo-policies"), map[string]any{"policies.cedar": policy.String()}, "data")
	create(t, ns, objs...)
	vs := &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "demo"}}
	c := waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionFalse, "applying failed, retrying", "ConfigMap", "vmcp-demo")
	if c.Reason != v1alpha1.ReasonApplyFailed {
		t.Errorf("Ready reason %q, want %q", c.Reason, v1alpha1.ReasonApplyFailed)
	}
	t.Log(c.Message)
}

// TestNameTaken: a Deployment of the gateway's name that is not the
// operator's is left alone, and the condition says so.
func TestNameTaken(t *testing.T) {
	ns := setup(t)
	ctx := context.Background()
	labels := map[string]string{"app": "mine"}
	theirs := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vmcp-gateway"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/app:1"}}}},
		},
	}
	if err := env.client.Create(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	create(t, ns, seedObjects(t, "http://127.0.0.1:1/mcp")...)
	vs := &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gateway"}}
	c := waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionFalse,
		"Deployment vmcp-gateway already exists and is not this gateway's: delete or rename it, or give the VirtualMCPServer another name")
	if c.Reason != v1alpha1.ReasonNameTaken {
		t.Errorf("reason %q", c.Reason)
	}
	after := deployment(t, ns, "vmcp-gateway")
	if after.ResourceVersion != theirs.ResourceVersion || len(after.OwnerReferences) != 0 {
		t.Errorf("the operator changed someone else's Deployment: resourceVersion %s -> %s, owners %v",
			theirs.ResourceVersion, after.ResourceVersion, after.OwnerReferences)
	}
	if err := env.client.Get(ctx, key(ns, "vmcp-gateway"), &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
		t.Errorf("a ConfigMap was applied for a gateway whose Deployment name is taken: %v", err)
	}
	if err := env.client.Delete(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	patch(t, vs, `{"metadata":{"annotations":{"touched":"1"}}}`)
	waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionFalse, "0 of 1 vmcp pods available")
}
