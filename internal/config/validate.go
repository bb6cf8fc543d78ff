package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

var (
	backendNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	// ToolNameRE is the MCP tool name rule (2025-11-25 §Tool Names).
	ToolNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
)

// validator collects field errors; each check reads like the rule it is.
type validator struct{ errs Errors }

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, &Error{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// validate checks a defaulted configuration.
func (c *Config) validate() Errors {
	v := &validator{}
	if !backendNameRE.MatchString(c.Name) {
		v.add("name", "%q must be 1-64 letters, digits, '-', '_' or '.'", c.Name)
	}
	names := c.validateBackends(v)
	c.validateAggregation(v, names)
	c.validateAuth(v)
	c.validateServer(v)
	c.validateStorage(v)
	c.Config.ToolSearch.validate(v)
	c.Config.Telemetry.validate(v)
	c.Config.Audit.validate(v)
	o := c.Config.Operational
	if o.FailureHandling.UnhealthyThreshold < 1 {
		v.add("config.operational.failureHandling.unhealthyThreshold", "must be at least 1")
	}
	for name := range o.Timeouts.PerWorkload {
		if !slices.Contains(names, name) {
			v.add("config.operational.timeouts.perWorkload."+name, "no backend is named %q", name)
		}
	}
	return v.errs
}

func (c *Config) validateBackends(v *validator) []string {
	var names []string
	for i, b := range c.Backends {
		f := fmt.Sprintf("backends[%d]", i)
		switch {
		case b.Name == "":
			v.add(f+".name", "is required")
		case !backendNameRE.MatchString(b.Name):
			v.add(f+".name", "%q must be 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit", b.Name)
		case slices.Contains(names, b.Name):
			v.add(f+".name", "%q is used by another backend", b.Name)
		}
		names = append(names, b.Name)
		switch b.Transport {
		case TransportStreamableHTTP, TransportSSE:
			if b.Command != "" || len(b.Args) > 0 || len(b.Env) > 0 || b.Cwd != "" {
				v.add(f, "command, args, env and cwd belong to stdio backends; a %s backend has a url", b.Transport)
			}
			validateHTTPURL(v, f+".url", b.URL)
		case TransportStdio:
			if b.URL != "" {
				v.add(f+".url", "a stdio backend is started from command; remove url or set transport")
			}
			if b.Command == "" {
				v.add(f+".command", "is required for a stdio backend")
			}
		default:
			v.add(f+".transport", "%q is not one of streamable-http, sse, stdio", b.Transport)
		}
		if b.OutgoingAuth != nil {
			c.validateBackendAuth(v, f+".outgoingAuth", b.OutgoingAuth)
			if c.OutgoingAuth != nil && c.OutgoingAuth.Source == "inline" {
				v.add(f+".outgoingAuth", "is used only with outgoingAuth.source: discovered; with inline, set outgoingAuth.backends.%s", b.Name)
			}
		}
		if a := c.BackendAuthFor(&b); b.Transport == TransportStdio && a != nil && a.Type != AuthUnauthenticated {
			v.add(f, "a stdio backend takes credentials through env, not outgoing authentication (%s)", a.Type)
		}
	}
	return names
}

func validateHTTPURL(v *validator, field, raw string) {
	if raw == "" {
		v.add(field, "is required")
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		shown := raw
		if err == nil { // its secrets (user information, query) not repeated
			c := *u
			if c.User != nil {
				c.User = url.User("REDACTED")
			}
			if c.RawQuery != "" {
				c.RawQuery = "REDACTED"
			}
			shown = c.String()
		}
		v.add(field, "%q must be an absolute http or https URL", shown)
	}
}

func (c *Config) validateAggregation(v *validator, backends []string) {
	a := c.Config.Aggregation
	const base = "config.aggregation."
	switch a.ConflictResolution {
	case ConflictPrefix, ConflictPriority, ConflictManual:
	default:
		v.add(base+"conflictResolution", "%q is not one of prefix, priority, manual", a.ConflictResolution)
	}
	if p := strings.ReplaceAll(a.ConflictResolutionConfig.PrefixFormat, "{workload}", "x"); !ToolNameRE.MatchString(p) {
		v.add(base+"conflictResolutionConfig.prefixFormat", "%q would make invalid tool names; use letters, digits, '_', '-', '.' and {workload}", a.ConflictResolutionConfig.PrefixFormat)
	}
	var seen []string
	for i, name := range a.ConflictResolutionConfig.PriorityOrder {
		f := fmt.Sprintf("%sconflictResolutionConfig.priorityOrder[%d]", base, i)
		if !slices.Contains(backends, name) {
			v.add(f, "no backend is named %q", name)
		} else if slices.Contains(seen, name) {
			v.add(f, "%q is listed twice", name)
		}
		seen = append(seen, name)
	}
	seen = nil
	for i, w := range a.Tools {
		f := fmt.Sprintf("%stools[%d]", base, i)
		switch {
		case !slices.Contains(backends, w.Workload):
			v.add(f+".workload", "no backend is named %q", w.Workload)
		case slices.Contains(seen, w.Workload):
			v.add(f+".workload", "%q has another tools entry; merge them", w.Workload)
		}
		seen = append(seen, w.Workload)
		for tool, o := range w.Overrides {
			if o.Name != "" && !ToolNameRE.MatchString(o.Name) {
				v.add(f+".overrides."+tool+".name", "%q is not a valid tool name (1-128 of A-Z a-z 0-9 _ - .)", o.Name)
			}
			if o.Name == "" && o.Description == "" {
				v.add(f+".overrides."+tool, "sets neither name nor description")
			}
			if len(w.Filter) > 0 && !slices.Contains(w.Filter, tool) {
				v.add(f+".overrides."+tool, "overrides %q, which the filter excludes", tool)
			}
		}
	}
}

func (c *Config) validateAuth(v *validator) {
	in := c.IncomingAuth
	switch in.Type {
	case AuthAnonymous:
		if in.OIDCConfig != nil || in.OIDCConfigRef != nil {
			v.add("incomingAuth.type", "is anonymous, but OIDC settings are given; set type: oidc or remove them")
		}
		if c.AuthServerConfig != nil {
			v.add("incomingAuth.type", "is anonymous, but authServerConfig issues tokens that nothing would check; set type: oidc")
		}
	case AuthOIDC:
		switch {
		case in.OIDCConfig != nil && in.OIDCConfigRef != nil:
			v.add("incomingAuth", "set oidcConfig or oidcConfigRef, not both")
		case in.OIDCConfig != nil:
			validateOIDC(v, "incomingAuth.oidcConfig", in.OIDCConfig)
		case in.OIDCConfigRef != nil:
			if c.AuthServerConfig == nil {
				v.add("incomingAuth.oidcConfigRef", "names a Kubernetes MCPOIDCConfig; standalone it means vmcp's own authorization server, so authServerConfig is required (or use oidcConfig)")
			}
		default:
			v.add("incomingAuth", "type oidc needs oidcConfig (or oidcConfigRef with authServerConfig)")
		}
	default:
		v.add("incomingAuth.type", "%q is not one of anonymous, oidc", in.Type)
	}
	if az := in.AuthzConfig; az != nil {
		c.validateAuthz(v, az)
	}
	if as := c.AuthServerConfig; as != nil {
		validateAuthServer(v, as)
	}
	if o := c.OutgoingAuth; o != nil {
		switch o.Source {
		case "discovered", "inline":
		default:
			v.add("outgoingAuth.source", "%q is not one of discovered, inline", o.Source)
		}
		if o.Default != nil {
			c.validateBackendAuth(v, "outgoingAuth.default", o.Default)
		}
		for name, a := range o.Backends {
			f := "outgoingAuth.backends." + name
			if !slices.ContainsFunc(c.Backends, func(b Backend) bool { return b.Name == name }) {
				v.add(f, "no backend is named %q", name)
			}
			if o.Source != "inline" {
				v.add(f, "is used only with outgoingAuth.source: inline; with discovered, set backends[].outgoingAuth")
			}
			c.validateBackendAuth(v, f, a)
		}
	}
}

func (c *Config) validateAuthz(v *validator, az *AuthzConfig) {
	const f = "incomingAuth.authzConfig"
	switch az.Type {
	case AuthzInline:
		if az.Inline == nil || len(az.Inline.Policies) == 0 {
			v.add(f+".inline.policies", "type inline needs at least one policy")
		}
		if az.File != nil {
			v.add(f+".file", "is set, but type is inline: remove one of them")
		}
	case AuthzFile:
		if az.File == nil || len(az.File.PolicyFiles) == 0 {
			v.add(f+".file.policyFiles", "type file needs at least one policy file")
		}
		if az.Inline != nil {
			v.add(f+".inline", "is set, but type is file: remove one of them")
		}
	case AuthzConfigMap:
		v.add(f+".type", "configMap policies are read by the Kubernetes operator; standalone, use type file")
	default:
		v.add(f+".type", "%q is not one of inline, file, configMap", az.Type)
	}
	providers := c.providerNames()
	switch az.ClaimsFrom {
	case ClaimsToken:
		if az.PrimaryUpstreamProvider != "" {
			v.add(f+".primaryUpstreamProvider", "is set, but claimsFrom is token: policies would not see that provider's identity")
		}
	case ClaimsUpstream:
		switch {
		case c.AuthServerConfig == nil:
			v.add(f+".claimsFrom", "upstream needs authServerConfig (only vmcp's authorization server holds upstream identities); use token")
		case az.PrimaryUpstreamProvider == "":
			v.add(f+".primaryUpstreamProvider", "is required with several upstream providers (one of %s), or set claimsFrom: token", strings.Join(providers, ", "))
		case !slices.Contains(providers, az.PrimaryUpstreamProvider):
			v.add(f+".primaryUpstreamProvider", "%q is not an upstream provider (one of %s)", az.PrimaryUpstreamProvider, strings.Join(providers, ", "))
		}
	default:
		v.add(f+".claimsFrom", "%q is not one of upstream, token", az.ClaimsFrom)
	}
}

func (c *Config) providerNames() []string {
	var names []string
	if as := c.AuthServerConfig; as != nil {
		for _, p := range as.UpstreamProviders {
			names = append(names, p.Name)
		}
	}
	return names
}

func (c *Config) validateBackendAuth(v *validator, f string, a *BackendAuth) {
	needProvider := func(field, name string) {
		switch providers := c.providerNames(); {
		case name == "":
			v.add(field, "is required")
		case len(providers) == 0:
			v.add(field, "names an upstream provider, but there is no authServerConfig to hold users' upstream tokens")
		case !slices.Contains(providers, name):
			v.add(field, "%q is not an upstream provider (one of %s)", name, strings.Join(providers, ", "))
		}
	}
	switch a.Type {
	case AuthUnauthenticated:
	case AuthHeaderInjection:
		if a.HeaderInjection == nil || a.HeaderInjection.ValueSecretRef == nil {
			v.add(f+".headerInjection.valueSecretRef", "is required for header_injection")
		} else {
			validateSecretRef(v, f+".headerInjection.valueSecretRef", a.HeaderInjection.ValueSecretRef)
		}
	case AuthTokenExchange:
		t := a.TokenExchange
		if t == nil {
			v.add(f+".tokenExchange", "is required for token_exchange")
			return
		}
		validateHTTPURL(v, f+".tokenExchange.tokenUrl", t.TokenURL)
		requireField(v, f+".tokenExchange.clientId", t.ClientID)
		if t.ClientSecretRef == nil {
			v.add(f+".tokenExchange.clientSecretRef", "is required")
		}
		validateSecretRef(v, f+".tokenExchange.clientSecretRef", t.ClientSecretRef)
		if t.SubjectProvider != "" {
			needProvider(f+".tokenExchange.subjectProvider", t.SubjectProvider)
		}
		if t.Audience == "" && t.Resource == "" {
			v.add(f+".tokenExchange", "set audience or resource: the token the backend gets must be for it")
		}
	case AuthUpstreamInject:
		if a.UpstreamInject == nil {
			v.add(f+".upstreamInject.provider", "is required for upstream_inject")
			return
		}
		needProvider(f+".upstreamInject.provider", a.UpstreamInject.Provider)
	case AuthPassThroughUnsafe:
		if a.PassThrough == nil || !a.PassThrough.AcknowledgeUnsafe {
			v.add(f+".passThrough.acknowledgeUnsafe", "must be true: this forwards the client's own token, which the backend can replay")
		}
	default:
		v.add(f+".type", "%q is not one of unauthenticated, header_injection, token_exchange, upstream_inject, pass_through_unsafe", a.Type)
	}
}

var allowedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

func validateOIDC(v *validator, f string, o *OIDCConfig) {
	validateHTTPURL(v, f+".issuer", o.Issuer)
	if o.JWKSURL != "" {
		validateHTTPURL(v, f+".jwksUrl", o.JWKSURL)
	}
	if o.Audience != "" {
		validateHTTPURL(v, f+".audience", o.Audience)
	}
	if o.IntrospectionURL != "" {
		validateHTTPURL(v, f+".introspectionUrl", o.IntrospectionURL)
		if o.ClientID == "" {
			v.add(f+".clientId", "is required with introspectionUrl")
		}
		if o.ClientSecretRef == nil {
			v.add(f+".clientSecretRef", "is required with introspectionUrl")
		}
	}
	validateSecretRef(v, f+".clientSecretRef", o.ClientSecretRef)
	for i, a := range o.AllowedAlgorithms {
		if !slices.Contains(allowedAlgorithms, a) {
			v.add(fmt.Sprintf("%s.allowedAlgorithms[%d]", f, i), "%q is not one of %s", a, strings.Join(allowedAlgorithms, ", "))
		}
	}
}

func validateSecretRef(v *validator, f string, r *SecretRef) {
	if r == nil {
		return
	}
	forms := 0
	if r.Name != "" || r.Key != "" {
		forms++
		if r.Name == "" || r.Key == "" {
			v.add(f, "name and key go together")
		}
	}
	if r.File != "" {
		forms++
	}
	if r.Env != "" {
		forms++
	}
	if forms != 1 {
		v.add(f, "give exactly one of name+key, file, env")
	}
}

// validateIssuer checks an authorization server issuer: https (or http on a
// loopback host, for development), no path, query or fragment.
func validateIssuer(v *validator, f, raw string) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		v.add(f, "is required")
	case err != nil || u.Host == "":
		v.add(f, "%q is not an absolute URL", raw)
	case u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())):
		v.add(f, "%q must be https (http only on a loopback host, for development)", raw)
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "":
		v.add(f, "%q must have no path, query or fragment", raw)
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func validateAuthServer(v *validator, as *AuthServerConfig) {
	const f = "authServerConfig"
	validateIssuer(v, f+".issuer", as.Issuer)
	for i, r := range as.HMACSecretRefs {
		validateSecretRef(v, fmt.Sprintf("%s.hmacSecretRefs[%d]", f, i), &r)
	}
	for i, r := range as.SigningKeySecretRefs {
		validateSecretRef(v, fmt.Sprintf("%s.signingKeySecretRefs[%d]", f, i), &r)
	}
	l := as.TokenLifespans
	if l.AccessToken.D() > 24*time.Hour {
		v.add(f+".tokenLifespans.accessToken", "must be at most 24h: access tokens should be short-lived")
	}
	if l.AuthorizationCode.D() > 10*time.Minute {
		v.add(f+".tokenLifespans.authorizationCode", "must be at most 10m")
	}
	validateAuthServerLimits(v, as)
	for i, sc := range as.StaticClients {
		sf := fmt.Sprintf("%s.staticClients[%d]", f, i)
		requireField(v, sf+".clientId", sc.ClientID)
		if sc.ClientSecretRef == nil {
			v.add(sf+".clientSecretRef", "is required")
		}
		validateSecretRef(v, sf+".clientSecretRef", sc.ClientSecretRef)
		if len(sc.Audiences) == 0 {
			v.add(sf+".audiences", "list at least one audience the client may get tokens for")
		}
	}
	if len(as.UpstreamProviders) == 0 {
		v.add(f+".upstreamProviders", "needs at least one provider to log users in with")
	}
	var names []string
	for i, p := range as.UpstreamProviders {
		pf := fmt.Sprintf("%s.upstreamProviders[%d]", f, i)
		switch {
		case !backendNameRE.MatchString(p.Name):
			v.add(pf+".name", "%q must be 1-64 letters, digits, '-', '_' or '.'", p.Name)
		case slices.Contains(names, p.Name):
			v.add(pf+".name", "%q is used by another provider", p.Name)
		}
		names = append(names, p.Name)
		for j, o := range p.LoginOrigins {
			validateOrigin(v, fmt.Sprintf("%s.loginOrigins[%d]", pf, j), o)
		}
		switch p.Type {
		case ProviderOIDC:
			if p.OIDCConfig == nil {
				v.add(pf+".oidcConfig", "is required for type oidc")
				continue
			}
			o := p.OIDCConfig
			validateHTTPURL(v, pf+".oidcConfig.issuerUrl", o.IssuerURL)
			if strings.Contains(o.IssuerURL, "/.well-known/") {
				v.add(pf+".oidcConfig.issuerUrl", "%q is a metadata URL; set the issuer itself (the discovery document's \"issuer\", exactly)", o.IssuerURL)
			}
			requireField(v, pf+".oidcConfig.clientId", o.ClientID)
			validateHTTPURL(v, pf+".oidcConfig.redirectUri", o.RedirectURI)
			validateCallback(v, pf+".oidcConfig.redirectUri", o.RedirectURI, as.Issuer)
			validateSecretRef(v, pf+".oidcConfig.clientSecretRef", o.ClientSecretRef)
		case ProviderOAuth2:
			if p.OAuth2Config == nil {
				v.add(pf+".oauth2Config", "is required for type oauth2")
				continue
			}
			o := p.OAuth2Config
			validateHTTPURL(v, pf+".oauth2Config.authorizationUrl", o.AuthorizationURL)
			validateHTTPURL(v, pf+".oauth2Config.tokenUrl", o.TokenURL)
			validateHTTPURL(v, pf+".oauth2Config.userInfoUrl", o.UserInfoURL)
			validateHTTPURL(v, pf+".oauth2Config.redirectUri", o.RedirectURI)
			validateCallback(v, pf+".oauth2Config.redirectUri", o.RedirectURI, as.Issuer)
			requireField(v, pf+".oauth2Config.clientId", o.ClientID)
			validateSecretRef(v, pf+".oauth2Config.clientSecretRef", o.ClientSecretRef)
		default:
			v.add(pf+".type", "%q is not one of oidc, oauth2", p.Type)
		}
	}
}

// validateCallback requires a provider's redirect URI to be on the
// issuer's origin: the callback checks the login cookie vmcp set there.
func validateCallback(v *validator, f, raw, issuer string) {
	u, err1 := url.Parse(raw)
	iss, err2 := url.Parse(issuer)
	if err1 != nil || err2 != nil || u.Host == "" || iss.Host == "" {
		return // reported as a bad URL
	}
	if !strings.EqualFold(u.Scheme, iss.Scheme) || !strings.EqualFold(u.Host, iss.Host) {
		v.add(f, "%q must be on the issuer's origin %s://%s: the browser brings the login cookie vmcp sets there back to the callback", raw, iss.Scheme, iss.Host)
	}
}

func validateAuthServerLimits(v *validator, as *AuthServerConfig) {
	const f = "authServerConfig"
	p := as.PendingLogins
	if p.Max < 1 {
		v.add(f+".pendingLogins.max", "must be at least 1")
	}
	if p.MaxPerClient < 1 || p.MaxPerClient > max(p.Max, 1) {
		v.add(f+".pendingLogins.maxPerClient", "must be between 1 and pendingLogins.max (%d)", p.Max)
	}
	if t := p.Timeout.D(); t < time.Minute || t > time.Hour {
		v.add(f+".pendingLogins.timeout", "must be between 1m and 1h")
	}
	r := as.ClientRegistration
	if r.Max < 1 {
		v.add(f+".clientRegistration.max", "must be at least 1")
	}
	if r.MaxBytes < 512 || r.MaxBytes > 64<<10 {
		v.add(f+".clientRegistration.maxBytes", "must be between 512 and 65536")
	}
	if r.UnusedExpiry.D() < p.Timeout.D() {
		v.add(f+".clientRegistration.unusedExpiry", "must be at least pendingLogins.timeout (%s): a new client needs the time of one login", p.Timeout.D())
	}
	if r.IdleExpiry.D() < as.TokenLifespans.RefreshToken.D() {
		v.add(f+".clientRegistration.idleExpiry", "must be at least tokenLifespans.refreshToken (%s): a client's refresh token must not outlive its registration", as.TokenLifespans.RefreshToken.D())
	}
}

// validateOrigin checks that o is an origin: scheme://host[:port].
func validateOrigin(v *validator, f, o string) {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		v.add(f, "%q must be an origin: scheme://host[:port]", o)
	}
}

func requireField(v *validator, f, val string) {
	if val == "" {
		v.add(f, "is required")
	}
}

func (c *Config) validateServer(v *validator) {
	s := c.Server
	if _, port, err := net.SplitHostPort(s.Listen); err != nil || port == "" {
		v.add("server.listen", "%q must be host:port", s.Listen)
	}
	if s.PublicURL != "" {
		validateHTTPURL(v, "server.publicURL", s.PublicURL)
	}
	for i, o := range s.AllowedOrigins {
		validateOrigin(v, fmt.Sprintf("server.allowedOrigins[%d]", i), o)
	}
	if s.MaxRequestBytes < 1024 {
		v.add("server.maxRequestBytes", "must be at least 1024")
	}
	if s.MaxResultBytes < 64<<10 || s.MaxResultBytes > 1<<30 {
		v.add("server.maxResultBytes", "must be between 65536 (64 KiB) and 1073741824 (1 GiB)")
	}
	if s.PageSize < 1 || s.PageSize > 10000 {
		v.add("server.pageSize", "must be between 1 and 10000")
	}
	if s.MaxSessions < 0 {
		v.add("server.maxSessions", "must be positive")
	}
	if s.MaxSessionsPerPrincipal < 0 {
		v.add("server.maxSessionsPerPrincipal", "must be positive")
	}
	if s.MaxHeaderBytes < 4096 || s.MaxHeaderBytes > 16<<20 {
		v.add("server.maxHeaderBytes", "must be between 4096 and 16777216")
	}
	if s.ReadTimeout < s.ReadHeaderTimeout {
		v.add("server.readTimeout", "%s is shorter than server.readHeaderTimeout (%s), which it includes",
			s.ReadTimeout.D(), s.ReadHeaderTimeout.D())
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, s.LogLevel) {
		v.add("server.logLevel", "%q is not one of debug, info, warn, error", s.LogLevel)
	}
	if s.LogFormat != "text" && s.LogFormat != "json" {
		v.add("server.logFormat", "%q is not one of text, json", s.LogFormat)
	}
	if s.MetricsListen != "" {
		if _, port, err := net.SplitHostPort(s.MetricsListen); err != nil || port == "" {
			v.add("server.metricsListen", "%q must be host:port", s.MetricsListen)
		} else if s.MetricsListen == s.Listen {
			v.add("server.metricsListen", "%q is server.listen: give the metrics an address of their own, or leave this out", s.MetricsListen)
		}
	}
}

// Notes returns what a user should know about settings that standalone vmcp
// reads differently from Kubernetes, so that nothing is ignored silently.
func (c *Config) Notes() []string {
	var notes []string
	if c.GroupRef != nil || c.Config.GroupRef != "" {
		notes = append(notes, "groupRef selects backends in Kubernetes; standalone vmcp uses the backends list")
	}
	if len(c.Backends) == 0 {
		notes = append(notes, "no backends are configured; the gateway serves an empty catalog")
	}
	return append(notes, c.storageNotes()...)
}
