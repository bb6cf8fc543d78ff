package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// conformanceScenarios is the number of scenarios in the default (active)
// server suite of @modelcontextprotocol/conformance 0.1.16.
const conformanceScenarios = 30

// startFixtureHTTP serves the conformance fixture over streamable HTTP on a
// loopback port and returns its MCP endpoint.
func startFixtureHTTP(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(bins.fixture, "--listen", "127.0.0.1:0")
	cmd.Env = childEnv()
	_, url := startProc(t, "fixture", cmd, func(line string) (string, bool) {
		return strings.CutPrefix(line, "listening on ")
	})
	return url
}

// TestConformance runs the official MCP conformance suite against vmcp
// fronting the conformance fixture: every scenario must pass through the
// gateway.
func TestConformance(t *testing.T) {
	setupTools(t)
	t.Parallel()
	tl := needTools(t)
	fixture := startFixtureHTTP(t)
	// One backend under the priority strategy keeps the fixture's own names,
	// which the suite calls.
	v := startVMCP(t, fmt.Sprintf(`name: conformance
config:
  aggregation:
    conflictResolution: priority
backends:
  - name: fixture
    url: %q
`, fixture))
	v.waitBackends(t, "ready", "fixture")

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	outDir := t.TempDir()
	// `npx conformance` in $VMCP_TOOLS/npm, pinned: run the bin of the
	// 0.1.16 package itself, since another installed version (an npm alias)
	// may own the node_modules/.bin/conformance name.
	cmd := exec.CommandContext(ctx, tl.node, tl.conformance(), "server", "--url", v.URL, "-o", outDir)
	cmd.Dir = tl.npmDir
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	t.Logf("conformance output:\n%s", out)
	code, desc := exitCode(err)

	summary := parseConformance(string(out))
	if len(summary.scenarios) != conformanceScenarios {
		t.Errorf("the summary lists %d scenarios, want %d: %v", len(summary.scenarios), conformanceScenarios, summary.scenarios)
	}
	for _, s := range summary.scenarios {
		if s.failed == 0 && s.passed > 0 {
			continue
		}
		t.Errorf("scenario %s: %d passed, %d failed", s.name, s.passed, s.failed)
	}
	if !summary.haveTotal {
		t.Fatal(`no "Total: N passed, M failed" line in the output`)
	}
	if summary.failed != 0 || summary.passed < conformanceScenarios {
		t.Errorf("Total: %d passed, %d failed; want at least %d passed, 0 failed", summary.passed, summary.failed, conformanceScenarios)
	}
	if code != 0 {
		t.Errorf("npx conformance server: %s, want exit status 0", desc)
	}
}

type conformanceScenario struct {
	name           string
	passed, failed int
}

type conformanceSummary struct {
	scenarios      []conformanceScenario
	haveTotal      bool
	passed, failed int
}

var (
	scenarioLine = regexp.MustCompile(`^[✓✗] ([\w.-]+): (\d+) passed, (\d+) failed$`)
	totalLine    = regexp.MustCompile(`^Total: (\d+) passed, (\d+) failed$`)
)

// parseConformance reads the summary the suite prints last.
func parseConformance(out string) conformanceSummary {
	var s conformanceSummary
	_, summary, _ := strings.Cut(out, "=== SUMMARY ===")
	for line := range strings.Lines(summary) {
		line = strings.TrimSpace(line)
		if m := scenarioLine.FindStringSubmatch(line); m != nil {
			p, _ := strconv.Atoi(m[2])
			f, _ := strconv.Atoi(m[3])
			s.scenarios = append(s.scenarios, conformanceScenario{m[1], p, f})
		}
		if m := totalLine.FindStringSubmatch(line); m != nil {
			s.haveTotal = true
			s.passed, _ = strconv.Atoi(m[1])
			s.failed, _ = strconv.Atoi(m[2])
		}
	}
	return s
}
