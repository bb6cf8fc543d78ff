package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseSeedManifest(t *testing.T) {
	t.Parallel()
	cfg, err := Load("testdata/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "gateway" {
		t.Errorf("Name = %q, want metadata.name %q", cfg.Name, "gateway")
	}
	want := []Backend{
		{Name: "everything", URL: "http://127.0.0.1:3001/mcp", Transport: TransportStreamableHTTP},
		{Name: "memory", Command: "npx", Args: []string{"-y", "@modelcontextprotocol/server-memory"}, Transport: TransportStdio},
	}
	if diff := cmp.Diff(want, cfg.Backends); diff != "" {
		t.Errorf("backends (-want +got):\n%s", diff)
	}
	if got := cfg.Config.Aggregation.ConflictResolution; got != ConflictPrefix {
		t.Errorf("conflictResolution = %q", got)
	}
	if len(cfg.Notes()) == 0 || !strings.Contains(cfg.Notes()[0], "groupRef") {
		t.Errorf("Notes() = %q, want a note about groupRef", cfg.Notes())
	}
}

func TestSeedWithAuthServer(t *testing.T) {
	t.Parallel()
	cfg, err := Load("testdata/seed-auth.yaml")
	if err != nil {
		t.Fatal(err)
	}
	as := cfg.AuthServerConfig
	if as == nil || len(as.UpstreamProviders) != 1 {
		t.Fatalf("authServerConfig = %+v", as)
	}
	g := as.UpstreamProviders[0].OIDCConfig
	if g.RedirectURI != "https://gateway.example.com/oauth/callback" || g.AdditionalAuthorizationParams["access_type"] != "offline" {
		t.Errorf("google oidcConfig = %+v", g)
	}
	if g.ClientSecretRef.EnvName() != "VMCP_SECRET_GOOGLE_OAUTH_CLIENTSECRET" {
		t.Errorf("EnvName = %q", g.ClientSecretRef.EnvName())
	}
	if got := as.TokenLifespans.AccessToken.D(); got != DefaultAccessTokenLifespan {
		t.Errorf("access token lifespan = %v", got)
	}
	limits := []struct {
		name      string
		got, want any
	}{
		{"pendingLogins.max", as.PendingLogins.Max, DefaultPendingLogins},
		{"pendingLogins.maxPerClient", as.PendingLogins.MaxPerClient, DefaultPendingLoginsPerClient},
		{"pendingLogins.timeout", as.PendingLogins.Timeout.D(), DefaultPendingLoginTimeout},
		{"clientRegistration.max", as.ClientRegistration.Max, DefaultRegisteredClients},
		{"clientRegistration.maxBytes", as.ClientRegistration.MaxBytes, DefaultRegistrationBytes},
		{"clientRegistration.unusedExpiry", as.ClientRegistration.UnusedExpiry.D(), DefaultUnusedClientExpiry},
		{"clientRegistration.idleExpiry", as.ClientRegistration.IdleExpiry.D(), DefaultIdleClientExpiry},
	}
	for _, l := range limits {
		if l.got != l.want {
			t.Errorf("%s = %v, want %v", l.name, l.got, l.want)
		}
	}
	if cfg.IncomingAuth.OIDCConfigRef.Audience != "https://gateway.example.com/mcp" {
		t.Errorf("oidcConfigRef = %+v", cfg.IncomingAuth.OIDCConfigRef)
	}
}

func TestSecretRef(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "hmac-secret"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hmac-secret", "hmac-key"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(SecretsDirEnv, dir)
	t.Setenv("VMCP_SECRET_GOOGLE_OAUTH_CLIENTSECRET", "from-env")
	t.Setenv("MY_SECRET", "explicit")
	for _, tc := range []struct {
		ref  SecretRef
		want string
	}{
		{SecretRef{Name: "hmac-secret", Key: "hmac-key"}, "from-file"},
		{SecretRef{Name: "google-oauth", Key: "clientSecret"}, "from-env"},
		{SecretRef{Env: "MY_SECRET"}, "explicit"},
		{SecretRef{File: filepath.Join(dir, "hmac-secret", "hmac-key")}, "from-file"},
	} {
		got, err := tc.ref.Resolve()
		if err != nil || string(got) != tc.want {
			t.Errorf("Resolve(%s) = %q, %v; want %q", &tc.ref, got, err, tc.want)
		}
	}
	if _, err := (&SecretRef{Name: "nope", Key: "k"}).Resolve(); err == nil || !strings.Contains(err.Error(), "VMCP_SECRET_NOPE_K") {
		t.Errorf("missing secret error = %v, want it to name the variable", err)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte("backends:\n- name: a\n  url: http://x/mcp\n"), "min.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"name", cfg.Name, DefaultName},
		{"listen", cfg.Server.Listen, DefaultListen},
		{"prefixFormat", cfg.Config.Aggregation.ConflictResolutionConfig.PrefixFormat, "{workload}_"},
		{"conflictResolution", cfg.Config.Aggregation.ConflictResolution, ConflictPrefix},
		{"callTimeout", cfg.CallTimeout("a"), DefaultCallTimeout},
		{"health", cfg.Config.Operational.FailureHandling.HealthCheckInterval.D(), 30 * time.Second},
		{"incoming", cfg.IncomingAuth.Type, AuthAnonymous},
		{"pageSize", cfg.Server.PageSize, DefaultPageSize},
		{"maxResultBytes", cfg.Server.MaxResultBytes, int64(DefaultMaxResultBytes)},
		{"maxSessions", cfg.Server.MaxSessions, 10000},
		{"maxSessionsPerPrincipal", cfg.Server.MaxSessionsPerPrincipal, 100},
		{"readHeaderTimeout", cfg.Server.ReadHeaderTimeout.D(), 10 * time.Second},
		{"readTimeout", cfg.Server.ReadTimeout.D(), 30 * time.Second},
		{"idleTimeout", cfg.Server.IdleTimeout.D(), 2 * time.Minute},
		{"maxHeaderBytes", cfg.Server.MaxHeaderBytes, 64 << 10},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestErrors checks that each mistake is reported with its line and field.
func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		want []string // substrings, each must appear in the error text
	}{
		{"unknown field with suggestion", "backends:\n- name: a\n  url: http://x\n  trasport: sse\n",
			[]string{"f.yaml:4: backends[0].trasport: unknown field (did you mean \"transport\"?)"}},
		{"unknown top-level field", "nmae: x\n", []string{"f.yaml:1: nmae: unknown field (did you mean \"name\"?)"}},
		{"bad transport", "backends:\n- name: a\n  url: http://x\n  transport: grpc\n",
			[]string{"f.yaml:4: backends[0].transport: \"grpc\" is not one of"}},
		{"missing url", "backends:\n- name: a\n  transport: sse\n", []string{"f.yaml:2: backends[0].url: is required"}},
		{"duplicate names", "backends:\n- name: a\n  url: http://x\n- name: a\n  url: http://y\n",
			[]string{"f.yaml:4: backends[1].name: \"a\" is used by another backend"}},
		{"stdio without command", "backends:\n- name: a\n  transport: stdio\n", []string{"backends[0].command: is required"}},
		{"bad duration", "config:\n  operational:\n    timeouts:\n      default: soon\n",
			[]string{"f.yaml:4: config.operational.timeouts.default: ", "\"soon\" is not a duration"}},
		{"wrong type", "backends: 3\n", []string{"f.yaml:1: backends: "}},
		{"bad strategy", "config:\n  aggregation:\n    conflictResolution: random\n",
			[]string{"f.yaml:3: config.aggregation.conflictResolution: \"random\" is not one of prefix, priority, manual"}},
		{"priority names unknown backend", "config:\n  aggregation:\n    conflictResolutionConfig:\n      priorityOrder: [ghost]\n",
			[]string{"config.aggregation.conflictResolutionConfig.priorityOrder[0]: no backend is named \"ghost\""}},
		{"inline authz without policies", "incomingAuth:\n  type: anonymous\n  authzConfig:\n    type: inline\n",
			[]string{"incomingAuth.authzConfig.inline.policies: type inline needs at least one policy"}},
		{"misspelled primary provider", "incomingAuth:\n  type: oidc\n  oidcConfigRef: {name: x}\n  authzConfig:\n    type: inline\n    inline: {policies: [\"permit(principal, action, resource);\"]}\n    primaryUpstreamProvider: gogle\nauthServerConfig:\n  issuer: https://gw\n  upstreamProviders: [{name: google, type: oidc, oidcConfig: {issuerUrl: https://idp, clientId: c}}]\n",
			[]string{"f.yaml:7: incomingAuth.authzConfig.primaryUpstreamProvider: \"gogle\" is not an upstream provider (one of google)"}},
		{"several providers, none primary", "incomingAuth:\n  type: oidc\n  oidcConfigRef: {name: x}\n  authzConfig:\n    type: inline\n    inline: {policies: [\"permit(principal, action, resource);\"]}\nauthServerConfig:\n  issuer: https://gw\n  upstreamProviders:\n  - {name: a, type: oidc, oidcConfig: {issuerUrl: https://idp, clientId: c}}\n  - {name: b, type: oidc, oidcConfig: {issuerUrl: https://idp2, clientId: c}}\n",
			[]string{"incomingAuth.authzConfig.primaryUpstreamProvider: is required with several upstream providers (one of a, b)"}},
		{"upstream claims without auth server", "incomingAuth:\n  type: oidc\n  oidcConfig: {issuer: https://idp}\n  authzConfig:\n    type: inline\n    inline: {policies: [\"permit(principal, action, resource);\"]}\n    claimsFrom: upstream\n",
			[]string{"f.yaml:7: incomingAuth.authzConfig.claimsFrom: upstream needs authServerConfig"}},
		{"oidc without settings", "incomingAuth:\n  type: oidc\n", []string{"f.yaml:2: incomingAuth: type oidc needs oidcConfig"}},
		{"auth server without oidc", "authServerConfig:\n  issuer: https://x\n",
			[]string{"incomingAuth.type: is anonymous, but authServerConfig issues tokens", "f.yaml:2: authServerConfig.upstreamProviders: needs at least one provider"}},
		{"issuer with path", "incomingAuth: {type: oidc, oidcConfigRef: {name: x}}\nauthServerConfig:\n  issuer: https://x/as\n  upstreamProviders: [{name: g, type: oidc, oidcConfig: {issuerUrl: https://idp, clientId: c}}]\n",
			[]string{"f.yaml:3: authServerConfig.issuer: \"https://x/as\" must have no path"}},
		{"http issuer off loopback", "incomingAuth: {type: oidc, oidcConfigRef: {name: x}}\nauthServerConfig:\n  issuer: http://gw.example.com\n  upstreamProviders: [{name: g, type: oidc, oidcConfig: {issuerUrl: https://idp, clientId: c}}]\n",
			[]string{"authServerConfig.issuer: \"http://gw.example.com\" must be https"}},
		{"login origin with a path", "incomingAuth: {type: oidc, oidcConfigRef: {name: x}}\nauthServerConfig:\n  issuer: https://gw\n  upstreamProviders:\n  - name: g\n    type: oidc\n    oidcConfig: {issuerUrl: https://idp, clientId: c}\n    loginOrigins: [https://login.example.com, https://login.example.com/app]\n",
			[]string{"f.yaml:8: authServerConfig.upstreamProviders[0].loginOrigins[1]: \"https://login.example.com/app\" must be an origin: scheme://host[:port]"}},
		{"upstream oauth2 missing endpoints", "incomingAuth: {type: oidc, oidcConfigRef: {name: x}}\nauthServerConfig:\n  issuer: https://gw\n  upstreamProviders:\n  - name: gh\n    type: oauth2\n    oauth2Config: {clientId: c}\n",
			[]string{"f.yaml:7: authServerConfig.upstreamProviders[0].oauth2Config.tokenUrl: is required"}},
		{"ref without auth server", "incomingAuth:\n  type: oidc\n  oidcConfigRef: {name: gw}\n",
			[]string{"f.yaml:3: incomingAuth.oidcConfigRef: names a Kubernetes MCPOIDCConfig"}},
		{"secret ref forms", "incomingAuth:\n  type: oidc\n  oidcConfig:\n    issuer: https://idp\n    introspectionUrl: https://idp/i\n    clientId: c\n    clientSecretRef: {name: s, file: /x}\n",
			[]string{"f.yaml:7: incomingAuth.oidcConfig.clientSecretRef: give exactly one of name+key, file, env"}},
		{"outgoing: unknown strategy", "backends:\n- name: a\n  url: http://x\n  outgoingAuth: {type: kerberos}\n",
			[]string{"f.yaml:4: backends[0].outgoingAuth.type: \"kerberos\" is not one of"}},
		{"outgoing: passthrough needs acknowledgement", "backends:\n- name: a\n  url: http://x\n  outgoingAuth: {type: pass_through_unsafe}\n",
			[]string{"backends[0].outgoingAuth.passThrough.acknowledgeUnsafe: must be true"}},
		{"outgoing: upstream provider without auth server", "backends:\n- name: a\n  url: http://x\n  outgoingAuth: {type: upstream_inject, upstreamInject: {provider: google}}\n",
			[]string{"backends[0].outgoingAuth.upstreamInject.provider: names an upstream provider, but there is no authServerConfig"}},
		{"outgoing: stdio with credentials", "backends:\n- name: a\n  command: x\n  outgoingAuth: {type: header_injection, headerInjection: {valueSecretRef: {env: K}}}\n",
			[]string{"f.yaml:2: backends[0]: a stdio backend takes credentials through env"}},
		{"outgoing: inline names unknown backend", "outgoingAuth:\n  source: inline\n  backends:\n    ghost: {type: unauthenticated}\n",
			[]string{"f.yaml:4: outgoingAuth.backends.ghost: no backend is named \"ghost\""}},
		{"outgoing: token exchange without target", "backends:\n- name: a\n  url: http://x\n  outgoingAuth: {type: token_exchange, tokenExchange: {tokenUrl: \"https://sts/token\", clientId: c, clientSecretRef: {env: S}}}\n",
			[]string{"backends[0].outgoingAuth.tokenExchange: set audience or resource"}},
		{"bad algorithm", "incomingAuth:\n  type: oidc\n  oidcConfig:\n    issuer: https://idp\n    allowedAlgorithms: [none]\n",
			[]string{"incomingAuth.oidcConfig.allowedAlgorithms[0]: \"none\" is not one of"}},
		{"bad origin", "server:\n  allowedOrigins: [\"https://a.example/path\"]\n",
			[]string{"server.allowedOrigins[0]: \"https://a.example/path\" must be an origin"}},
		{"result size limit too small", "server:\n  maxResultBytes: 1000\n",
			[]string{"f.yaml:2: server.maxResultBytes: must be between 65536 (64 KiB) and 1073741824 (1 GiB)"}},
		{"a URL's secrets are not repeated", "backends:\n- name: a\n  url: ftp://u:pw-secret@x/mcp?token=tok-secret\n",
			[]string{`f.yaml:3: backends[0].url: "ftp://REDACTED@x/mcp?REDACTED" must be an absolute http or https URL`}},
		{"manifest of another kind", "kind: Deployment\nspec: {}\n", []string{"f.yaml:1: kind: is \"Deployment\""}},
		{"manifest paths", "kind: VirtualMCPServer\nspec:\n  backends:\n  - name: a\n    transport: sse\n",
			[]string{"f.yaml:4: spec.backends[0].url: is required"}},
		{"syntax error", "backends: [\n", []string{"f.yaml:"}},
		{"empty file", "", []string{"f.yaml: the file is empty"}},
		{"callback on another origin", "incomingAuth: {type: oidc, oidcConfigRef: {name: x}}\nauthServerConfig:\n  issuer: https://gw.example\n  upstreamProviders:\n  - name: g\n    type: oidc\n    oidcConfig:\n      issuerUrl: https://idp\n      clientId: c\n      redirectUri: https://other.example/oauth/callback\n",
			[]string{"f.yaml:10: authServerConfig.upstreamProviders[0].oidcConfig.redirectUri: \"https://other.example/oauth/callback\" must be on the issuer's origin https://gw.example"}},
		{"discovery URL as issuer", "incomingAuth: {type: oidc, oidcConfigRef: {name: x}}\nauthServerConfig:\n  issuer: https://gw.example\n  upstreamProviders:\n  - name: g\n    type: oidc\n    oidcConfig:\n      issuerUrl: https://idp/.well-known/openid-configuration\n      clientId: c\n",
			[]string{"f.yaml:8: authServerConfig.upstreamProviders[0].oidcConfig.issuerUrl: \"https://idp/.well-known/openid-configuration\" is a metadata URL"}},
		{"auth server limits", "incomingAuth: {type: oidc, oidcConfigRef: {name: x}}\nauthServerConfig:\n  issuer: https://gw.example\n  upstreamProviders: [{name: g, type: oidc, oidcConfig: {issuerUrl: https://idp, clientId: c}}]\n  pendingLogins:\n    max: 10\n    maxPerClient: 20\n    timeout: 2h\n  clientRegistration:\n    max: -1\n    maxBytes: 100\n    unusedExpiry: 1m\n    idleExpiry: 24h\n",
			[]string{"f.yaml:7: authServerConfig.pendingLogins.maxPerClient: must be between 1 and pendingLogins.max (10)",
				"f.yaml:8: authServerConfig.pendingLogins.timeout: must be between 1m and 1h",
				"f.yaml:10: authServerConfig.clientRegistration.max: must be at least 1",
				"f.yaml:11: authServerConfig.clientRegistration.maxBytes: must be between 512 and 65536",
				"f.yaml:12: authServerConfig.clientRegistration.unusedExpiry: must be at least pendingLogins.timeout",
				"f.yaml:13: authServerConfig.clientRegistration.idleExpiry: must be at least tokenLifespans.refreshToken (168h0m0s)"}},
		{"read timeout shorter than the header timeout", "server:\n  readHeaderTimeout: 20s\n  readTimeout: 5s\n",
			[]string{"f.yaml:3: server.readTimeout: 5s is shorter than server.readHeaderTimeout (20s)"}},
		{"header limit too small", "server:\n  maxHeaderBytes: 100\n", []string{"f.yaml:2: server.maxHeaderBytes: must be between 4096 and"}},
		{"negative session limit", "server:\n  maxSessionsPerPrincipal: -1\n", []string{"f.yaml:2: server.maxSessionsPerPrincipal: must be positive"}},
		{"several errors at once", "name: \"bad name\"\nserver:\n  pageSize: -1\n",
			[]string{"f.yaml:1: name:", "f.yaml:3: server.pageSize: must be between"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.doc), "f.yaml")
			if err == nil {
				t.Fatalf("Parse succeeded; want errors %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%s\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
}

func TestSecretEnvNames(t *testing.T) {
	t.Parallel()
	cfg, err := Load("testdata/seed-auth.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.SecretEnvNames()
	for _, want := range []string{"VMCP_SECRET_HMAC_SECRET_HMAC_KEY", "VMCP_SECRET_GOOGLE_OAUTH_CLIENTSECRET"} {
		if !slices.Contains(got, want) {
			t.Errorf("SecretEnvNames() = %v, want it to contain %s", got, want)
		}
	}
}

func TestSecretRefs(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(`
authServerConfig:
  issuer: https://as.example.com
  hmacSecretRefs: [{name: hmac, key: k1}, {name: hmac, key: k2}]
  upstreamProviders:
    - name: google
      type: oidc
      oidcConfig: {issuerUrl: https://accounts.google.com, clientId: c, clientSecretRef: {name: google, key: secret}}
incomingAuth:
  type: oidc
  oidcConfigRef: {name: self}
outgoingAuth:
  source: inline
  backends:
    b: {type: header_injection, headerInjection: {valueSecretRef: {env: API_KEY}}}
    a: {type: header_injection, headerInjection: {valueSecretRef: {name: apikey, key: a}}}
backends:
  - {name: a, url: http://a.example.com/mcp}
  - {name: b, url: http://b.example.com/mcp}
`), "refs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// In field order (outgoingAuth comes before authServerConfig), map
	// entries by key.
	want := []FieldSecretRef{
		{Field: "outgoingAuth.backends.a.headerInjection.valueSecretRef", Ref: SecretRef{Name: "apikey", Key: "a"}},
		{Field: "outgoingAuth.backends.b.headerInjection.valueSecretRef", Ref: SecretRef{Env: "API_KEY"}},
		{Field: "authServerConfig.hmacSecretRefs[0]", Ref: SecretRef{Name: "hmac", Key: "k1"}},
		{Field: "authServerConfig.hmacSecretRefs[1]", Ref: SecretRef{Name: "hmac", Key: "k2"}},
		{Field: "authServerConfig.upstreamProviders[0].oidcConfig.clientSecretRef", Ref: SecretRef{Name: "google", Key: "secret"}},
	}
	if diff := cmp.Diff(want, cfg.SecretRefs()); diff != "" {
		t.Errorf("SecretRefs (-want +got):\n%s", diff)
	}
}
