package config

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is a whole vmcp configuration: the VirtualMCPServer spec plus the
// standalone-only blocks (backends, server).
type Config struct {
	// Name is the virtual server's name. In a manifest it is metadata.name.
	// Authorization policies see it as the server the tools belong to.
	// Default: "vmcp".
	Name string `yaml:"name"`

	// GroupRef names the MCPGroup whose servers are the backends, in
	// Kubernetes. Standalone, backends come from Backends.
	GroupRef *GroupRef `yaml:"groupRef"`

	// Config holds aggregation and operational settings.
	Config Settings `yaml:"config"`

	// IncomingAuth says how clients authenticate. Default: anonymous.
	IncomingAuth *IncomingAuth `yaml:"incomingAuth"`

	// OutgoingAuth says how vmcp authenticates to backends.
	OutgoingAuth *OutgoingAuth `yaml:"outgoingAuth"`

	// AuthServerConfig configures the embedded OAuth 2.1 authorization server.
	AuthServerConfig *yaml.Node `yaml:"authServerConfig"`

	// Backends lists the backend MCP servers (standalone mode).
	Backends []Backend `yaml:"backends"`

	// Server holds the standalone HTTP server settings.
	Server Server `yaml:"server"`

	// File is the path the configuration was read from ("" if built in).
	File string `yaml:"-"`
}

// GroupRef references an MCPGroup by name.
type GroupRef struct {
	Name string `yaml:"name"`
}

// Settings is the spec.config block.
type Settings struct {
	// GroupRef repeats the group name, as the seed manifest does.
	GroupRef    string      `yaml:"groupRef"`
	Aggregation Aggregation `yaml:"aggregation"`
	Operational Operational `yaml:"operational"`
}

// Conflict resolution strategies.
const (
	ConflictPrefix   = "prefix"
	ConflictPriority = "priority"
	ConflictManual   = "manual"
)

// Aggregation says how the backends' capabilities are merged.
type Aggregation struct {
	// ConflictResolution is prefix (default), priority or manual.
	ConflictResolution string `yaml:"conflictResolution"`
	// ConflictResolutionConfig tunes the chosen strategy.
	ConflictResolutionConfig ConflictResolutionConfig `yaml:"conflictResolutionConfig"`
	// Tools holds per-backend tool filters and overrides.
	Tools []WorkloadTools `yaml:"tools"`
}

// ConflictResolutionConfig tunes the conflict resolution strategy.
type ConflictResolutionConfig struct {
	// PrefixFormat is the prefix put before every name with the prefix
	// strategy; {workload} is replaced by the backend name.
	// Default: "{workload}_".
	PrefixFormat string `yaml:"prefixFormat"`
	// PriorityOrder lists backends, highest priority first, for the
	// priority strategy. Backends not listed come after, in config order.
	PriorityOrder []string `yaml:"priorityOrder"`
}

// WorkloadTools filters and renames one backend's tools.
type WorkloadTools struct {
	// Workload is the backend name.
	Workload string `yaml:"workload"`
	// Filter, if not empty, is the allow-list of the backend's tool names
	// (names as the backend gives them).
	Filter []string `yaml:"filter"`
	// Overrides renames tools or replaces their description, keyed by the
	// backend's tool name. An override name is final: no prefix is added.
	Overrides map[string]ToolOverride `yaml:"overrides"`
}

// ToolOverride renames a tool or replaces its description.
type ToolOverride struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
}

// Operational holds timeouts and failure handling.
type Operational struct {
	Timeouts        Timeouts        `yaml:"timeouts"`
	FailureHandling FailureHandling `yaml:"failureHandling"`
}

// Timeouts bounds calls to backends.
type Timeouts struct {
	// Default bounds every backend request. Default: 60s.
	Default Duration `yaml:"default"`
	// PerWorkload overrides Default per backend name.
	PerWorkload map[string]Duration `yaml:"perWorkload"`
	// Connect bounds connecting to a backend (initialize included).
	// Default: 10s.
	Connect Duration `yaml:"connect"`
}

// FailureHandling configures health checks.
type FailureHandling struct {
	// HealthCheckInterval is the time between pings of each backend.
	// Default: 30s.
	HealthCheckInterval Duration `yaml:"healthCheckInterval"`
	// UnhealthyThreshold is the number of consecutive failed pings after
	// which a backend is marked unhealthy and leaves the catalog. Default: 3.
	UnhealthyThreshold int `yaml:"unhealthyThreshold"`
}

// Incoming authentication types.
const (
	AuthAnonymous = "anonymous"
	AuthOIDC      = "oidc"
)

// IncomingAuth says how clients authenticate.
type IncomingAuth struct {
	// Type is anonymous (default) or oidc.
	Type          string     `yaml:"type"`
	OIDCConfigRef *yaml.Node `yaml:"oidcConfigRef"`
	OIDCConfig    *yaml.Node `yaml:"oidcConfig"`
	AuthzConfig   *yaml.Node `yaml:"authzConfig"`
}

// OutgoingAuth says how vmcp authenticates to backends.
type OutgoingAuth struct {
	// Source is discovered (each backend carries its own setting) or inline.
	Source   string     `yaml:"source"`
	Default  *yaml.Node `yaml:"default"`
	Backends *yaml.Node `yaml:"backends"`
}

// Backend transports.
const (
	TransportStreamableHTTP = "streamable-http"
	TransportSSE            = "sse"
	TransportStdio          = "stdio"
)

// Backend is one backend MCP server (standalone mode).
type Backend struct {
	// Name identifies the backend (the {workload} of prefixes). Required;
	// letters, digits, '-', '_' and '.'.
	Name string `yaml:"name"`
	// URL of a remote backend.
	URL string `yaml:"url"`
	// Transport is streamable-http (default with url), sse, or stdio
	// (default with command).
	Transport string `yaml:"transport"`
	// Command, Args, Env and Cwd start a stdio backend as a child process.
	Command string            `yaml:"command"`
	Args    []string          `yaml:"args"`
	Env     map[string]string `yaml:"env"`
	Cwd     string            `yaml:"cwd"`
	// OutgoingAuth is this backend's outgoing authentication, used when
	// outgoingAuth.source is discovered.
	OutgoingAuth *yaml.Node `yaml:"outgoingAuth"`
}

// Server holds the standalone HTTP server settings.
type Server struct {
	// Listen is the address to serve on. Default: 127.0.0.1:4483.
	Listen string `yaml:"listen"`
	// PublicURL is the MCP endpoint URL as clients reach it; it becomes
	// the OAuth resource identifier. Default: http://<listen>/mcp.
	PublicURL string `yaml:"publicURL"`
	// AllowedOrigins lists the browser origins (scheme://host[:port]) that
	// may call /mcp. Requests with any other Origin header get 403. Loopback
	// origins (http://localhost, 127.0.0.1, [::1], any port) are always
	// allowed. Requests without an Origin header are not affected.
	AllowedOrigins []string `yaml:"allowedOrigins"`
	// MaxRequestBytes bounds a request body. Default: 4 MiB.
	MaxRequestBytes int64 `yaml:"maxRequestBytes"`
	// PageSize is the number of items per page of list results.
	// Default: 1000.
	PageSize int `yaml:"pageSize"`
	// SessionIdleTimeout closes sessions idle for that long. Default: 30m.
	SessionIdleTimeout Duration `yaml:"sessionIdleTimeout"`
	// ShutdownTimeout bounds the wait for in-flight calls on shutdown;
	// calls still running after it are cancelled. Default: 10s.
	ShutdownTimeout Duration `yaml:"shutdownTimeout"`
	// LogLevel is debug, info (default), warn or error.
	LogLevel string `yaml:"logLevel"`
	// LogFormat is text (default) or json.
	LogFormat string `yaml:"logFormat"`
}

// Duration is a time.Duration written as "30s", "5m" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration (like 500ms, 30s or 5m)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Defaults.
const (
	DefaultName                = "vmcp"
	DefaultListen              = "127.0.0.1:4483"
	DefaultPrefixFormat        = "{workload}_"
	DefaultMaxRequestBytes     = 4 << 20
	DefaultPageSize            = 1000
	DefaultCallTimeout         = 60 * time.Second
	DefaultConnectTimeout      = 10 * time.Second
	DefaultHealthCheckInterval = 30 * time.Second
	DefaultUnhealthyThreshold  = 3
	DefaultSessionIdleTimeout  = 30 * time.Minute
	DefaultShutdownTimeout     = 10 * time.Second
)

// applyDefaults fills every unset field with its documented default.
func (c *Config) applyDefaults() {
	setDefault(&c.Name, DefaultName)
	a := &c.Config.Aggregation
	setDefault(&a.ConflictResolution, ConflictPrefix)
	setDefault(&a.ConflictResolutionConfig.PrefixFormat, DefaultPrefixFormat)
	o := &c.Config.Operational
	setDefault(&o.Timeouts.Default, Duration(DefaultCallTimeout))
	setDefault(&o.Timeouts.Connect, Duration(DefaultConnectTimeout))
	setDefault(&o.FailureHandling.HealthCheckInterval, Duration(DefaultHealthCheckInterval))
	setDefault(&o.FailureHandling.UnhealthyThreshold, DefaultUnhealthyThreshold)
	if c.IncomingAuth == nil {
		c.IncomingAuth = &IncomingAuth{}
	}
	setDefault(&c.IncomingAuth.Type, AuthAnonymous)
	for i := range c.Backends {
		b := &c.Backends[i]
		switch {
		case b.Transport != "":
		case b.Command != "":
			b.Transport = TransportStdio
		default:
			b.Transport = TransportStreamableHTTP
		}
	}
	s := &c.Server
	setDefault(&s.Listen, DefaultListen)
	setDefault(&s.MaxRequestBytes, DefaultMaxRequestBytes)
	setDefault(&s.PageSize, DefaultPageSize)
	setDefault(&s.SessionIdleTimeout, Duration(DefaultSessionIdleTimeout))
	setDefault(&s.ShutdownTimeout, Duration(DefaultShutdownTimeout))
	setDefault(&s.LogLevel, "info")
	setDefault(&s.LogFormat, "text")
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// CallTimeout returns the request timeout for the named backend.
func (c *Config) CallTimeout(backend string) time.Duration {
	if d, ok := c.Config.Operational.Timeouts.PerWorkload[backend]; ok && d > 0 {
		return d.D()
	}
	return c.Config.Operational.Timeouts.Default.D()
}
