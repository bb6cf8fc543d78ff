package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// MCPGroupSpec describes a set of backends. MCPServers join it with
// spec.groupRef; VirtualMCPServers serve it with spec.groupRef.
type MCPGroupSpec struct {
	// Description is for people.
	// +optional
	Description string `json:"description,omitempty"`
}

// MCPGroupStatus lists the group's members.
type MCPGroupStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Servers are the names of the MCPServers in the group.
	// +listType=atomic
	// +optional
	Servers []string `json:"servers,omitempty"`

	// ServerCount is the number of Servers.
	// +optional
	ServerCount int32 `json:"serverCount"`

	// Gateways are the names of the VirtualMCPServers serving the group.
	// +listType=atomic
	// +optional
	Gateways []string `json:"gateways,omitempty"`
}

// MCPGroup is a set of backend MCP servers that VirtualMCPServers serve.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mcpg,categories=vmcp-all
// +kubebuilder:printcolumn:name="Servers",type=integer,JSONPath=`.status.serverCount`
// +kubebuilder:printcolumn:name="Description",type=string,JSONPath=`.spec.description`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MCPGroup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec MCPGroupSpec `json:"spec,omitempty"`
	// +optional
	Status MCPGroupStatus `json:"status,omitempty"`
}

// MCPGroupList is a list of MCPGroups.
//
// +kubebuilder:object:root=true
type MCPGroupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MCPGroup `json:"items"`
}
