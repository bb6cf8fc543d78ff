package toolsearch

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTerms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text string
		want       []string
	}{
		{name: "snake case", text: "get_pull_request_files", want: []string{"get", "pull", "request", "file"}},
		{name: "kebab case", text: "get-pull-request-files", want: []string{"get", "pull", "request", "file"}},
		{name: "camel case", text: "getPullRequestFiles", want: []string{"get", "pull", "request", "file"}},
		{name: "acronym", text: "parseHTTPServerURL", want: []string{"pars", "http", "server", "url"}},
		{name: "sentence", text: "Creates a new issue in the repository.", want: []string{"creat", "new", "issu", "repositori"}},
		{name: "stop words and single letters dropped", text: "a b of the x-y", want: nil},
		{name: "digits kept", text: "sha256 of v2", want: []string{"sha256", "v2"}},
		{name: "unicode letters", text: "Größe ändern", want: []string{"größe", "ändern"}},
		{name: "overlong runs dropped", text: "token " + strings.Repeat("ab", 30) + " end", want: []string{"token", "end"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, terms(nil, tc.text)); diff != "" {
				t.Errorf("terms(%q) (-want +got):\n%s", tc.text, diff)
			}
		})
	}
}
