package toolsearch

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

var update = flag.Bool("update", false, "capture testdata/servers/*.json from the npm MCP servers scripts/tools.sh installs (needs node and $VMCP_TOOLS)")

// capturedServers are the npm MCP servers whose tools/list answers make the
// real part of the benchmark catalog: the package, the arguments after its
// entry point and the environment it needs to start (placeholders: listing
// tools calls no API).
var capturedServers = []struct {
	name, pkg string
	args      []string
	env       []string
}{
	{name: "everything", pkg: "server-everything"},
	{name: "memory", pkg: "server-memory"},
	{name: "filesystem", pkg: "server-filesystem", args: []string{os.TempDir()}},
	{name: "github", pkg: "server-github", env: []string{"GITHUB_PERSONAL_ACCESS_TOKEN=placeholder"}},
	{name: "gitlab", pkg: "server-gitlab", env: []string{"GITLAB_PERSONAL_ACCESS_TOKEN=placeholder"}},
	{name: "slack", pkg: "server-slack", env: []string{"SLACK_BOT_TOKEN=placeholder", "SLACK_TEAM_ID=placeholder"}},
	{name: "maps", pkg: "server-google-maps", env: []string{"GOOGLE_MAPS_API_KEY=placeholder"}},
	{name: "brave", pkg: "server-brave-search", env: []string{"BRAVE_API_KEY=placeholder"}},
	{name: "postgres", pkg: "server-postgres", args: []string{"postgresql://127.0.0.1:1/none"}},
	{name: "thinking", pkg: "server-sequential-thinking"},
	{name: "everart", pkg: "server-everart", env: []string{"EVERART_API_KEY=placeholder"}},
}

// TestCaptureServers regenerates testdata/servers from the real servers:
//
//	eval "$(scripts/tools.sh env)" && go test ./internal/toolsearch -run TestCaptureServers -update
func TestCaptureServers(t *testing.T) {
	if !*update {
		t.Skip("run with -update to capture the servers' tool lists")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not on PATH: eval \"$(scripts/tools.sh env)\"")
	}
	modules := filepath.Join(os.Getenv("VMCP_TOOLS"), "npm", "node_modules", "@modelcontextprotocol")
	for _, s := range capturedServers {
		t.Run(s.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.Command(node, append([]string{filepath.Join(modules, s.pkg, "dist", "index.js")}, s.args...)...)
			cmd.Env = append(os.Environ(), s.env...)
			client := mcp.NewClient(&mcp.Implementation{Name: "capture"}, nil)
			cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
			if err != nil {
				t.Fatalf("starting %s: %v", s.pkg, err)
			}
			defer cs.Close()
			var tools []*mcp.Tool
			for tool, err := range cs.Tools(ctx, nil) {
				if err != nil {
					t.Fatalf("listing %s: %v", s.pkg, err)
				}
				tools = append(tools, tool)
			}
			pkgJSON, err := os.ReadFile(filepath.Join(modules, s.pkg, "package.json"))
			if err != nil {
				t.Fatal(err)
			}
			var pkg struct{ Name, Version string }
			if err := json.Unmarshal(pkgJSON, &pkg); err != nil {
				t.Fatal(err)
			}
			out, err := json.MarshalIndent(capturedServer{Package: pkg.Name + "@" + pkg.Version, Tools: tools}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("testdata", "servers", s.name+".json"), append(out, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d tools", pkg.Name, len(tools))
		})
	}
}

// capturedServer is one file of testdata/servers.
type capturedServer struct {
	Package string      `json:"package"`
	Tools   []*mcp.Tool `json:"tools"`
}
