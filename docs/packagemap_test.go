package docs

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const module = "github.com/vmcp-dev/vmcp/"

// mapEntry is one row of design.md's package map: the package's name as
// the map writes it, and the vmcp packages it says the package imports.
type mapEntry struct {
	imports []string // nil for "nothing" or "tests only"
	line    int
}

// mapName turns a package path into the name the map uses: relative to
// internal/ for internal packages, to the repository otherwise.
func mapName(importPath string) string {
	rel := strings.TrimPrefix(importPath, module)
	return strings.TrimPrefix(rel, "internal/")
}

var backticked = regexp.MustCompile("`([^`]+)`")

// readPackageMap parses the tables of the "Package map" section of
// design.md.
func readPackageMap(t *testing.T) map[string]mapEntry {
	t.Helper()
	data, err := os.ReadFile("design.md")
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]mapEntry{}
	in := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == "## Package map"
			continue
		case !in || !strings.HasPrefix(line, "| `"):
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 3 {
			t.Fatalf("design.md:%d: a package map row has %d cells, want 3 (package | job | imports from vmcp)", n, len(cells))
		}
		name := strings.Trim(strings.TrimSpace(cells[0]), "`")
		var imports []string
		for _, m := range backticked.FindAllStringSubmatch(cells[2], -1) {
			imports = append(imports, m[1])
		}
		slices.Sort(imports)
		if _, dup := entries[name]; dup {
			t.Errorf("design.md:%d: package %s is in the map twice", n, name)
		}
		entries[name] = mapEntry{imports: imports, line: n}
	}
	if len(entries) == 0 {
		t.Fatal("design.md has no package map (a section \"## Package map\" with rows \"| `package` | job | imports |\")")
	}
	return entries
}

// goList returns every package of the module, by map name, with the vmcp
// packages its non-test files import (by map name).
func goList(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...")
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, &stderr)
	}
	pkgs := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		var imports []string
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, module) {
				imports = append(imports, mapName(imp))
			}
		}
		slices.Sort(imports)
		pkgs[mapName(fields[0])] = imports
	}
	return pkgs
}

// TestPackageMap checks design.md's package map against `go list`: every
// package of the module has a row, every row names a package, and each row
// lists exactly the vmcp packages the package imports.
func TestPackageMap(t *testing.T) {
	entries := readPackageMap(t)
	pkgs := goList(t)
	var names []string
	for name := range pkgs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		e, ok := entries[name]
		if !ok {
			imports := "nothing"
			if len(pkgs[name]) > 0 {
				imports = "`" + strings.Join(pkgs[name], "`, `") + "`"
			}
			t.Errorf("package %s is not in the package map of docs/design.md: add the row\n\t| `%s` | <its one job, as its doc.go says> | %s |\n"+
				"to the first table (internal/ packages of the product) or the second (commands, tests, test support)", name, name, imports)
			continue
		}
		if diff := cmp.Diff(pkgs[name], e.imports); diff != "" {
			t.Errorf("design.md:%d: package %s imports other vmcp packages than its row says (-go list +design.md):\n%s", e.line, name, diff)
		}
	}
	for name, e := range entries {
		if _, ok := pkgs[name]; !ok {
			t.Errorf("design.md:%d: the package map lists %s, which `go list ./...` does not know: remove its row (or fix its name: "+
				"internal packages are named relative to internal/, others relative to the repository)", e.line, name)
		}
	}
}
