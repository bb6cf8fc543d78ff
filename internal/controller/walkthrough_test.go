package controller_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/vmcp-dev/vmcp/api/v1alpha1"
	"github.com/vmcp-dev/vmcp/internal/controller"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// startEverything serves @modelcontextprotocol/server-everything (from
// scripts/tools.sh) over streamable HTTP on a free loopback port and
// returns its MCP endpoint. Missing tools skip the test, or fail it when
// VMCP_E2E=1.
func startEverything(t *testing.T) string {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...) + `: install the tools with scripts/tools.sh and eval "$(scripts/tools.sh env)"`
		if os.Getenv("VMCP_E2E") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
	}
	if out, err := exec.Command(node, "--version").Output(); err != nil || !strings.HasPrefix(string(out), "v22.") {
		missing("%s is %q, not Node 22", node, strings.TrimSpace(string(out)))
	}
	tools := os.Getenv("VMCP_TOOLS")
	if tools == "" {
		missing("VMCP_TOOLS is not set")
	}
	index := filepath.Join(tools, "npm", "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js")
	if _, err := os.Stat(index); err != nil {
		missing("server-everything is not installed: %v", err)
	}
	loopback, err := filepath.Abs(filepath.Join("..", "..", "test", "e2e", "js", "loopback.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(vmcptest.FreeAddr(t))
	cmd := exec.Command(node, "--import", loopback, index, "streamableHttp")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "PORT=" + port}
	cmd.Stdout, cmd.Stderr = testWriter{t, "everything"}, testWriter{t, "everything"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", port)
	eventually(t, "server-everything accepts connections on "+addr, func() (bool, string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
	return "http://" + addr + "/mcp"
}

// TestWalkthrough is docs/kubernetes.md's walk-through: the manifests of
// config/samples/walkthrough.yaml (server-everything as a backend, Cedar
// policies in a ConfigMap), vmcp running on the ConfigMap the operator
// generated, and a tool called through it. The MCPServer is a remote one
// here (server-everything on loopback): no pods run under envtest.
func TestWalkthrough(t *testing.T) {
	ns := setup(t)
	everything := startEverything(t)
	objs := readObjects(t, filepath.Join("..", "..", "config", "samples", "walkthrough.yaml"), func(o *unstructured.Unstructured) {
		if o.GetKind() == "MCPServer" {
			o.Object["spec"] = map[string]any{"groupRef": map[string]any{"name": "demo"}, "url": everything}
		}
	})
	create(t, ns, objs...)
	vs := &v1alpha1.VirtualMCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "demo"}}
	waitCondition(t, vs, v1alpha1.ConditionAuthzConfigured, metav1.ConditionTrue, "the Cedar policies are valid")
	waitCondition(t, vs, v1alpha1.ConditionBackendsDiscovered, metav1.ConditionTrue, "1 backends from MCPGroup demo")
	waitCondition(t, vs, v1alpha1.ConditionAuthConfigured, metav1.ConditionTrue, "anonymous clients")

	cfg := generated(t, ns, "demo")
	if az := cfg.IncomingAuth.AuthzConfig; az.Type != "inline" || len(az.Inline.Policies) != 1 || !strings.Contains(az.Inline.Policies[0], `forbid (principal, action, resource == Vmcp::Tool::"everything_get-env")`) {
		t.Fatalf("the ConfigMap's policies are not in the generated configuration: %+v", az)
	}

	base := runPod(t, ns, "vmcp-demo")
	waitCondition(t, vs, v1alpha1.ConditionReady, metav1.ConditionTrue, "1 of 1 vmcp pods available")
	session := vmcptest.Connect(t, base+"/mcp", "", nil)
	ctx := context.Background()
	list, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	if !slices.Contains(names, "everything_echo") || slices.Contains(names, "everything_get-env") {
		t.Errorf("tools = %v: want everything_echo, and not everything_get-env (the ConfigMap's policy forbids it)", names)
	}
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "everything_echo", Arguments: map[string]any{"message": "hello through the operator"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Content[0].(*mcp.TextContent).Text; res.IsError || got != "Echo: hello through the operator" {
		t.Errorf("everything_echo = %q (isError %v)", got, res.IsError)
	}
	res, err = session.CallTool(ctx, &mcp.CallToolParams{Name: "everything_get-env"})
	if err == nil && !res.IsError {
		t.Errorf("everything_get-env was called although the policy forbids it")
	}

	// Editing the policies changes the document, and so the hash: the pods
	// roll onto the new policies.
	hash := deployment(t, ns, "vmcp-demo").Spec.Template.Annotations[controller.AnnotationConfigHash]
	patch(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "demo-policies"}},
		`{"data":{"policies.cedar":"permit (principal, action, resource);"}}`)
	eventually(t, "the new policies reach the generated configuration and the pod template", func() (bool, string) {
		doc := generatedText(t, ns, "demo")
		got := deployment(t, ns, "vmcp-demo").Spec.Template.Annotations[controller.AnnotationConfigHash]
		return !strings.Contains(doc, "forbid") && got != hash, strconv.Quote(doc)
	})

	// A policy that does not parse: the condition points at the ConfigMap.
	patch(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "demo-policies"}},
		`{"data":{"policies.cedar":"permit (principal, action, resource"}}`)
	waitCondition(t, vs, v1alpha1.ConditionAuthzConfigured, metav1.ConditionFalse, "ConfigMap demo-policies, key policies.cedar: ")
}
