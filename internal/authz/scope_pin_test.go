package authz

import (
	"os"
	"testing"

	"golang.org/x/mod/modfile"
)

// cedarReviewed is the cedar-go version whose x/exp/ast package scope.go
// was written against and TestSubsetsDecideAsWholeSet last passed with.
// x/exp is not covered by cedar-go's semantic versioning, so any change of
// version (a `go get -u`, or another module requiring a newer cedar-go) is
// reviewed: read the x/exp/ast changes, run TestSubsetsDecideAsWholeSet,
// then update this constant.
const cedarReviewed = "v1.9.1"

// TestCedarExpPinned fails when go.mod selects another cedar-go than the
// reviewed one (see cedarReviewed). The main module's go.mod lists the
// selected version of every module it builds with.
func TestCedarExpPinned(t *testing.T) {
	data, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse("go.mod", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Replace {
		if r.Old.Path == "github.com/cedar-policy/cedar-go" {
			t.Fatalf("go.mod replaces cedar-go (%s => %s %s); internal/authz/scope.go is reviewed against %s only", r.Old.Path, r.New.Path, r.New.Version, cedarReviewed)
		}
	}
	for _, r := range f.Require {
		if r.Mod.Path != "github.com/cedar-policy/cedar-go" {
			continue
		}
		if v := r.Mod.Version; v != cedarReviewed {
			t.Fatalf("go.mod selects cedar-go %s, but internal/authz/scope.go builds on its x/exp/ast (not covered by semantic "+
				"versioning) as reviewed at %s: review the x/exp/ast changes, make sure TestSubsetsDecideAsWholeSet passes, then "+
				"set cedarReviewed in internal/authz/scope_pin_test.go to %s", v, cedarReviewed, v)
		}
		return
	}
	t.Fatal("go.mod does not require cedar-go")
}
