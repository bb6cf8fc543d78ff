package frontend

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vmcp-dev/vmcp/internal/backend"
)

func TestOriginAllowed(t *testing.T) {
	t.Parallel()
	g := New(backend.NewSet(nil, nil), &Options{AllowedOrigins: []string{"https://App.Example/"}})
	for origin, want := range map[string]bool{
		"":                           true, // not a browser
		"https://app.example":        true,
		"http://localhost:5173":      true,
		"http://127.0.0.1":           true,
		"http://[::1]:8080":          true,
		"https://evil.example":       false,
		"null":                       false,
		"http://localhost.evil.com":  false,
		"file://":                    false,
		"https://app.example.evil":   false,
		"http://app.example":         false, // scheme matters
		"https://app.example:8443":   false, // port matters
		"javascript:alert(1)":        false,
		"http://127.0.0.1.nip.io:80": false,
	} {
		if got := g.originAllowed(origin); got != want {
			t.Errorf("originAllowed(%q) = %v, want %v", origin, got, want)
		}
	}
}

func TestIsModern(t *testing.T) {
	t.Parallel()
	meta := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`
	tests := []struct {
		name   string
		header string
		body   string
		want   bool
	}{
		{"initialize", "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`, false},
		{"legacy header", "2025-11-25", meta, false},
		{"modern header", "2026-07-28", `{}`, true},
		{"modern _meta without header", "", meta, true},
		{"key only inside arguments", "", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"io.modelcontextprotocol/protocolVersion":"x"}}}`, false},
		// Unknown versions are refused at the edge; as strings, both sort
		// after 2026-07-28.
		{"unknown future version", "2099-01-01", `{}`, false},
		{"garbage version", "garbage", `{}`, false},
	}
	for _, tc := range tests {
		h := http.Header{}
		if tc.header != "" {
			h.Set("Mcp-Protocol-Version", tc.header)
		}
		if got := isModern(h, []byte(tc.body)); got != tc.want {
			t.Errorf("%s: isModern = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPaginateIsStable(t *testing.T) {
	t.Parallel()
	names := []string{"a", "b", "c", "d", "e"}
	key := func(s string) string { return s }
	page, next, err := paginate(names, key, "", 2)
	if err != nil || !cmp.Equal(page, []string{"a", "b"}) || next == "" {
		t.Fatalf("page 1 = %v %q %v", page, next, err)
	}
	// An item added before the cursor does not shift or repeat the next page.
	page, next, err = paginate([]string{"a", "aa", "b", "c", "d", "e"}, key, next, 2)
	if err != nil || !cmp.Equal(page, []string{"c", "d"}) {
		t.Errorf("page 2 after an insertion = %v %v", page, err)
	}
	page, next, _ = paginate(names, key, next, 2)
	if !cmp.Equal(page, []string{"e"}) || next != "" {
		t.Errorf("last page = %v, next %q", page, next)
	}
	if _, _, err := paginate(names, key, "not base64!", 2); err == nil {
		t.Error("a garbage cursor was accepted")
	}
}

func TestReservedMeta(t *testing.T) {
	t.Parallel()
	for k, want := range map[string]bool{
		"io.modelcontextprotocol/serverInfo": true, "dev.mcp/x": true, "com.example/x": false,
		"progressToken": false, "modelcontextprotocol.io/x": false,
	} {
		if got := reservedMetaKey(k); got != want {
			t.Errorf("reservedMetaKey(%q) = %v, want %v", k, got, want)
		}
	}
	m := ownMeta(map[string]any{"io.modelcontextprotocol/serverInfo": 1, "com.example/x": 2})
	if _, ok := m["io.modelcontextprotocol/serverInfo"]; ok || m["com.example/x"] != 2 {
		t.Errorf("ownMeta = %v", m)
	}
}
