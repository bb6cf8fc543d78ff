// Package config reads and validates vmcp's configuration file.
//
// The file is shaped like the spec of a Kubernetes VirtualMCPServer, so the
// same document works on a laptop and in a cluster: either the bare spec, or a
// whole manifest (apiVersion, kind, metadata, spec). Standalone mode adds an
// inline backends list and a server block.
//
// Every error names the file, the line and the field path. Unknown fields are
// errors. Defaults are applied in one place, [Config.applyDefaults].
//
// This package knows nothing about HTTP, MCP or the other packages of vmcp;
// cmd/vmcp turns a [Config] into their options.
package config
