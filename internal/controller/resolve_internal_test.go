package controller

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vmcp-dev/vmcp/api/v1alpha1"
)

func TestParsePolicyDoc(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		text         string
		wantPolicies []any
		wantEntities string
		wantErr      bool
	}{
		{name: "cedar text", text: "permit (principal, action, resource);\n", wantPolicies: []any{"permit (principal, action, resource);\n"}},
		{
			name:         "toolhive json",
			text:         `{"version":"1.0","type":"cedarv1","cedar":{"policies":["permit(principal, action, resource);","forbid(principal, action, resource) when { false };"],"entities_json":"[]"}}`,
			wantPolicies: []any{"permit(principal, action, resource);", "forbid(principal, action, resource) when { false };"},
			wantEntities: "[]",
		},
		{name: "json without cedar", text: `{"policies":["permit(principal, action, resource);"]}`, wantErr: true},
		{name: "broken json", text: `{"cedar":`, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, e, err := parsePolicyDoc(tc.text)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.wantPolicies, p); diff != "" {
				t.Errorf("policies (-want +got):\n%s", diff)
			}
			if e != tc.wantEntities {
				t.Errorf("entities = %q, want %q", e, tc.wantEntities)
			}
		})
	}
}

func TestSecretNames(t *testing.T) {
	t.Parallel()
	spec := &v1alpha1.VirtualMCPServerSpec{GatewaySpec: v1alpha1.GatewaySpec{
		AuthServerConfig: &v1alpha1.AuthServerConfig{
			HMACSecretRefs: []v1alpha1.SecretRef{{Name: "hmac", Key: "a"}, {Name: "hmac", Key: "b"}},
			UpstreamProviders: []v1alpha1.UpstreamProvider{{Name: "g", Type: "oidc",
				OIDCConfig: &v1alpha1.UpstreamOIDC{ClientSecretRef: &v1alpha1.SecretRef{Name: "google", Key: "s"}}}},
		},
		OutgoingAuth: &v1alpha1.OutgoingAuth{Backends: map[string]v1alpha1.BackendAuth{
			"x": {Type: "header_injection", HeaderInjection: &v1alpha1.HeaderInjection{ValueSecretRef: &v1alpha1.SecretRef{Name: "apikey", Key: "k"}}},
		}},
	}}
	if diff := cmp.Diff([]string{"apikey", "google", "hmac"}, secretNames(spec)); diff != "" {
		t.Errorf("secretNames (-want +got):\n%s", diff)
	}
}
