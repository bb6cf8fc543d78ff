package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of these resources.
var GroupVersion = schema.GroupVersion{Group: "vmcp.dev", Version: "v1alpha1"}

// AddToScheme registers the resources of this package in s.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&VirtualMCPServer{}, &VirtualMCPServerList{},
		&MCPGroup{}, &MCPGroupList{},
		&MCPServer{}, &MCPServerList{},
		&MCPOIDCConfig{}, &MCPOIDCConfigList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
