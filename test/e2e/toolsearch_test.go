package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// searchStep is one step of js/tool-search.mjs.
type searchStep struct {
	Find      string         `json:"find,omitempty"`
	CallFound bool           `json:"callFound,omitempty"`
	Call      string         `json:"call,omitempty"`
	Arguments map[string]any `json:"arguments,omitempty"`
}

// searchOutput is what js/tool-search.mjs prints.
type searchOutput struct {
	Tools []string `json:"tools"`
	Steps []struct {
		Found  []string `json:"found"`
		Name   string   `json:"name"`
		Error  string   `json:"error"`
		Result struct {
			IsError bool `json:"isError"`
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"result"`
	} `json:"steps"`
}

// TestToolSearchTypeScript: a TypeScript SDK client lists a gateway in
// search mode, finds tools of real npm servers with find_tool and calls
// them with call_tool; a tool its policies deny is neither found nor
// callable, and answers as a tool that does not exist.
func TestToolSearchTypeScript(t *testing.T) {
	setupTools(t)
	t.Parallel()
	tl := needTools(t)
	v := startVMCP(t, fmt.Sprintf(`name: search
config:
  toolSearch:
    enabled: true
incomingAuth:
  type: anonymous
  authzConfig:
    type: inline
    inline:
      policies:
        - 'permit(principal, action, resource);'
        - 'forbid(principal, action == Vmcp::Action::"call_tool", resource == Vmcp::Tool::"memory_delete_entities");'
backends:
  - name: everything
    command: %[1]q
    args: [%[2]q, stdio]
  - name: memory
    command: %[1]q
    args: [%[3]q]
    env: {MEMORY_FILE_PATH: %[4]q}
`, tl.node, tl.everything(), tl.memory(), filepath.Join(t.TempDir(), "memory.jsonl")))
	v.waitBackends(t, "ready", "everything", "memory")

	steps := []searchStep{
		{Find: "sum of two numbers"},
		{CallFound: true, Arguments: map[string]any{"a": 2, "b": 3}},
		{Find: "store new entities in the knowledge graph"},
		{Find: "memory_delete_entities"},
		{Call: "memory_delete_entities", Arguments: map[string]any{"entityNames": []string{"x"}}},
		{Call: "memory_no_such_tool"},
	}
	arg, _ := json.Marshal(steps)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tl.node, filepath.Join(tl.js, "tool-search.mjs"), v.URL, string(arg))
	cmd.Env = childEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node tool-search.mjs: %v\nstdout: %s\nstderr: %s", err, stdout, stderr.String())
	}
	var out searchOutput
	if err := json.Unmarshal(stdout, &out); err != nil || len(out.Steps) != len(steps) {
		t.Fatalf("node tool-search.mjs printed %q: %v", stdout, err)
	}
	if diff := cmp.Diff([]string{"call_tool", "find_tool"}, out.Tools); diff != "" {
		t.Errorf("tools/list in search mode (-want +got):\n%s", diff)
	}
	s := out.Steps
	if len(s[0].Found) == 0 || s[0].Found[0] != "everything_get-sum" {
		t.Errorf("find_tool %q: %v, want everything_get-sum first", steps[0].Find, s[0].Found)
	}
	if s[1].Name != "everything_get-sum" || s[1].Result.IsError || len(s[1].Result.Content) == 0 || !strings.Contains(s[1].Result.Content[0].Text, "5") {
		t.Errorf("call_tool on the tool found: %+v", s[1])
	}
	if !slices.Contains(s[2].Found, "memory_create_entities") {
		t.Errorf("find_tool %q: %v, want memory_create_entities among them", steps[2].Find, s[2].Found)
	}
	if slices.Contains(s[3].Found, "memory_delete_entities") {
		t.Errorf("find_tool found the denied tool by its exact name: %v", s[3].Found)
	}
	denied, unknown := s[4].Error, s[5].Error
	if denied == "" || unknown == "" || strings.ReplaceAll(denied, "memory_delete_entities", "X") != strings.ReplaceAll(unknown, "memory_no_such_tool", "X") {
		t.Errorf("call_tool on a denied tool: %q; on an unknown one: %q; want the same error", denied, unknown)
	}
}
