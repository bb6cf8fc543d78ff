package controller_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGatewayDoesNotLinkKubernetes keeps controller-runtime and client-go
// out of the gateway's binary: the operator is cmd/vmcp-operator.
func TestGatewayDoesNotLinkKubernetes(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("go", "list", "-deps", "./cmd/vmcp")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "k8s.io/") || strings.HasPrefix(pkg, "sigs.k8s.io/") || strings.HasSuffix(pkg, "/internal/controller") {
			t.Errorf("cmd/vmcp imports %s", pkg)
		}
	}
}
