package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// enabled is true when VMCP_E2E=1 (as in test/authe2e). The tests that need
// third-party tools (Node 22, the npm packages) call setupTools, which skips
// otherwise; the tests that need only Go call setup and always run (on
// Linux), in `make test-unit` too.
var enabled bool

// bins holds the binaries built once for the whole package, on first use
// (buildOnce), into binDir.
var (
	binDir string
	bins   struct {
		vmcp, fixture string
	}
	buildOnce = sync.OnceValue(func() error { return build(binDir) })
)

func TestMain(m *testing.M) {
	enabled = os.Getenv("VMCP_E2E") == "1"
	if !enabled {
		fmt.Println("e2e: VMCP_E2E is not 1: the tests that need Node and the npm packages are skipped (make test sets it); the Go-only ones run")
	}
	if runtime.GOOS != "linux" {
		if enabled {
			fmt.Fprintln(os.Stderr, "e2e: the end-to-end tests need Linux (they read /proc)")
			os.Exit(1)
		}
		os.Exit(m.Run()) // every test skips itself
	}
	dir, err := os.MkdirTemp("", "vmcp-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles vmcp and vmcp-fixture into dir, with the race detector if
// the tests run with it, so that the product's races show up here too.
func build(dir string) error {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return err
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if raceBuild {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/vmcp", "./cmd/vmcp-fixture")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the binaries: %v\n%s", err, out)
	}
	bins.vmcp = filepath.Join(dir, "vmcp")
	bins.fixture = filepath.Join(dir, "vmcp-fixture")
	return nil
}

// setup prepares a test that needs only Go: it skips off Linux and builds
// the binaries on first use. These tests run without VMCP_E2E.
func setup(t *testing.T) {
	t.Helper()
	if binDir == "" {
		t.Skip("end-to-end test: needs Linux (it reads /proc)")
	}
	if err := buildOnce(); err != nil {
		t.Fatalf("e2e: %v", err)
	}
}

// setupTools prepares a test that needs the third-party tools of
// scripts/tools.sh: it skips unless VMCP_E2E=1 (and then needTools fails,
// never skips, when one is missing).
func setupTools(t *testing.T) {
	t.Helper()
	if !enabled {
		t.Skip("end-to-end test with Node and npm packages: set VMCP_E2E=1 to run it")
	}
	setup(t)
}

// tools locates the third-party parts scripts/tools.sh installs.
type tools struct {
	node     string // a Node 22 binary
	npmDir   string // $VMCP_TOOLS/npm: npx run there resolves the installed packages
	modules  string // npmDir/node_modules
	js       string // absolute path of test/e2e/js
	loopback string // js/loopback.mjs, a --import preload binding servers to 127.0.0.1
}

// Paths of the npm servers' entry points.
func (tl *tools) everything() string {
	return filepath.Join(tl.modules, "@modelcontextprotocol", "server-everything", "dist", "index.js")
}

// conformance is the CLI of @modelcontextprotocol/conformance (its "bin").
func (tl *tools) conformance() string {
	return filepath.Join(tl.modules, "@modelcontextprotocol", "conformance", "dist", "index.js")
}

func (tl *tools) memory() string {
	return filepath.Join(tl.modules, "@modelcontextprotocol", "server-memory", "dist", "index.js")
}

// npmPackages are the versions scripts/tools.sh installs; the assertions
// (for example the 30 conformance scenarios) hold for these.
var npmPackages = map[string]string{
	"@modelcontextprotocol/conformance":       "0.1.16",
	"@modelcontextprotocol/sdk":               "1.32.2",
	"@modelcontextprotocol/server-everything": "2026.8.31",
	"@modelcontextprotocol/server-memory":     "2026.8.31",
}

var findToolsOnce = sync.OnceValues(findTools)

// needTools returns the tools, or fails the test (never skips it) when one is
// missing: with VMCP_E2E=1, CI must not pass by running nothing.
func needTools(t *testing.T) *tools {
	t.Helper()
	if !enabled { // a test that needs the tools but called setup, not setupTools
		t.Skip("end-to-end test with Node and npm packages: set VMCP_E2E=1 to run it")
	}
	tl, err := findToolsOnce()
	if err != nil {
		t.Fatalf("e2e: %v\ninstall the tools with scripts/tools.sh, then run: eval \"$(scripts/tools.sh env)\" && VMCP_E2E=1 go test ./test/e2e/", err)
	}
	return tl
}

func findTools() (*tools, error) {
	tl := &tools{}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, errors.New("node is not on PATH (Node 22 is needed)")
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "v22.") {
		return nil, fmt.Errorf("%s is %q, not Node 22", node, strings.TrimSpace(string(out)))
	}
	tl.node = node
	if _, err := exec.LookPath("npx"); err != nil {
		return nil, errors.New("npx is not on PATH") // stdio backends in the tests use it
	}
	root := os.Getenv("VMCP_TOOLS")
	if root == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("VMCP_TOOLS is not set: %v", err)
		}
		root = filepath.Join(cache, "vmcp-tools")
	}
	tl.npmDir = filepath.Join(root, "npm")
	tl.modules = filepath.Join(tl.npmDir, "node_modules")
	for name, want := range npmPackages {
		data, err := os.ReadFile(filepath.Join(tl.modules, name, "package.json"))
		if err != nil {
			return nil, fmt.Errorf("npm package %s is not installed in %s", name, tl.modules)
		}
		var pkg struct{ Version string }
		if err := json.Unmarshal(data, &pkg); err != nil || pkg.Version != want {
			return nil, fmt.Errorf("npm package %s is version %q in %s, want %s", name, pkg.Version, tl.modules, want)
		}
	}
	if tl.js, err = filepath.Abs("js"); err != nil {
		return nil, err
	}
	tl.loopback = filepath.Join(tl.js, "loopback.mjs")
	if err := linkModules(tl.js, tl.modules); err != nil {
		return nil, err
	}
	return tl, nil
}

// linkModules points js/node_modules (gitignored) at the installed packages,
// so that the ESM scripts in js/ resolve them.
func linkModules(jsDir, modules string) error {
	link := filepath.Join(jsDir, "node_modules")
	if cur, err := os.Readlink(link); err == nil && cur == modules {
		return nil
	}
	tmp := link + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(modules, tmp); err != nil {
		return fmt.Errorf("linking %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		return fmt.Errorf("linking %s: %w", link, err)
	}
	return nil
}

// childEnv is the environment of every process the tests start: only what
// they need, so that nothing from the caller's environment (tokens, say) can
// reach a backend or a log.
func childEnv(extra ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for _, k := range []string{"TMPDIR", "GORACE"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, extra...)
}
