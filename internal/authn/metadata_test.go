package authn_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vmcp-dev/vmcp/internal/authn"
)

func TestProtectedResourceHandler(t *testing.T) {
	t.Parallel()
	md := &authn.ProtectedResource{
		Resource:               "https://gw.example.com/mcp",
		AuthorizationServers:   []string{"https://gw.example.com"},
		ScopesSupported:        []string{"tools:read", "tools:call"},
		BearerMethodsSupported: []string{"body"}, // replaced
		ResourceName:           "vmcp & co",
	}
	h, err := authn.NewProtectedResourceHandler(md)
	if err != nil {
		t.Fatal(err)
	}
	paths, mdURL, err := authn.MetadataLocations(md.Resource)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, p := range paths {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	want := map[string]any{
		"resource":                 "https://gw.example.com/mcp",
		"authorization_servers":    []any{"https://gw.example.com"},
		"scopes_supported":         []any{"tools:read", "tools:call"},
		"bearer_methods_supported": []any{"header"},
		"resource_name":            "vmcp & co",
	}
	for _, p := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		resp, err := srv.Client().Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %s", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GET %s (-want +got):\n%s", p, diff)
		}
	}
	if want := "https://gw.example.com/.well-known/oauth-protected-resource/mcp"; mdURL != want {
		t.Errorf("metadata URL %q, want %q", mdURL, want)
	}
	resp, err := srv.Client().Post(srv.URL+paths[0], "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
	if md.BearerMethodsSupported[0] != "body" {
		t.Errorf("the caller's metadata was modified")
	}
	// The go-sdk's handler: GET only, CORS preflights answered; vmcp adds
	// caching.
	for _, tc := range []struct {
		method string
		status int
	}{
		{http.MethodGet, http.StatusOK},
		{http.MethodOptions, http.StatusNoContent},
		{http.MethodHead, http.StatusMethodNotAllowed},
		{http.MethodPut, http.StatusMethodNotAllowed},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+paths[0], nil)
		req.Header.Set("Origin", "https://app.example")
		req.Header.Set("Access-Control-Request-Method", "GET")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.method, resp.StatusCode, tc.status)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want * (the metadata is public)", tc.method, got)
		}
		if got := resp.Header.Get("Cache-Control"); got != "public, max-age=300" {
			t.Errorf("%s: Cache-Control %q", tc.method, got)
		}
	}
}

func TestMetadataLocations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		resource string
		paths    []string
		url      string
		wantErr  bool
	}{
		{
			resource: "https://gw.example.com/mcp",
			paths:    []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"},
			url:      "https://gw.example.com/.well-known/oauth-protected-resource/mcp",
		},
		{
			resource: "http://127.0.0.1:4483/tenants/a/mcp",
			paths:    []string{"/.well-known/oauth-protected-resource/tenants/a/mcp", "/.well-known/oauth-protected-resource"},
			url:      "http://127.0.0.1:4483/.well-known/oauth-protected-resource/tenants/a/mcp",
		},
		{
			resource: "https://gw.example.com",
			paths:    []string{"/.well-known/oauth-protected-resource"},
			url:      "https://gw.example.com/.well-known/oauth-protected-resource",
		},
		{
			resource: "https://gw.example.com/",
			paths:    []string{"/.well-known/oauth-protected-resource"},
			url:      "https://gw.example.com/.well-known/oauth-protected-resource",
		},
		{resource: "", wantErr: true},
		{resource: "/mcp", wantErr: true},
		{resource: "HTTPS://gw.example.com/mcp", wantErr: true},
		{resource: "https://GW.example.com/mcp", wantErr: true},
		{resource: "https://gw.example.com/mcp#frag", wantErr: true},
		{resource: "https://gw.example.com/mcp?x=1", wantErr: true},
		{resource: "https://user@gw.example.com/mcp", wantErr: true},
		{resource: "ftp://gw.example.com/mcp", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.resource, func(t *testing.T) {
			t.Parallel()
			paths, u, err := authn.MetadataLocations(tt.resource)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("MetadataLocations succeeded: %v %q", paths, u)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.paths, paths); diff != "" {
				t.Errorf("paths (-want +got):\n%s", diff)
			}
			if u != tt.url {
				t.Errorf("url %q, want %q", u, tt.url)
			}
		})
	}
}

func TestNewProtectedResourceHandlerErrors(t *testing.T) {
	t.Parallel()
	for name, md := range map[string]*authn.ProtectedResource{
		"nil":                      nil,
		"no authorization servers": {Resource: "https://gw.example.com/mcp"},
		"bad resource":             {Resource: "gw/mcp", AuthorizationServers: []string{"https://as.example"}},
		"bad server":               {Resource: "https://gw.example.com/mcp", AuthorizationServers: []string{"as"}},
	} {
		if _, err := authn.NewProtectedResourceHandler(md); err == nil {
			t.Errorf("%s: NewProtectedResourceHandler succeeded", name)
		}
	}
}
