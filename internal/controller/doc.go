// Package controller is the vmcp operator: controller-runtime reconcilers
// for the vmcp.dev/v1alpha1 resources.
//
// A VirtualMCPServer is resolved (resolve.go) into the configuration
// document standalone vmcp reads: its spec, the MCPServers of its group as
// backends, its MCPOIDCConfig, its Cedar policies from a ConfigMap. The
// document is checked by config.Parse and app.Validate, the code path of
// `vmcp validate`, and every problem becomes a status condition naming the
// field and the fix. A valid document is applied (objects.go) as a
// ConfigMap, a Deployment that mounts the referenced Secrets under
// VMCP_SECRETS_DIR, and a Service, all owned by the VirtualMCPServer; the
// embedded store also gets a PersistentVolumeClaim (storage.go), and only
// Redis storage allows several replicas. An invalid one changes nothing
// that runs.
//
// Secrets and ConfigMaps are never cached: they are watched as metadata
// only and read from the API server when a gateway needs them.
//
// This package does not serve MCP and knows nothing about the gateway's
// internals beyond internal/config and app.Validate.
package controller
