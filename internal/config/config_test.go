package config

import (
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
		{"later issue's field is refused", "authServerConfig:\n  issuer: https://x\n",
			[]string{"f.yaml:2: authServerConfig: is not supported by this version of vmcp yet"}},
		{"oidc refused", "incomingAuth:\n  type: oidc\n", []string{"f.yaml:2: incomingAuth.type: is not supported"}},
		{"bad origin", "server:\n  allowedOrigins: [\"https://a.example/path\"]\n",
			[]string{"server.allowedOrigins[0]: \"https://a.example/path\" must be an origin"}},
		{"manifest of another kind", "kind: Deployment\nspec: {}\n", []string{"f.yaml:1: kind: is \"Deployment\""}},
		{"manifest paths", "kind: VirtualMCPServer\nspec:\n  backends:\n  - name: a\n    transport: sse\n",
			[]string{"f.yaml:4: spec.backends[0].url: is required"}},
		{"syntax error", "backends: [\n", []string{"f.yaml:"}},
		{"empty file", "", []string{"f.yaml: the file is empty"}},
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
