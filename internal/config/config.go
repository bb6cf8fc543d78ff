package config

import (
	"fmt"
	"net/url"
	"strings"
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

	// AuthServerConfig configures the embedded OAuth 2.1 authorization
	// server. Absent: no authorization server.
	AuthServerConfig *AuthServerConfig `yaml:"authServerConfig"`

	// Storage says where the authorization server keeps its state.
	// Default: embedded, in the state directory.
	Storage *Storage `yaml:"storage"`

	// Backends lists the backend MCP servers (standalone mode).
	Backends []Backend `yaml:"backends"`

	// Server holds the HTTP server settings. Under the Kubernetes operator
	// the listen address is the container's, and publicURL defaults to
	// incomingAuth.oidcConfigRef.audience.
	Server Server `yaml:"server"`

	// File is the path the configuration was read from ("" if built in).
	File string `yaml:"-"`

	lines  map[string]int // field path -> line, for errors found after parsing
	prefix string         // "spec." in a whole manifest
}

// Position returns "file:line" of a field path (like
// incomingAuth.authzConfig.inline.policies[0]), or of its nearest enclosing
// field in the file, for errors found after loading.
func (c *Config) Position(field string) string {
	if l := c.lineOf(c.prefix + field); l > 0 {
		return fmt.Sprintf("%s:%d: %s%s", c.File, l, c.prefix, field)
	}
	return c.File + ": " + c.prefix + field
}

// lineOf is the line of a field path (prefix included), or of its nearest
// enclosing field in the file; 0 if none is.
func (c *Config) lineOf(path string) int {
	for ; path != ""; path = parentPath(path) {
		if l, ok := c.lines[path]; ok {
			return l
		}
	}
	return 0
}

// locate fills in the file and line of validation errors from their field
// paths.
func (c *Config) locate(errs Errors) Errors {
	for _, e := range errs {
		e.File = c.File
		e.Field = c.prefix + e.Field
		e.Line = c.lineOf(e.Field)
	}
	return errs
}

// GroupRef references an MCPGroup by name.
type GroupRef struct {
	// Name is the MCPGroup's name, in the same namespace.
	Name string `yaml:"name"`
}

// Settings is the spec.config block.
type Settings struct {
	// GroupRef repeats the group name, as the seed manifest does.
	GroupRef string `yaml:"groupRef"`
	// Aggregation says how the backends' capabilities are merged.
	Aggregation Aggregation `yaml:"aggregation"`
	// Operational holds timeouts and failure handling.
	Operational Operational `yaml:"operational"`
	// ToolSearch configures search mode. Default: off.
	ToolSearch ToolSearch `yaml:"toolSearch"`
	// Telemetry configures request metrics and tracing.
	Telemetry Telemetry `yaml:"telemetry"`
	// Audit configures the audit log. Default: off.
	Audit Audit `yaml:"audit"`
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
	// Name is the tool's name as clients see it.
	Name string `yaml:"name"`
	// Description replaces the backend's description of the tool.
	Description string `yaml:"description"`
}

// Operational holds timeouts and failure handling.
type Operational struct {
	// Timeouts bounds calls to backends.
	Timeouts Timeouts `yaml:"timeouts"`
	// FailureHandling configures health checks.
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
	Type string `yaml:"type"`
	// OIDCConfigRef names a Kubernetes MCPOIDCConfig. Standalone, it means
	// vmcp's own authorization server (authServerConfig must be set), with
	// the given audience.
	OIDCConfigRef *OIDCConfigRef `yaml:"oidcConfigRef"`
	// OIDCConfig configures token validation inline (standalone).
	OIDCConfig *OIDCConfig `yaml:"oidcConfig"`
	// AuthzConfig enables Cedar authorization. Absent: every
	// authenticated caller may list and call everything.
	AuthzConfig *AuthzConfig `yaml:"authzConfig"`
}

// Authorization policy source types.
const (
	AuthzInline    = "inline"
	AuthzFile      = "file"
	AuthzConfigMap = "configMap"
)

// Where policy claims come from.
const (
	ClaimsUpstream = "upstream"
	ClaimsToken    = "token"
)

// AuthzConfig configures Cedar authorization.
type AuthzConfig struct {
	// Type is inline, file (standalone) or configMap (Kubernetes).
	Type string `yaml:"type"`
	// Inline holds the policies in the configuration.
	Inline *InlineAuthz `yaml:"inline"`
	// File reads policies (and entities) from files, reloaded on change.
	File *FileAuthz `yaml:"file"`
	// ConfigMap names the Kubernetes ConfigMap key holding the policies
	// (type configMap). The operator reads it and hands vmcp the policies
	// inline; standalone vmcp refuses it.
	ConfigMap *ConfigMapRef `yaml:"configMap"`
	// ClaimsFrom is upstream (default with authServerConfig): policies see
	// the upstream identity of the primary provider (ID token, userinfo,
	// JWT access token) over the claims of the token vmcp issued; or
	// token: only the claims of the token the client presented.
	ClaimsFrom string `yaml:"claimsFrom"`
	// PrimaryUpstreamProvider names the provider whose identity feeds
	// policies. Default: the only provider; required with several.
	PrimaryUpstreamProvider string `yaml:"primaryUpstreamProvider"`
	// GroupClaims and RoleClaims name the claims (dotted paths) whose
	// values make the principal a member of Vmcp::Group and Vmcp::Role
	// entities. Defaults: [groups] and [roles].
	GroupClaims []string `yaml:"groupClaims"`
	// RoleClaims: see GroupClaims.
	RoleClaims []string `yaml:"roleClaims"`
}

// ConfigMapRef names a key of a Kubernetes ConfigMap.
type ConfigMapRef struct {
	// Name is the ConfigMap's name, in the same namespace.
	Name string `yaml:"name"`
	// Key default: authz.json. Its value is Cedar policy text, or a JSON
	// document {"cedar": {"policies": [...], "entities_json": "..."}}.
	Key string `yaml:"key"`
}

// InlineAuthz holds policies in the configuration.
type InlineAuthz struct {
	// Policies are Cedar policy documents.
	Policies []string `yaml:"policies"`
	// EntitiesJSON is a Cedar entities document (JSON).
	EntitiesJSON string `yaml:"entitiesJson"`
}

// FileAuthz reads policies from files.
type FileAuthz struct {
	PolicyFiles  []string `yaml:"policyFiles"`
	EntitiesFile string   `yaml:"entitiesFile"`
	// ReloadInterval is how often the files are checked. Default: 2s.
	ReloadInterval Duration `yaml:"reloadInterval"`
}

// OIDCConfigRef references token validation settings kept elsewhere.
type OIDCConfigRef struct {
	// Name is the MCPOIDCConfig's name, in the same namespace.
	Name string `yaml:"name"`
	// Audience is the audience tokens must carry: the MCP endpoint URL.
	Audience string `yaml:"audience"`
}

// OIDCConfig says which bearer tokens vmcp accepts.
type OIDCConfig struct {
	// Issuer is the token issuer (exact match); its keys are found by
	// discovery unless JWKSURL is set.
	Issuer string `yaml:"issuer"`
	// Audience tokens must carry. Default: the MCP endpoint URL
	// (server.publicURL).
	Audience string `yaml:"audience"`
	// JWKSURL overrides discovery of the issuer's keys.
	JWKSURL string `yaml:"jwksUrl"`
	// IntrospectionURL enables RFC 7662 introspection of opaque tokens,
	// with ClientID and ClientSecretRef as client credentials.
	IntrospectionURL string `yaml:"introspectionUrl"`
	// ClientID is vmcp's client id at the introspection endpoint.
	ClientID string `yaml:"clientId"`
	// ClientSecretRef is vmcp's client secret at the introspection
	// endpoint.
	ClientSecretRef *SecretRef `yaml:"clientSecretRef"`
	// Scopes are required of every token; they are also advertised in the
	// protected resource metadata and in 401 challenges.
	Scopes []string `yaml:"scopes"`
	// AllowedAlgorithms restricts JWT signature algorithms.
	// Default: RS256, ES256, PS256, EdDSA.
	AllowedAlgorithms []string `yaml:"allowedAlgorithms"`
	// ClockSkew tolerated on exp and nbf. Default: 30s.
	ClockSkew Duration `yaml:"clockSkew"`
}

// SecretRef points at a secret. In Kubernetes it names a Secret and key;
// standalone, the same name/key is read from the file
// $VMCP_SECRETS_DIR/<name>/<key> (the layout of a mounted Secret) or else
// the environment variable VMCP_SECRET_<NAME>_<KEY> (upper case, other
// characters as '_'). File or Env select a source explicitly.
type SecretRef struct {
	// Name is the Secret's name (in Kubernetes, in the same namespace).
	Name string `yaml:"name"`
	// Key is the key within the Secret.
	Key string `yaml:"key"`
	// File is a file holding the secret (standalone).
	File string `yaml:"file"`
	// Env is an environment variable holding the secret (standalone).
	Env string `yaml:"env"`
}

// AuthServerConfig configures the embedded OAuth 2.1 authorization server.
type AuthServerConfig struct {
	// Issuer is the authorization server's issuer URL: https, or http on a
	// loopback host for development. vmcp serves its endpoints there.
	Issuer string `yaml:"issuer"`
	// HMACSecretRefs sign authorization codes and refresh tokens; the first
	// signs, the others still verify (rotation). Each needs at least 32
	// bytes. Default: a random secret per process.
	HMACSecretRefs []SecretRef `yaml:"hmacSecretRefs"`
	// SigningKeySecretRefs hold PEM private keys (RSA or EC) signing access
	// tokens; the first signs, all are published in the JWKS so tokens
	// signed by a previous key stay valid. Default: an RSA key generated at
	// start (tokens do not survive a restart).
	SigningKeySecretRefs []SecretRef `yaml:"signingKeySecretRefs"`
	// TokenLifespans bound what the server issues.
	TokenLifespans TokenLifespans `yaml:"tokenLifespans"`
	// UpstreamProviders are the IdPs users log in with.
	UpstreamProviders []UpstreamProvider `yaml:"upstreamProviders"`
	// ScopesSupported are the scopes clients may ask for. Default: none
	// beyond what incomingAuth requires.
	ScopesSupported []string `yaml:"scopesSupported"`
	// ClientMetadataDocuments configures client ID metadata documents.
	ClientMetadataDocuments ClientMetadataDocuments `yaml:"clientMetadataDocuments"`
	// StaticClients are service clients configured here, typically the
	// one vmcp's outgoing token_exchange uses when this server is its STS.
	StaticClients []StaticClient `yaml:"staticClients"`
	// PendingLogins bound the logins waiting for users at upstream IdPs.
	PendingLogins PendingLogins `yaml:"pendingLogins"`
	// ClientRegistration bounds dynamic client registration.
	ClientRegistration ClientRegistration `yaml:"clientRegistration"`
}

// PendingLogins bound what vmcp keeps of logins sent upstream and not
// finished yet: anyone can start one.
type PendingLogins struct {
	// Max caps them, all clients together. Default: 10000.
	Max int `yaml:"max"`
	// MaxPerClient caps them per client. Default: 100.
	MaxPerClient int `yaml:"maxPerClient"`
	// Timeout is how long a user may take to log in upstream. Default:
	// 10m; 1m to 1h.
	Timeout Duration `yaml:"timeout"`
}

// ClientRegistration bounds dynamic client registration, which anyone
// may use.
type ClientRegistration struct {
	// Max caps the stored clients. Default: 10000.
	Max int `yaml:"max"`
	// MaxBytes caps a registration request's body. Default: 4096.
	MaxBytes int `yaml:"maxBytes"`
	// UnusedExpiry is how long a registration no token was issued to is
	// kept. Default: 24h.
	UnusedExpiry Duration `yaml:"unusedExpiry"`
	// IdleExpiry is how long a registration is kept after the last token
	// issued to it. Default: 720h (30 days); at least
	// tokenLifespans.refreshToken.
	IdleExpiry Duration `yaml:"idleExpiry"`
}

// StaticClient is a configured confidential client of the authorization
// server, allowed the RFC 8693 token exchange grant for its audiences.
type StaticClient struct {
	// ClientID and ClientSecretRef are the client's credentials.
	ClientID        string     `yaml:"clientId"`
	ClientSecretRef *SecretRef `yaml:"clientSecretRef"`
	// Audiences the client may obtain exchanged tokens for.
	Audiences []string `yaml:"audiences"`
}

// TokenLifespans bound the lifetime of what the server issues.
type TokenLifespans struct {
	// AccessToken default: 15m.
	AccessToken Duration `yaml:"accessToken"`
	// RefreshToken default: 168h (7 days).
	RefreshToken Duration `yaml:"refreshToken"`
	// AuthorizationCode default: 5m.
	AuthorizationCode Duration `yaml:"authorizationCode"`
}

// ClientMetadataDocuments configures clients identified by an HTTPS URL.
type ClientMetadataDocuments struct {
	// Disabled turns them off. Default: enabled.
	Disabled bool `yaml:"disabled"`
	// InsecureAllowPrivateHosts lets client ID URLs resolve to private,
	// loopback or link-local addresses. For tests only.
	InsecureAllowPrivateHosts bool `yaml:"insecureAllowPrivateHosts"`
}

// Upstream provider types.
const (
	ProviderOIDC   = "oidc"
	ProviderOAuth2 = "oauth2"
)

// UpstreamProvider is an IdP users log in with.
type UpstreamProvider struct {
	// Name identifies the provider (in policies: the claims source).
	Name string `yaml:"name"`
	// Type is oidc or oauth2.
	Type string `yaml:"type"`
	// OIDCConfig configures a provider of type oidc.
	OIDCConfig *UpstreamOIDC `yaml:"oidcConfig"`
	// OAuth2Config configures a provider of type oauth2.
	OAuth2Config *UpstreamOAuth2 `yaml:"oauth2Config"`
	// LoginOrigins are the origins (scheme://host[:port]) the provider's
	// login redirects the browser through before it shows a page, besides
	// its authorization endpoint: for example the login and consent app of
	// Ory Hydra, or a federated IdP. The consent page's Content Security
	// Policy (form-action) must list them or browsers block the login.
	// Default: none.
	LoginOrigins []string `yaml:"loginOrigins"`
}

// UpstreamOIDC is an OpenID Connect provider, found by discovery.
type UpstreamOIDC struct {
	// IssuerURL is the provider's issuer; its endpoints are discovered.
	IssuerURL string `yaml:"issuerUrl"`
	// ClientID and ClientSecretRef are vmcp's client at the provider.
	ClientID        string     `yaml:"clientId"`
	ClientSecretRef *SecretRef `yaml:"clientSecretRef"`
	// RedirectURI is vmcp's callback as registered at the IdP.
	// Default: <issuer>/oauth/callback.
	RedirectURI string `yaml:"redirectUri"`
	// Scopes asked for. Default: openid, email, profile.
	Scopes []string `yaml:"scopes"`
	// AdditionalAuthorizationParams are added to the authorization request
	// (e.g. access_type: offline for Google).
	AdditionalAuthorizationParams map[string]string `yaml:"additionalAuthorizationParams"`
	// ClaimMapping names the claims that carry the identity.
	ClaimMapping ClaimMapping `yaml:"claimMapping"`
}

// UpstreamOAuth2 is a plain OAuth 2.0 provider (GitHub's shape): no ID
// token; the identity comes from the userinfo endpoint.
type UpstreamOAuth2 struct {
	// AuthorizationURL, TokenURL and UserInfoURL are the provider's
	// endpoints; the identity comes from userinfo.
	AuthorizationURL string `yaml:"authorizationUrl"`
	TokenURL         string `yaml:"tokenUrl"`
	UserInfoURL      string `yaml:"userInfoUrl"`
	// ClientID and ClientSecretRef are vmcp's client at the provider.
	ClientID        string     `yaml:"clientId"`
	ClientSecretRef *SecretRef `yaml:"clientSecretRef"`
	// RedirectURI is vmcp's callback as registered at the provider.
	// Default: <issuer>/oauth/callback.
	RedirectURI string `yaml:"redirectUri"`
	// Scopes asked for.
	Scopes []string `yaml:"scopes"`
	// AdditionalAuthorizationParams are added to the authorization request.
	AdditionalAuthorizationParams map[string]string `yaml:"additionalAuthorizationParams"`
	// Issuer is the string that, with the subject, makes the user's stable
	// id. Default: the authorization URL's origin.
	Issuer string `yaml:"issuer"`
	// ClaimMapping names the userinfo fields that carry the identity.
	ClaimMapping ClaimMapping `yaml:"claimMapping"`
	// EmailVerified declares that the provider's email claim holds only
	// addresses it verified (GitHub's public email). Default false: the
	// email is used only beside "email_verified": true.
	EmailVerified bool `yaml:"emailVerified"`
}

// ClaimMapping names the upstream claims (dotted paths into nested
// objects) that carry the identity.
type ClaimMapping struct {
	// Subject default: sub (GitHub: id).
	Subject string `yaml:"subject"`
	// Email default: email.
	Email string `yaml:"email"`
	// Name default: name.
	Name string `yaml:"name"`
	// Groups default: groups.
	Groups string `yaml:"groups"`
}

// OutgoingAuth says how vmcp authenticates to backends.
type OutgoingAuth struct {
	// Source is discovered (default: each backend carries its own
	// setting, backends[].outgoingAuth) or inline (settings by backend
	// name in Backends).
	Source string `yaml:"source"`
	// Default applies to backends without a setting of their own.
	// Default: unauthenticated.
	Default *BackendAuth `yaml:"default"`
	// Backends holds the settings by backend name (source inline).
	Backends map[string]*BackendAuth `yaml:"backends"`
}

// Outgoing authentication strategies.
const (
	AuthUnauthenticated   = "unauthenticated"
	AuthHeaderInjection   = "header_injection"
	AuthTokenExchange     = "token_exchange"
	AuthUpstreamInject    = "upstream_inject"
	AuthPassThroughUnsafe = "pass_through_unsafe"
)

// BackendAuth is how vmcp authenticates to one backend.
type BackendAuth struct {
	// Type is unauthenticated, header_injection, token_exchange,
	// upstream_inject or pass_through_unsafe.
	Type string `yaml:"type"`
	// HeaderInjection configures header_injection.
	HeaderInjection *HeaderInjection `yaml:"headerInjection"`
	// TokenExchange configures token_exchange.
	TokenExchange *TokenExchangeAuth `yaml:"tokenExchange"`
	// UpstreamInject configures upstream_inject.
	UpstreamInject *UpstreamInjectAuth `yaml:"upstreamInject"`
	// PassThrough configures pass_through_unsafe.
	PassThrough *PassThroughAuth `yaml:"passThrough"`
}

// HeaderInjection sends a static header whose value is a secret.
type HeaderInjection struct {
	// HeaderName default: Authorization.
	HeaderName string `yaml:"headerName"`
	// ValueSecretRef is the secret sent as the header's value.
	ValueSecretRef *SecretRef `yaml:"valueSecretRef"`
	// ValuePrefix is put before the secret, e.g. "Bearer ".
	ValuePrefix string `yaml:"valuePrefix"`
}

// TokenExchangeAuth exchanges the user's token at an RFC 8693 STS.
type TokenExchangeAuth struct {
	// TokenURL is the STS's token endpoint.
	TokenURL string `yaml:"tokenUrl"`
	// ClientID and ClientSecretRef are vmcp's client credentials at the STS.
	ClientID        string     `yaml:"clientId"`
	ClientSecretRef *SecretRef `yaml:"clientSecretRef"`
	// Audience and Resource say which backend the token is for (RFC 8693
	// audience, RFC 8707 resource); one of them is required.
	Audience string `yaml:"audience"`
	Resource string `yaml:"resource"`
	// Scopes asked for.
	Scopes []string `yaml:"scopes"`
	// SubjectProvider, if set, exchanges the user's stored upstream token
	// of that provider; otherwise the token the client presented to vmcp.
	SubjectProvider string `yaml:"subjectProvider"`
}

// UpstreamInjectAuth sends the user's stored upstream access token.
type UpstreamInjectAuth struct {
	// Provider names the upstream provider whose access token is sent.
	Provider string `yaml:"provider"`
}

// PassThroughAuth forwards the client's own token: unsafe, explicit.
type PassThroughAuth struct {
	// AcknowledgeUnsafe must be true: the backend receives a token it can
	// replay against vmcp.
	AcknowledgeUnsafe bool `yaml:"acknowledgeUnsafe"`
}

// BackendAuthFor returns the outgoing authentication of a backend, or nil
// for none.
func (c *Config) BackendAuthFor(b *Backend) *BackendAuth {
	o := c.OutgoingAuth
	if o == nil {
		return nil
	}
	if o.Source == "inline" {
		if a := o.Backends[b.Name]; a != nil {
			return a
		}
	} else if b.OutgoingAuth != nil {
		return b.OutgoingAuth
	}
	return o.Default
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
	// outgoingAuth.source is discovered (the default).
	OutgoingAuth *BackendAuth `yaml:"outgoingAuth"`
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
	// MaxResultBytes bounds what vmcp reads of one answer from a backend
	// (a result, or one message of an event stream); a larger answer
	// fails its call. Default: 64 MiB.
	MaxResultBytes int64 `yaml:"maxResultBytes"`
	// PageSize is the number of items per page of list results.
	// Default: 1000.
	PageSize int `yaml:"pageSize"`
	// SessionIdleTimeout closes sessions idle for that long. Default: 30m.
	SessionIdleTimeout Duration `yaml:"sessionIdleTimeout"`
	// MaxSessions bounds the 2025-11-25 sessions open at once. Default:
	// 10000.
	MaxSessions int `yaml:"maxSessions"`
	// MaxSessionsPerPrincipal bounds the sessions of one authenticated
	// user. Default: 100.
	MaxSessionsPerPrincipal int `yaml:"maxSessionsPerPrincipal"`
	// ReadHeaderTimeout bounds the reading of a request's headers.
	// Default: 10s.
	ReadHeaderTimeout Duration `yaml:"readHeaderTimeout"`
	// ReadTimeout bounds the reading of a whole request, headers and body;
	// it does not bound the response (event streams stay open). Default:
	// 30s.
	ReadTimeout Duration `yaml:"readTimeout"`
	// IdleTimeout closes a keep-alive connection with no request for that
	// long. Default: 2m.
	IdleTimeout Duration `yaml:"idleTimeout"`
	// MaxHeaderBytes bounds a request's line and headers. Default: 64 KiB.
	MaxHeaderBytes int `yaml:"maxHeaderBytes"`
	// DisableH2C turns off cleartext HTTP/2 (h2c with prior knowledge),
	// which is served beside HTTP/1.1 on the same port by default.
	DisableH2C bool `yaml:"disableH2C"`
	// ShutdownTimeout bounds the wait for in-flight calls on shutdown;
	// calls still running after it are cancelled. Default: 10s.
	ShutdownTimeout Duration `yaml:"shutdownTimeout"`
	// LogLevel is debug, info (default), warn or error.
	LogLevel string `yaml:"logLevel"`
	// LogFormat is text (default) or json.
	LogFormat string `yaml:"logFormat"`
	// AccessLog logs one line at info level per HTTP request to the MCP
	// endpoint: method, path, status, duration, bytes and session.
	// Default: false.
	AccessLog bool `yaml:"accessLog"`
	// MetricsListen, if set, serves /metrics on this address (host:port)
	// instead of the main listener, which then has no /metrics: the
	// metrics are not authenticated, so they can be kept off the address
	// clients reach. Default: "" (on the main listener).
	MetricsListen string `yaml:"metricsListen"`
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
	DefaultName                   = "vmcp"
	DefaultListen                 = "127.0.0.1:4483"
	DefaultPrefixFormat           = "{workload}_"
	DefaultMaxRequestBytes        = 4 << 20
	DefaultMaxResultBytes         = 64 << 20
	DefaultPageSize               = 1000
	DefaultCallTimeout            = 60 * time.Second
	DefaultConnectTimeout         = 10 * time.Second
	DefaultHealthCheckInterval    = 30 * time.Second
	DefaultUnhealthyThreshold     = 3
	DefaultSessionIdleTimeout     = 30 * time.Minute
	DefaultShutdownTimeout        = 10 * time.Second
	DefaultClockSkew              = 30 * time.Second
	DefaultAccessTokenLifespan    = 15 * time.Minute
	DefaultRefreshTokenLifespan   = 7 * 24 * time.Hour
	DefaultCodeLifespan           = 5 * time.Minute
	DefaultPendingLogins          = 10000
	DefaultPendingLoginsPerClient = 100
	DefaultPendingLoginTimeout    = 10 * time.Minute
	DefaultRegisteredClients      = 10000
	DefaultRegistrationBytes      = 4096
	DefaultUnusedClientExpiry     = 24 * time.Hour
	DefaultIdleClientExpiry       = 30 * 24 * time.Hour
	DefaultMaxSessions            = 10000
	DefaultMaxSessionsPerUser     = 100
	DefaultReadHeaderTimeout      = 10 * time.Second
	DefaultReadTimeout            = 30 * time.Second
	DefaultIdleTimeout            = 2 * time.Minute
	DefaultMaxHeaderBytes         = 64 << 10
	// DefaultCallbackPath is where upstream IdPs send users back, under the
	// issuer.
	DefaultCallbackPath = "/oauth/callback"
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
	c.Config.ToolSearch.applyDefaults()
	if c.IncomingAuth == nil {
		c.IncomingAuth = &IncomingAuth{}
	}
	setDefault(&c.IncomingAuth.Type, AuthAnonymous)
	if o := c.IncomingAuth.OIDCConfig; o != nil {
		setDefault(&o.ClockSkew, Duration(DefaultClockSkew))
	}
	if as := c.AuthServerConfig; as != nil {
		as.applyDefaults()
	}
	c.applyStorageDefaults()
	if c.OutgoingAuth == nil {
		c.OutgoingAuth = &OutgoingAuth{}
	}
	setDefault(&c.OutgoingAuth.Source, "discovered")
	if az := c.IncomingAuth.AuthzConfig; az != nil {
		if az.ClaimsFrom == "" {
			az.ClaimsFrom = ClaimsToken
			if c.AuthServerConfig != nil {
				az.ClaimsFrom = ClaimsUpstream
			}
		}
		if az.PrimaryUpstreamProvider == "" && az.ClaimsFrom == ClaimsUpstream && c.AuthServerConfig != nil &&
			len(c.AuthServerConfig.UpstreamProviders) == 1 {
			az.PrimaryUpstreamProvider = c.AuthServerConfig.UpstreamProviders[0].Name
		}
		if az.File != nil {
			setDefault(&az.File.ReloadInterval, Duration(2*time.Second))
		}
	}
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
	setDefault(&s.MaxResultBytes, DefaultMaxResultBytes)
	setDefault(&s.PageSize, DefaultPageSize)
	setDefault(&s.SessionIdleTimeout, Duration(DefaultSessionIdleTimeout))
	setDefault(&s.MaxSessions, DefaultMaxSessions)
	setDefault(&s.MaxSessionsPerPrincipal, DefaultMaxSessionsPerUser)
	setDefault(&s.ReadHeaderTimeout, Duration(DefaultReadHeaderTimeout))
	setDefault(&s.ReadTimeout, Duration(DefaultReadTimeout))
	setDefault(&s.IdleTimeout, Duration(DefaultIdleTimeout))
	setDefault(&s.MaxHeaderBytes, DefaultMaxHeaderBytes)
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

func (as *AuthServerConfig) applyDefaults() {
	as.Issuer = strings.TrimSuffix(as.Issuer, "/")
	setDefault(&as.TokenLifespans.AccessToken, Duration(DefaultAccessTokenLifespan))
	setDefault(&as.TokenLifespans.RefreshToken, Duration(DefaultRefreshTokenLifespan))
	setDefault(&as.TokenLifespans.AuthorizationCode, Duration(DefaultCodeLifespan))
	setDefault(&as.PendingLogins.Max, DefaultPendingLogins)
	setDefault(&as.PendingLogins.MaxPerClient, DefaultPendingLoginsPerClient)
	setDefault(&as.PendingLogins.Timeout, Duration(DefaultPendingLoginTimeout))
	r := &as.ClientRegistration
	setDefault(&r.Max, DefaultRegisteredClients)
	setDefault(&r.MaxBytes, DefaultRegistrationBytes)
	setDefault(&r.UnusedExpiry, Duration(DefaultUnusedClientExpiry))
	setDefault(&r.IdleExpiry, Duration(max(DefaultIdleClientExpiry, as.TokenLifespans.RefreshToken.D())))
	callback := as.Issuer + DefaultCallbackPath
	for i := range as.UpstreamProviders {
		p := &as.UpstreamProviders[i]
		if o := p.OIDCConfig; o != nil {
			setDefault(&o.RedirectURI, callback)
			if len(o.Scopes) == 0 {
				o.Scopes = []string{"openid", "email", "profile"}
			}
			o.ClaimMapping.applyDefaults()
		}
		if o := p.OAuth2Config; o != nil {
			setDefault(&o.RedirectURI, callback)
			if o.Issuer == "" {
				if u, err := url.Parse(o.AuthorizationURL); err == nil {
					o.Issuer = u.Scheme + "://" + u.Host
				}
			}
			o.ClaimMapping.applyDefaults()
		}
	}
}

func (m *ClaimMapping) applyDefaults() {
	setDefault(&m.Subject, "sub")
	setDefault(&m.Email, "email")
	setDefault(&m.Name, "name")
	setDefault(&m.Groups, "groups")
}

// CallTimeout returns the request timeout for the named backend.
func (c *Config) CallTimeout(backend string) time.Duration {
	if d, ok := c.Config.Operational.Timeouts.PerWorkload[backend]; ok && d > 0 {
		return d.D()
	}
	return c.Config.Operational.Timeouts.Default.D()
}
