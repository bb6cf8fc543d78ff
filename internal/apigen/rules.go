package main

// rootType is the config type the spec is generated from, and rootName the
// API type it becomes (embedded inline in VirtualMCPServerSpec).
const (
	rootType = "Config"
	rootName = "GatewaySpec"
	rootDoc  = `// GatewaySpec is the part of a VirtualMCPServer's spec that is vmcp's own
// configuration document (docs/configuration.md): the operator writes it,
// with the backends of the group, into the ConfigMap vmcp reads.`
)

// rule is what Kubernetes adds to a generated field or type (kubebuilder
// markers), or that it drops the field.
type rule struct {
	Drop     bool     // the field has no meaning in a cluster
	Required bool     // +required, no omitempty, no pointer
	Markers  []string // kubebuilder markers, without the "// "
}

func enum(values string) rule {
	return rule{Markers: []string{"+kubebuilder:validation:Enum=" + values}}
}

// rules is keyed by "Type.Field" (Go names of the config package) for
// fields, and by "Type" for types. apigen fails if a key matches nothing.
var rules = map[string]rule{
	// Standalone-only settings: the operator sets or replaces them.
	"Config.Name":      {Drop: true}, // metadata.name
	"Config.Backends":  {Drop: true}, // the MCPServers of the group
	"Server.Listen":    {Drop: true}, // the container port
	"AuthzConfig.File": {Drop: true}, // no policy files in the pod: use configMap
	"SecretRef.File":   {Drop: true}, // secrets are Secrets
	"SecretRef.Env":    {Drop: true},
	// The pod's root filesystem is read-only and the operator mounts no volume
	// for the cache: embeddings are recomputed when a pod starts.
	"Embedding.CacheFile": {Drop: true},
	// The audit log goes to standard error in a pod (the root filesystem is
	// read-only), and /metrics stays on the port the operator's Service
	// exposes.
	"Audit.LogFile":        {Drop: true},
	"Server.MetricsListen": {Drop: true},
	"Telemetry.Protocol":   enum("http/protobuf;grpc"),
	// The operator mounts the embedded store's volume (spec.stateVolume) and
	// points vmcp at it.
	"Storage.StateDir": {Drop: true},
	"RedisTLS.CAFile":  {Drop: true}, // no files in the pod: caRef, a Secret

	"GroupRef.Name":      {Required: true, Markers: []string{"+kubebuilder:validation:MinLength=1"}},
	"SecretRef.Name":     {Required: true, Markers: []string{"+kubebuilder:validation:MinLength=1"}},
	"SecretRef.Key":      {Required: true, Markers: []string{"+kubebuilder:validation:MinLength=1"}},
	"ConfigMapRef.Name":  {Required: true, Markers: []string{"+kubebuilder:validation:MinLength=1"}},
	"OIDCConfigRef.Name": {Required: true, Markers: []string{"+kubebuilder:validation:MinLength=1"}},

	"Aggregation.ConflictResolution": enum("prefix;priority;manual"),
	"IncomingAuth.Type":              enum("anonymous;oidc"),
	"AuthzConfig.Type":               {Required: true, Markers: []string{"+kubebuilder:validation:Enum=inline;configMap"}},
	"AuthzConfig.ClaimsFrom":         enum("upstream;token"),
	"AuthzConfig": {Markers: []string{
		`+kubebuilder:validation:XValidation:rule="self.type != 'inline' || has(self.inline)",message="type inline needs inline.policies",fieldPath=".inline"`,
		`+kubebuilder:validation:XValidation:rule="self.type != 'configMap' || has(self.configMap)",message="type configMap needs configMap.name: the ConfigMap holding the policies",fieldPath=".configMap"`,
	}},
	"AuthServerConfig.UpstreamProviders": {Markers: []string{"+kubebuilder:validation:MaxItems=16"}},
	"UpstreamProvider.Name":              {Required: true, Markers: []string{"+kubebuilder:validation:MinLength=1", "+kubebuilder:validation:MaxLength=64"}},
	"UpstreamProvider.Type":              {Required: true, Markers: []string{"+kubebuilder:validation:Enum=oidc;oauth2"}},
	"OutgoingAuth.Source":                enum("discovered;inline"),
	"BackendAuth.Type": {Required: true, Markers: []string{
		"+kubebuilder:validation:Enum=unauthenticated;header_injection;token_exchange;upstream_inject;pass_through_unsafe"}},
	"Storage.Type":     enum("memory;embedded;redis"),
	"Server.LogLevel":  enum("debug;info;warn;error"),
	"Server.LogFormat": enum("text;json"),
}
