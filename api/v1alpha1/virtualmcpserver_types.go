package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// VirtualMCPServerSpec is a gateway: vmcp's configuration document
// ([GatewaySpec], the same fields standalone vmcp reads) and how the
// operator runs it. The backends are the MCPServers of spec.groupRef.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.authServerConfig) && has(self.authServerConfig.upstreamProviders) && size(self.authServerConfig.upstreamProviders) > 1 && has(self.incomingAuth) && has(self.incomingAuth.authzConfig)) || has(self.incomingAuth.authzConfig.primaryUpstreamProvider) || (has(self.incomingAuth.authzConfig.claimsFrom) && self.incomingAuth.authzConfig.claimsFrom == 'token')",message="with several authServerConfig.upstreamProviders, policies need to know whose identity they see: set incomingAuth.authzConfig.primaryUpstreamProvider to the name of one of them, or set incomingAuth.authzConfig.claimsFrom: token",fieldPath=".incomingAuth.authzConfig",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="!has(self.groupRef) || !has(self.config) || !has(self.config.groupRef) || self.config.groupRef == self.groupRef.name",message="config.groupRef differs from groupRef.name: set the same group in both, or only one of them",fieldPath=".config.groupRef"
type VirtualMCPServerSpec struct {
	GatewaySpec `json:",inline"`

	// Replicas is the number of vmcp pods. Default: 1. With an
	// authorization server (authServerConfig), several replicas need its
	// state shared between them: storage.type redis. With embedded storage
	// (the default) or memory, the operator refuses more than one with
	// Ready=False (reason SharedStateRequired) and leaves the running
	// gateway as it is.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// StateVolume is the PersistentVolumeClaim the operator creates for
	// the embedded store (storage.type embedded, the default, with an
	// authServerConfig), named vmcp-<name>-state, owned by the gateway
	// and mounted at /var/lib/vmcp. Not used with other storage types.
	// +optional
	StateVolume *StateVolume `json:"stateVolume,omitempty"`

	// Image is the vmcp container image. Default: the operator's
	// --vmcp-image (the image the operator itself was released with).
	// +optional
	Image string `json:"image,omitempty"`

	// Resources of the vmcp container.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// Port is the port of the Service and the container. Default: 4483.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// ServiceType is the type of the Service in front of the pods.
	// Default: ClusterIP.
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	// +optional
	ServiceType corev1.ServiceType `json:"serviceType,omitempty"`
}

// StateVolume sizes and places the embedded store's PersistentVolumeClaim.
type StateVolume struct {
	// Size is the claim's storage request. Default: 1Gi. It can grow (if
	// the StorageClass allows expansion), never shrink.
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// StorageClassName is the claim's StorageClass. Default: the cluster's
	// default StorageClass. A claim's class cannot change once created.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// Condition types of a VirtualMCPServer.
const (
	// ConditionReady is True when the configuration is valid, applied, and
	// at least one vmcp pod is available.
	ConditionReady = "Ready"
	// ConditionBackendsDiscovered is True when the group exists and has
	// MCPServers; its message counts them.
	ConditionBackendsDiscovered = "BackendsDiscovered"
	// ConditionAuthConfigured is True when incoming authentication, the
	// authorization server and outgoing authentication are valid and every
	// Secret and MCPOIDCConfig they reference exists.
	ConditionAuthConfigured = "AuthConfigured"
	// ConditionAuthzConfigured is True when the Cedar policies (inline or
	// from their ConfigMap) are valid, or when there are none.
	ConditionAuthzConfigured = "AuthzConfigured"
)

// Condition reasons of a VirtualMCPServer.
const (
	ReasonValid               = "Valid"
	ReasonInvalid             = "Invalid"
	ReasonNotFound            = "NotFound"
	ReasonNoGroup             = "NoGroup"
	ReasonNoBackends          = "NoBackends"
	ReasonDiscovered          = "Discovered"
	ReasonNotConfigured       = "NotConfigured"
	ReasonAvailable           = "Available"
	ReasonUnavailable         = "Unavailable"
	ReasonConfigInvalid       = "ConfigInvalid"
	ReasonSharedStateRequired = "SharedStateRequired"
	ReasonApplyFailed         = "ApplyFailed"
	ReasonNameTaken           = "NameTaken"
)

// VirtualMCPServerStatus is what the operator observed and did.
type VirtualMCPServerStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, BackendsDiscovered, AuthConfigured, AuthzConfigured.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// URL is the MCP endpoint inside the cluster.
	// +optional
	URL string `json:"url,omitempty"`

	// Backends are the names of the backends in the applied configuration.
	// +listType=atomic
	// +optional
	Backends []string `json:"backends,omitempty"`

	// BackendCount is the number of Backends.
	// +optional
	BackendCount int32 `json:"backendCount"`

	// Secrets are the Secrets the configuration reads (mounted as files
	// under VMCP_SECRETS_DIR).
	// +listType=atomic
	// +optional
	Secrets []string `json:"secrets,omitempty"`

	// ConfigHash is the hash of the applied configuration and the versions
	// of its Secrets; the pods carry it as an annotation, so a change rolls
	// them.
	// +optional
	ConfigHash string `json:"configHash,omitempty"`

	// AvailableReplicas is the number of available vmcp pods.
	// +optional
	AvailableReplicas int32 `json:"availableReplicas"`
}

// VirtualMCPServer is a virtual MCP gateway: one MCP endpoint in front of
// the MCPServers of a group. The operator runs it as a Deployment and a
// Service, configured by a ConfigMap it generates.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=vmcp,categories=vmcp-all
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Backends",type=integer,JSONPath=`.status.backendCount`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 58",message="metadata.name must be at most 58 characters: the Service is named vmcp-<name>"
type VirtualMCPServer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec VirtualMCPServerSpec `json:"spec,omitempty"`
	// +optional
	Status VirtualMCPServerStatus `json:"status,omitempty"`
}

// VirtualMCPServerList is a list of VirtualMCPServers.
//
// +kubebuilder:object:root=true
type VirtualMCPServerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VirtualMCPServer `json:"items"`
}
