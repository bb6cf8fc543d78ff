// Package v1alpha1 is the vmcp.dev/v1alpha1 API: the custom resources the
// vmcp operator reconciles.
//
//   - [VirtualMCPServer]: a gateway. Its spec is vmcp's configuration
//     document ([GatewaySpec], the file standalone vmcp reads, generated from
//     internal/config) plus how to run it (replicas, image, resources).
//   - [MCPGroup]: a set of backends, joined by [MCPServer.Spec.GroupRef].
//   - [MCPServer]: one backend, remote (a URL) or run by the operator (a
//     container image serving streamable HTTP).
//   - [MCPOIDCConfig]: incoming token validation settings, referenced by
//     spec.incomingAuth.oidcConfigRef.
//
// This is the only package of the module meant to be imported by others.
// It depends on k8s.io/api and k8s.io/apimachinery only.
//
// +kubebuilder:object:generate=true
// +groupName=vmcp.dev
package v1alpha1
