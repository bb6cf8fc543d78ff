package app

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vmcp-dev/vmcp/internal/config"
)

// TestPublicHosts: the names a loopback listener accepts besides loopback
// ones are those of the public MCP URL and of the authorization server's
// issuer, which a proxy on the same machine may pass on.
func TestPublicHosts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  config.Config
		want []string
	}{
		{"none", config.Config{}, nil},
		{"public URL", config.Config{Server: config.Server{PublicURL: "https://mcp.example.com:8443/mcp"}}, []string{"mcp.example.com"}},
		{"and issuer", config.Config{Server: config.Server{PublicURL: "https://mcp.example.com/mcp"},
			AuthServerConfig: &config.AuthServerConfig{Issuer: "https://auth.example.com"}}, []string{"mcp.example.com", "auth.example.com"}},
	}
	for _, tc := range tests {
		if got := publicHosts(&tc.cfg); !cmp.Equal(got, tc.want) {
			t.Errorf("%s: publicHosts = %q, want %q", tc.name, got, tc.want)
		}
	}
}
