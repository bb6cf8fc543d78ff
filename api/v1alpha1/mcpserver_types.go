package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MCPServerSpec is one backend MCP server: remote (url), or a container
// the operator runs as a Deployment and a Service (image), serving MCP over
// streamable HTTP or SSE on port at path.
//
// +kubebuilder:validation:XValidation:rule="has(self.url) != has(self.image)",message="set url (a server running elsewhere) or image (a container the operator runs), not both"
// +kubebuilder:validation:XValidation:rule="has(self.image) || (!has(self.args) && !has(self.env) && !has(self.port) && !has(self.path) && !has(self.resources))",message="args, env, port, path and resources describe the container of an image server; a url server has none"
type MCPServerSpec struct {
	// GroupRef is the MCPGroup this server belongs to. A server in no group
	// is served by no gateway.
	// +optional
	GroupRef *GroupRef `json:"groupRef,omitempty"`

	// URL of a remote server's MCP endpoint (http or https).
	// +kubebuilder:validation:Pattern=`^https?://`
	// +optional
	URL string `json:"url,omitempty"`

	// Transport is streamable-http (default) or sse.
	// +kubebuilder:validation:Enum=streamable-http;sse
	// +optional
	Transport string `json:"transport,omitempty"`

	// Image is the container image of a server the operator runs.
	// +optional
	Image string `json:"image,omitempty"`

	// Args are the container's arguments.
	// +listType=atomic
	// +optional
	Args []string `json:"args,omitempty"`

	// Env is the container's environment.
	// +listType=atomic
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`

	// Port the container serves MCP on. Default: 8080.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// Path of the MCP endpoint in the container. Default: /mcp.
	// +kubebuilder:validation:Pattern=`^/`
	// +optional
	Path string `json:"path,omitempty"`

	// Resources of the container.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// OutgoingAuth is how vmcp authenticates to this server, used when the
	// gateway's outgoingAuth.source is discovered (the default).
	// +optional
	OutgoingAuth *BackendAuth `json:"outgoingAuth,omitempty"`
}

// Condition types of an MCPServer.
const (
	// ConditionGroupRefValid is True when spec.groupRef names an existing
	// MCPGroup.
	ConditionGroupRefValid = "GroupRefValid"
)

// MCPServerStatus is what the operator observed.
type MCPServerStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: GroupRefValid, and Ready (for an image server, whether
	// its Deployment has an available pod).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// URL is the address vmcp uses to reach the server.
	// +optional
	URL string `json:"url,omitempty"`
}

// MCPServer is a backend MCP server.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mcps,categories=vmcp-all
// +kubebuilder:printcolumn:name="Group",type=string,JSONPath=`.spec.groupRef.name`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 59",message="metadata.name must be at most 59 characters: an image server's Service is named mcp-<name>"
type MCPServer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec MCPServerSpec `json:"spec,omitempty"`
	// +optional
	Status MCPServerStatus `json:"status,omitempty"`
}

// MCPServerList is a list of MCPServers.
//
// +kubebuilder:object:root=true
type MCPServerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MCPServer `json:"items"`
}
