package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// MCPOIDCConfigSpec says which bearer tokens a gateway accepts. A
// VirtualMCPServer names it in spec.incomingAuth.oidcConfigRef, with the
// audience. An issuer equal to the gateway's own authServerConfig.issuer
// means the tokens of vmcp's embedded authorization server; any other
// issuer is validated as incomingAuth.oidcConfig would be.
//
// +kubebuilder:validation:XValidation:rule="self.type != 'inline' || has(self.inline)",message="type inline needs inline.issuer",fieldPath=".inline"
type MCPOIDCConfigSpec struct {
	// Type is where the settings are: inline (the only type so far).
	// +kubebuilder:validation:Enum=inline
	// +required
	Type string `json:"type"`

	// Inline holds the settings: the fields of incomingAuth.oidcConfig. An
	// audience set here is used when the reference has none.
	// +optional
	Inline *OIDCConfig `json:"inline,omitempty"`
}

// MCPOIDCConfigStatus is what the operator observed.
type MCPOIDCConfigStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Gateways are the VirtualMCPServers that reference this config.
	// +listType=atomic
	// +optional
	Gateways []string `json:"gateways,omitempty"`
}

// MCPOIDCConfig holds incoming token validation settings shared by
// gateways.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mcpoidc,categories=vmcp-all
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.spec.inline.issuer`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MCPOIDCConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec MCPOIDCConfigSpec `json:"spec,omitempty"`
	// +optional
	Status MCPOIDCConfigStatus `json:"status,omitempty"`
}

// MCPOIDCConfigList is a list of MCPOIDCConfigs.
//
// +kubebuilder:object:root=true
type MCPOIDCConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MCPOIDCConfig `json:"items"`
}
