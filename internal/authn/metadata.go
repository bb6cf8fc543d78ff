package authn

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// wellKnownPRM is the well-known URI suffix of RFC 9728 §3.
const wellKnownPRM = "/.well-known/oauth-protected-resource"

// ProtectedResource is the protected resource metadata of RFC 9728: what a
// client needs to find the authorization server of the MCP endpoint. It is
// the go-sdk's type; [NewProtectedResourceHandler] requires Resource (the
// MCP endpoint URL, exactly as clients use it and as tokens name it in
// "aud": lower-case scheme and host, no fragment) and at least one of
// AuthorizationServers (the issuers of acceptable tokens), and always
// advertises BearerMethodsSupported ["header"].
type ProtectedResource = oauthex.ProtectedResourceMetadata

// NewProtectedResourceHandler returns a handler that serves md as JSON, at
// whatever paths it is mounted on (see [MetadataLocations]): the go-sdk's
// handler (GET, and CORS preflights; other methods get 405), with a
// Cache-Control header. It checks md once, and serves a copy with
// BearerMethodsSupported ["header"].
func NewProtectedResourceHandler(md *ProtectedResource) (http.Handler, error) {
	if md == nil {
		return nil, errors.New("authn: protected resource metadata is required")
	}
	if _, err := parseResource(md.Resource); err != nil {
		return nil, err
	}
	if len(md.AuthorizationServers) == 0 {
		return nil, errors.New("authn: protected resource metadata: at least one authorization server is required")
	}
	for _, s := range md.AuthorizationServers {
		if err := checkHTTPURL(s); err != nil {
			return nil, fmt.Errorf("authn: protected resource metadata: authorization server: %w", err)
		}
	}
	m := *md
	m.BearerMethodsSupported = []string{"header"}
	sdk := auth.ProtectedResourceMetadataHandler(&m)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		sdk.ServeHTTP(w, r)
	}), nil
}

// MetadataLocations returns, for the MCP endpoint URL resource, the paths on
// vmcp's server at which the protected resource metadata is served and the
// absolute URL that challenges name. For "https://gw.example.com/mcp" the
// paths are "/.well-known/oauth-protected-resource/mcp" (the RFC 9728
// path-inserted form, also the URL) and "/.well-known/oauth-protected-resource"
// (the root form, for clients that only try it).
func MetadataLocations(resource string) (paths []string, metadataURL string, err error) {
	u, err := parseResource(resource)
	if err != nil {
		return nil, "", err
	}
	inserted := wellKnownPRM + strings.TrimSuffix(u.EscapedPath(), "/")
	paths = []string{inserted}
	if inserted != wellKnownPRM {
		paths = append(paths, wellKnownPRM)
	}
	return paths, u.Scheme + "://" + u.Host + inserted, nil
}

// parseResource checks that resource is a canonical resource URL (RFC 9728
// §1.2, RFC 8707 §2): absolute http(s), lower-case scheme and host, no
// fragment, no query.
func parseResource(resource string) (*url.URL, error) {
	u, err := url.Parse(resource)
	if err != nil {
		return nil, fmt.Errorf("authn: resource %q: %w", resource, err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "", u.Opaque != "":
		return nil, fmt.Errorf("authn: resource %q is not an absolute http(s) URL", resource)
	case !strings.HasPrefix(resource, u.Scheme+"://"), u.Host != strings.ToLower(u.Host):
		return nil, fmt.Errorf("authn: resource %q: scheme and host must be lower case", resource)
	case u.Fragment != "" || strings.Contains(resource, "#"):
		return nil, fmt.Errorf("authn: resource %q must not have a fragment", resource)
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("authn: resource %q must not have a query", resource)
	case u.User != nil:
		return nil, fmt.Errorf("authn: resource %q must not have user information", resource)
	}
	return u, nil
}
