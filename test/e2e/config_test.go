package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// runVMCP runs the vmcp binary to completion and returns its exit code,
// stdout and stderr.
func runVMCP(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.vmcp, args...)
	cmd.Env = childEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("vmcp %v did not exit: %v\nstdout: %s\nstderr: %s", args, ctx.Err(), &stdout, &stderr)
	}
	code, _ := exitCode(err)
	return code, stdout.String(), stderr.String()
}

// TestInvalidConfig checks that broken configuration files are refused with
// one "FILE:LINE: FIELD: message" line per problem and exit status 2, by
// `vmcp validate` and by `vmcp serve`, which then starts nothing.
func TestInvalidConfig(t *testing.T) {
	setup(t)
	t.Parallel()
	tests := []struct {
		name   string
		config string
		// want are the error lines, with FILE for the file's path.
		want []string
	}{
		{
			name: "misspelled field",
			config: `name: broken
backends:
  - name: fx
    urll: http://127.0.0.1:1/mcp
`,
			want: []string{`FILE:4: backends[0].urll: unknown field (did you mean "url"?)`},
		},
		{
			name: "bad duration",
			config: `name: broken
config:
  operational:
    timeouts:
      default: soon
backends:
  - name: fx
    url: http://127.0.0.1:1/mcp
`,
			want: []string{`FILE:5: config.operational.timeouts.default: "soon" is not a duration (like 500ms, 30s or 5m)`},
		},
		{
			name: "several problems at once",
			config: `name: broken
backends:
  - name: one
    command: /bin/true
  - name: one
    transport: carrier-pigeon
    url: http://127.0.0.1:1/mcp
  - name: two
    transport: stdio
server:
  logLevel: loud
`,
			want: []string{
				`FILE:5: backends[1].name: "one" is used by another backend`,
				`FILE:6: backends[1].transport: "carrier-pigeon" is not one of streamable-http, sse, stdio`,
				`FILE:8: backends[2].command: is required for a stdio backend`,
				`FILE:11: server.logLevel: "loud" is not one of debug, info, warn, error`,
			},
		},
		{
			name: "wrong type",
			config: `server:
  maxRequestBytes: lots
`,
			want: []string{"FILE:2: server.maxRequestBytes: cannot unmarshal !!str `lots` into int64"},
		},
		{
			// A Kubernetes-only setting is refused standalone, never ignored.
			name: "a setting standalone vmcp cannot honour",
			config: `name: broken
incomingAuth:
  authzConfig:
    type: configMap
`,
			want: []string{`FILE:4: incomingAuth.authzConfig.type: configMap policies are read by the Kubernetes operator; standalone, use type file`},
		},
		{
			name: "manifest field",
			config: `apiVersion: toolhive.stacklok.dev/v1alpha1
kind: VirtualMCPServer
metadata:
  name: broken
spec:
  config:
    aggregation:
      conflictResolution: alphabetical
`,
			want: []string{`FILE:8: spec.config.aggregation.conflictResolution: "alphabetical" is not one of prefix, priority, manual`},
		},
		{
			name:   "YAML syntax",
			config: "name: broken\nbackends:\n  - name: fx\n\turl: x\n",
			want:   []string{`FILE:3: found a tab character that violates indentation`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := writeFile(t, "vmcp.yaml", tc.config)
			want := strings.ReplaceAll(strings.Join(tc.want, "\n"), "FILE", file)

			code, stdout, stderr := runVMCP(t, "validate", "--config", file)
			if code != 2 {
				t.Errorf("vmcp validate: exit status %d, want 2\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			got := strings.TrimSpace(strings.TrimPrefix(stderr, "vmcp: "))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("vmcp validate errors (-want +got):\n%s", diff)
			}
			if strings.Contains(stdout, "valid") {
				t.Errorf("vmcp validate printed %q for a broken file", stdout)
			}
		})
	}

	t.Run("serve refuses to start", func(t *testing.T) {
		t.Parallel()
		// The stdio backend would leave a marker if vmcp started it.
		marker := filepath.Join(t.TempDir(), "started")
		file := writeFile(t, "vmcp.yaml", `name: broken
backends:
  - name: marker
    command: /bin/sh
    args: ["-c", "touch '`+marker+`'; exec sleep 60"]
server:
  pageSize: -1
`)
		code, stdout, stderr := runVMCP(t, "serve", "--config", file, "--listen", "127.0.0.1:0")
		if code == 0 {
			t.Errorf("vmcp serve with a broken file: exit status 0")
		}
		if want := file + ":7: server.pageSize: must be between 1 and 10000"; !strings.Contains(stderr, want) {
			t.Errorf("vmcp serve stderr = %q, want it to contain %q", stderr, want)
		}
		if strings.Contains(stdout, "serving") {
			t.Errorf("vmcp serve started serving: %q", stdout)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Error("vmcp serve started a backend of a file it refused")
		}
	})

	t.Run("a valid file passes", func(t *testing.T) {
		t.Parallel()
		file := writeFile(t, "vmcp.yaml", "name: fine\nbackends:\n  - name: fx\n    url: http://127.0.0.1:1/mcp\n")
		code, stdout, stderr := runVMCP(t, "validate", "--config", file)
		if code != 0 || !strings.Contains(stdout, file+": valid (1 backends") {
			t.Errorf("vmcp validate on a valid file: exit status %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
	})
}
