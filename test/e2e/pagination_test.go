package e2e

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// pageSize is the page size the pagination test configures.
const pageSize = 5

// TestPagination walks the cursors of tools/list and prompts/list with a
// small page size, in both protocol eras: every item comes exactly once, in
// full pages, and a cursor vmcp did not issue is an invalid-params error.
func TestPagination(t *testing.T) {
	setup(t)
	t.Parallel()
	// Two fixture backends: 28 tools and 8 prompts, so several pages.
	v := startVMCP(t, fmt.Sprintf(`name: pages
backends:
  - name: one
    command: %[1]q
    args: [--stdio]
  - name: two
    command: %[1]q
    args: [--stdio]
server:
  pageSize: %[2]d
`, bins.fixture, pageSize))
	v.waitBackends(t, "ready", "one", "two")

	var wantTools []string
	for _, n := range directToolNames(t, bins.fixture, "--stdio") {
		wantTools = append(wantTools, "one_"+n, "two_"+n)
	}
	slices.Sort(wantTools)
	if len(wantTools) < 12 {
		t.Fatalf("the fixture has %d tools between two backends; the test needs at least 12", len(wantTools))
	}

	for _, era := range []string{legacyVersion, modernVersion} {
		t.Run(era, func(t *testing.T) {
			t.Parallel()
			cs := connect(t, v.URL, era, nil)

			t.Run("tools", func(t *testing.T) {
				got := walk(t, func(cursor string) ([]string, string, error) {
					res, err := cs.ListTools(t.Context(), &mcp.ListToolsParams{Cursor: cursor})
					if err != nil {
						return nil, "", err
					}
					var names []string
					for _, tool := range res.Tools {
						names = append(names, tool.Name)
					}
					return names, res.NextCursor, nil
				})
				slices.Sort(got) // the order is vmcp's business; each tool once is the point
				if diff := cmp.Diff(wantTools, got); diff != "" {
					t.Errorf("tools over all pages (-want +got):\n%s", diff)
				}
			})

			t.Run("prompts", func(t *testing.T) {
				got := walk(t, func(cursor string) ([]string, string, error) {
					res, err := cs.ListPrompts(t.Context(), &mcp.ListPromptsParams{Cursor: cursor})
					if err != nil {
						return nil, "", err
					}
					var names []string
					for _, p := range res.Prompts {
						names = append(names, p.Name)
					}
					return names, res.NextCursor, nil
				})
				if len(got) <= pageSize || len(withPrefix(got, "one_")) != len(withPrefix(got, "two_")) {
					t.Errorf("prompts over all pages: %v, want the same prompts from both backends, more than a page", got)
				}
			})

			t.Run("garbage cursor", func(t *testing.T) {
				_, err := cs.ListTools(t.Context(), &mcp.ListToolsParams{Cursor: "garbage!"})
				var rpcErr *jsonrpc.Error
				if !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc.CodeInvalidParams {
					t.Errorf("tools/list with cursor %q: error %v, want JSON-RPC error %d", "garbage!", err, jsonrpc.CodeInvalidParams)
				}
			})
		})
	}
}

// walk follows the cursors of a list from the first page, checking that
// every page but the last is full and none is larger, and that no item
// comes twice. It returns the items in the order served.
func walk(t *testing.T, page func(cursor string) (items []string, next string, err error)) []string {
	t.Helper()
	var all []string
	seen := map[string]bool{}
	cursor := ""
	for pages := 1; ; pages++ {
		items, next, err := page(cursor)
		if err != nil {
			t.Fatalf("page %d (cursor %q): %v", pages, cursor, err)
		}
		if len(items) > pageSize || (next != "" && len(items) != pageSize) {
			t.Errorf("page %d has %d items (next cursor %q), want %d", pages, len(items), next, pageSize)
		}
		for _, it := range items {
			if seen[it] {
				t.Errorf("page %d repeats %s", pages, it)
			}
			seen[it] = true
		}
		all = append(all, items...)
		if next == "" {
			return all
		}
		if pages > 100 {
			t.Fatalf("more than 100 pages: the cursors loop (last %q)", next)
		}
		cursor = next
	}
}
