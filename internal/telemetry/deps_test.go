package telemetry

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"
)

// frozen are OpenTelemetry modules that no longer have releases: they
// stay at their last one. go.opentelemetry.io/otel/exporters/jaeger stopped
// at v1.17.0 (replaced by OTLP); fosite's github.com/ory/x/otelx still
// imports it (vmcp never configures it). Drop an entry once nothing
// requires the module.
var frozen = map[string]string{"go.opentelemetry.io/otel/exporters/jaeger": "v1.17.0"}

// TestOneOpenTelemetry fails when go.mod selects OpenTelemetry modules of
// different releases: every go.opentelemetry.io/otel module at
// go.opentelemetry.io/otel's version, every contrib module at the contrib
// release that goes with it (one v1 and one v0 version), so that the
// binary links one OpenTelemetry. The main module's go.mod lists the
// selected version of every module the build uses. To move to a new
// release, `go get` go.opentelemetry.io/otel and each module this test
// names at the new versions together (docs/design.md, dependencies).
func TestOneOpenTelemetry(t *testing.T) {
	data, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range otelMismatches(t, data) {
		t.Error(p)
	}
}

// TestOneOpenTelemetryCatches: the check finds the mix go.mod had before
// (fosite's tree at v1.21, k8s's at v1.44).
func TestOneOpenTelemetryCatches(t *testing.T) {
	mix := []byte(`module m
require (
	go.opentelemetry.io/contrib/instrumentation/net/http/httptrace/otelhttptrace v0.46.1 // indirect
	go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp v0.69.0 // indirect
	go.opentelemetry.io/contrib/propagators/b3 v1.21.0 // indirect
	go.opentelemetry.io/otel v1.44.0 // indirect
	go.opentelemetry.io/otel/exporters/jaeger v1.17.0 // indirect
	go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp v1.21.0 // indirect
	go.opentelemetry.io/otel/trace v1.44.0 // indirect
)
`)
	if got := otelMismatches(t, mix); len(got) != 3 {
		t.Errorf("found %d mismatches, want 3 (otlptracehttp, b3, contrib v0): %q", len(got), got)
	}
}

func otelMismatches(t *testing.T, gomod []byte) []string {
	t.Helper()
	f, err := modfile.Parse("go.mod", gomod, nil)
	if err != nil {
		t.Fatal(err)
	}
	versions := map[string]string{}
	for _, r := range f.Require {
		versions[r.Mod.Path] = r.Mod.Version
	}
	otel := versions["go.opentelemetry.io/otel"]
	if otel == "" {
		return []string{"go.mod does not require go.opentelemetry.io/otel"}
	}
	var out []string
	contrib := map[string]string{} // major -> version
	for _, r := range f.Require {
		path, v := r.Mod.Path, r.Mod.Version
		switch {
		case frozen[path] != "":
			if v != frozen[path] {
				out = append(out, fmt.Sprintf("%s %s: it has had no release since %s; is it still needed?", path, v, frozen[path]))
			}
		case path == "go.opentelemetry.io/otel" || strings.HasPrefix(path, "go.opentelemetry.io/otel/"):
			if semver.Major(v) == "v1" && v != otel {
				out = append(out, fmt.Sprintf("%s %s, but go.opentelemetry.io/otel is %s: require every OpenTelemetry module at one release", path, v, otel))
			}
		case strings.HasPrefix(path, "go.opentelemetry.io/contrib/"):
			if path == "go.opentelemetry.io/contrib/samplers/jaegerremote" {
				continue // versioned on its own
			}
			m := semver.Major(v)
			if m == "v1" && v != otel {
				out = append(out, fmt.Sprintf("%s %s, but go.opentelemetry.io/otel is %s: contrib's stable modules share its release", path, v, otel))
			}
			if prev, ok := contrib[m]; ok && prev != v {
				out = append(out, fmt.Sprintf("contrib modules at %s and %s: require them at one release", prev, v))
			}
			contrib[m] = v
		}
	}
	return out
}
