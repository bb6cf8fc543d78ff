package config

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestToolSearchConfig(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(`
config:
  toolSearch:
    enabled: true
    alwaysList: [docs_search]
    embedding:
      url: https://api.openai.com/v1/embeddings
      model: text-embedding-3-small
      headers:
      - name: Authorization
        valuePrefix: "Bearer "
        valueSecretRef: {name: openai, key: api-key}
      - name: OpenAI-Organization
        value: org-1
`), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := ToolSearch{
		Enabled: true, AlwaysList: []string{"docs_search"}, DefaultLimit: 5, MaxLimit: 20,
		Embedding: &Embedding{
			URL: "https://api.openai.com/v1/embeddings", Model: "text-embedding-3-small",
			Headers: []EmbeddingHeader{
				{Name: "Authorization", ValuePrefix: "Bearer ", ValueSecretRef: &SecretRef{Name: "openai", Key: "api-key"}},
				{Name: "OpenAI-Organization", Value: "org-1"},
			},
			Timeout: Duration(2 * time.Second), SemanticWeight: 0.5, QueryRate: 20,
		},
	}
	if diff := cmp.Diff(want, cfg.Config.ToolSearch); diff != "" {
		t.Errorf("toolSearch (-want +got):\n%s", diff)
	}
	if got := cfg.SecretEnvNames(); !strings.Contains(strings.Join(got, " "), "VMCP_SECRET_OPENAI_API_KEY") {
		t.Errorf("SecretEnvNames() = %v: the embedding key is missing", got)
	}

	off, err := Parse([]byte("name: gw\n"), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if off.Config.ToolSearch.Enabled {
		t.Error("tool search is on by default")
	}
}

func TestToolSearchErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, doc, want string }{
		{"bad always-listed name", "config:\n  toolSearch:\n    alwaysList: [\"a b\"]\n",
			`f.yaml:3: config.toolSearch.alwaysList[0]: "a b" is not a valid tool name`},
		{"limit over max", "config:\n  toolSearch:\n    defaultLimit: 30\n    maxLimit: 10\n",
			"f.yaml:3: config.toolSearch.defaultLimit: must be between 1 and maxLimit (10)"},
		{"max limit too large", "config:\n  toolSearch:\n    maxLimit: 500\n", "f.yaml:3: config.toolSearch.maxLimit: must be between 1 and 50"},
		{"embedding without url", "config:\n  toolSearch:\n    embedding: {model: m}\n", "config.toolSearch.embedding.url: is required"},
		{"embedding without model", "config:\n  toolSearch:\n    embedding:\n      url: https://e/v1/embeddings\n",
			"f.yaml:4: config.toolSearch.embedding.model: is required"},
		{"credentials in the url", "config:\n  toolSearch:\n    embedding:\n      url: https://u:p@e/v1/embeddings\n      model: m\n",
			"f.yaml:4: config.toolSearch.embedding.url: must not carry credentials"},
		{"secret over plain http", "config:\n  toolSearch:\n    embedding:\n      url: http://e.example/v1/embeddings\n      model: m\n      headers: [{name: Authorization, valueSecretRef: {env: K}}]\n",
			"config.toolSearch.embedding.url: secrets are sent only over https"},
		{"header without value", "config:\n  toolSearch:\n    embedding:\n      url: https://e/v1/embeddings\n      model: m\n      headers: [{name: X-Key}]\n",
			"config.toolSearch.embedding.headers[0]: give exactly one of value, valueSecretRef"},
		{"bad header name", "config:\n  toolSearch:\n    embedding:\n      url: https://e/v1/embeddings\n      model: m\n      headers: [{name: \"X Key\", value: v}]\n",
			`config.toolSearch.embedding.headers[0].name: "X Key" is not a valid header name`},
		{"weight out of range", "config:\n  toolSearch:\n    embedding:\n      url: https://e/v1/embeddings\n      model: m\n      semanticWeight: 1.5\n",
			"f.yaml:6: config.toolSearch.embedding.semanticWeight: must be above 0 and at most 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.doc), "f.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v\nwant it to contain %s", err, tc.want)
			}
		})
	}
}

// TestToolSearchDocExamples parses the configuration examples of
// docs/toolsearch.md and of the toolSearch section of
// docs/configuration.md.
func TestToolSearchDocExamples(t *testing.T) {
	t.Parallel()
	blocks := yamlExamples(t, []string{"../../docs/toolsearch.md", "../../docs/configuration.md"}, func(block string) bool {
		return strings.Contains(block, "toolSearch:")
	})
	if len(blocks) < 3 {
		t.Fatalf("found %d toolSearch examples in the docs, want at least 3", len(blocks))
	}
	for i, block := range blocks {
		cfg, err := Parse([]byte(block), fmt.Sprintf("example-%d.yaml", i))
		if err != nil {
			t.Errorf("example %d:\n%s\n%v", i, block, err)
			continue
		}
		if !cfg.Config.ToolSearch.Enabled {
			t.Errorf("example %d does not turn tool search on", i)
		}
	}
}
