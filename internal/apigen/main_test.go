package main

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// root is the repository, from this package's directory.
var root = filepath.Join("..", "..")

func checkCurrent(t *testing.T, file string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run make generate and commit the result\n%s", file,
			cmp.Diff(strings.Split(string(want), "\n"), strings.Split(string(got), "\n")))
	}
}

func TestGeneratedFileIsCurrent(t *testing.T) {
	t.Parallel()
	b, err := generate(filepath.Join(root, "internal", "config"), rules)
	if err != nil {
		t.Fatal(err)
	}
	checkCurrent(t, "api/v1alpha1/zz_generated.gateway.go", b)
}

func TestReferenceIsCurrent(t *testing.T) {
	t.Parallel()
	b, err := reference(filepath.Join(root, "config", "crd", "bases"))
	if err != nil {
		t.Fatal(err)
	}
	checkCurrent(t, "docs/kubernetes-api.md", b)
}

// TestRulesMatchFields fails if a rule names a field the config package
// does not have (the check generate makes).
func TestRulesMatchFields(t *testing.T) {
	t.Parallel()
	withStale := maps.Clone(rules)
	withStale["Config.NoSuchField"] = rule{Drop: true}
	_, err := generate(filepath.Join(root, "internal", "config"), withStale)
	if err == nil || !strings.Contains(err.Error(), "Config.NoSuchField") {
		t.Errorf("generate with a rule for a missing field: %v", err)
	}
}

// TestControllerGenOutputIsCurrent runs controller-gen (tools/go.mod's)
// and compares what it prints with the committed deep copies, CRDs and
// RBAC role.
func TestControllerGenOutputIsCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds controller-gen")
	}
	t.Parallel()
	out, err := exec.Command("go", "-C", filepath.Join(root, "tools"), "tool", "-n", "controller-gen").Output()
	if err != nil {
		t.Fatalf("building controller-gen (tools/go.mod): %v", err)
	}
	cg := strings.TrimSpace(string(out))
	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(cg, args...)
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("controller-gen %v: %v\n%s", args, err, stderr.String())
		}
		return b
	}
	checkCurrent(t, "api/v1alpha1/zz_generated.deepcopy.go", run("object", "paths=./api/...", "output:object:stdout"))
	checkCurrent(t, "config/rbac/role.yaml", run("rbac:roleName=vmcp-operator", "paths=./internal/controller/...", "output:rbac:stdout"))
	crds := run("crd:allowDangerousTypes=true", "paths=./api/...", "output:crd:stdout")
	plural := regexp.MustCompile(`(?m)^  name: ([a-z]+)\.vmcp\.dev$`)
	docs := strings.Split(string(crds), "---\n")
	n := 0
	for _, doc := range docs {
		m := plural.FindStringSubmatch(doc)
		if m == nil {
			continue
		}
		n++
		checkCurrent(t, "config/crd/bases/vmcp.dev_"+m[1]+".yaml", []byte("---\n"+doc))
	}
	if n != 4 {
		t.Errorf("controller-gen printed %d CRDs, want 4", n)
	}
}
