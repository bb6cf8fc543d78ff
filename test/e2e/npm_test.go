package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startEverythingHTTP serves @modelcontextprotocol/server-everything over
// streamable HTTP on a free loopback port and returns its MCP endpoint.
func startEverythingHTTP(t *testing.T, tl *tools, env ...string) string {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(tl.node, "--import", tl.loopback, tl.everything(), "streamableHttp")
	cmd.Env = childEnv(append(env, "PORT="+strconv.Itoa(port))...)
	startProc(t, "everything-http", cmd, func(line string) (string, bool) {
		return "", strings.Contains(line, "listening on port")
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	eventually(t, waitTimeout, "server-everything accepts connections on "+addr, func() (bool, string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
	return "http://" + addr + "/mcp"
}

// tsCall is one tool call for js/call-tools.mjs.
type tsCall struct {
	Name      string         `json:"name"`
	Arguments map[string]any `json:"arguments"`
}

// tsOutput is what js/call-tools.mjs prints.
type tsOutput struct {
	ProtocolVersion string   `json:"protocolVersion"`
	SessionID       string   `json:"sessionId"`
	Tools           []string `json:"tools"`
	Results         []struct {
		IsError bool   `json:"isError"`
		Error   string `json:"error"`
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	} `json:"results"`
}

// runTSClient lists the tools of url and makes calls with the TypeScript
// SDK client.
func runTSClient(t *testing.T, tl *tools, url string, calls []tsCall) tsOutput {
	t.Helper()
	arg, err := json.Marshal(calls)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tl.node, filepath.Join(tl.js, "call-tools.mjs"), url, string(arg))
	cmd.Env = childEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if stderr.Len() > 0 {
		t.Logf("call-tools.mjs stderr:\n%s", stderr.String())
	}
	if err != nil {
		t.Fatalf("node call-tools.mjs: %v\nstdout: %s", err, stdout)
	}
	var out tsOutput
	if err := json.Unmarshal(stdout, &out); err != nil {
		t.Fatalf("node call-tools.mjs printed %q: %v", stdout, err)
	}
	if len(out.Results) != len(calls) {
		t.Fatalf("node call-tools.mjs returned %d results for %d calls", len(out.Results), len(calls))
	}
	return out
}

// TestNPMServers puts real npm MCP servers behind one vmcp —
// server-everything over stdio and over streamable HTTP, server-memory over
// stdio — and drives them with the TypeScript SDK client.
func TestNPMServers(t *testing.T) {
	setupTools(t)
	t.Parallel()
	tl := needTools(t)
	// E2E_INSTANCE tells the two server-everything processes apart: its
	// get-env tool returns its environment, so a call shows which process
	// answered it.
	httpURL := startEverythingHTTP(t, tl, "E2E_INSTANCE=http")
	v := startVMCP(t, fmt.Sprintf(`name: npm
backends:
  - name: everything-stdio
    command: %[1]q
    args: [%[2]q, stdio]
    env: {E2E_INSTANCE: stdio}
  - name: everything-http
    url: %[3]q
  - name: memory
    command: %[1]q
    args: [%[4]q]
    env: {MEMORY_FILE_PATH: %[5]q}
`, tl.node, tl.everything(), httpURL, tl.memory(), filepath.Join(t.TempDir(), "memory.jsonl")))
	v.waitBackends(t, "ready", "everything-stdio", "everything-http", "memory")

	calls := []tsCall{
		{"everything-stdio_echo", map[string]any{"message": "hello over stdio"}},
		{"everything-http_echo", map[string]any{"message": "hello over http"}},
		{"everything-stdio_get-env", nil},
		{"everything-http_get-env", nil},
		{"memory_create_entities", map[string]any{"entities": []any{map[string]any{
			"name": "vmcp-e2e", "entityType": "test", "observations": []string{"stored through vmcp"},
		}}}},
		{"memory_read_graph", nil},
	}
	out := runTSClient(t, tl, v.URL, calls)
	t.Logf("TypeScript client: protocol %s, session %q, %d tools", out.ProtocolVersion, out.SessionID, len(out.Tools))

	t.Run("tools", func(t *testing.T) {
		for _, want := range []string{
			"everything-stdio_echo", "everything-http_echo",
			"everything-stdio_trigger-long-running-operation", "everything-http_trigger-long-running-operation",
			"memory_create_entities", "memory_read_graph",
		} {
			if !slices.Contains(out.Tools, want) {
				t.Errorf("tools/list lacks %s; got %v", want, out.Tools)
			}
		}
		stdio, http, memory := withPrefix(out.Tools, "everything-stdio_"), withPrefix(out.Tools, "everything-http_"), withPrefix(out.Tools, "memory_")
		if len(stdio)+len(http)+len(memory) != len(out.Tools) {
			t.Errorf("tools without a backend prefix: %v", out.Tools)
		}
		// Both instances run the same server, so they offer the same tools.
		strip := func(names []string, prefix string) []string {
			var out []string
			for _, n := range names {
				out = append(out, strings.TrimPrefix(n, prefix))
			}
			slices.Sort(out)
			return out
		}
		if a, b := strip(stdio, "everything-stdio_"), strip(http, "everything-http_"); !slices.Equal(a, b) {
			t.Errorf("the two server-everything instances differ:\nstdio: %v\nhttp:  %v", a, b)
		}
		seen := map[string]bool{}
		for _, n := range out.Tools {
			if seen[n] {
				t.Errorf("tool %s listed twice", n)
			}
			seen[n] = true
		}
	})

	// text is the text content of call i; it fails the subtest t that asks.
	text := func(t *testing.T, i int) string {
		t.Helper()
		r := out.Results[i]
		if r.Error != "" || r.IsError {
			t.Fatalf("%s failed: error %q, isError %v, content %+v", calls[i].Name, r.Error, r.IsError, r.Content)
		}
		var parts []string
		for _, c := range r.Content {
			if c.Type == "text" {
				parts = append(parts, c.Text)
			}
		}
		return strings.Join(parts, "\n")
	}
	t.Run("echo", func(t *testing.T) {
		if got, want := text(t, 0), "Echo: hello over stdio"; got != want {
			t.Errorf("everything-stdio_echo = %q, want %q", got, want)
		}
		if got, want := text(t, 1), "Echo: hello over http"; got != want {
			t.Errorf("everything-http_echo = %q, want %q", got, want)
		}
	})
	t.Run("routing", func(t *testing.T) {
		for i, want := range map[int]string{2: "stdio", 3: "http"} {
			var env map[string]string
			if err := json.Unmarshal([]byte(text(t, i)), &env); err != nil {
				t.Fatalf("%s: %v", calls[i].Name, err)
			}
			if got := env["E2E_INSTANCE"]; got != want {
				t.Errorf("%s was answered by instance %q, want %q", calls[i].Name, got, want)
			}
		}
	})
	// Node closes a keep-alive connection idle for 5 s (its http server's
	// default keepAliveTimeout); vmcp's pooled connections for raw calls
	// must notice instead of sending the next call on a closed socket.
	t.Run("after the backend closed its idle connections", func(t *testing.T) {
		time.Sleep(6 * time.Second)
		again := runTSClient(t, tl, v.URL, []tsCall{{"everything-http_echo", map[string]any{"message": "after idle"}}})
		r := again.Results[0]
		if r.Error != "" || r.IsError || len(r.Content) == 0 || r.Content[0].Text != "Echo: after idle" {
			t.Errorf("a call after 6 s idle: error %q, isError %v, content %+v", r.Error, r.IsError, r.Content)
		}
	})
	t.Run("memory", func(t *testing.T) {
		if got := text(t, 4); !strings.Contains(got, "vmcp-e2e") {
			t.Errorf("memory_create_entities = %q, want it to echo the entity", got)
		}
		got := text(t, 5)
		for _, want := range []string{`"vmcp-e2e"`, `"stored through vmcp"`} {
			if !strings.Contains(got, want) {
				t.Errorf("memory_read_graph = %q, want it to contain %s", got, want)
			}
		}
	})
}
