package authn_test

import (
	"log"
	"net/http"

	"github.com/vmcp-dev/vmcp/internal/authn"
)

// Example wires the resource server side of vmcp for an external identity
// provider that issues JWT access tokens for some clients and opaque ones
// for others.
func Example() {
	const endpoint = "https://gw.example.com/mcp"
	const issuer = "https://idp.example.com"

	jwt, err := authn.NewJWTVerifier(&authn.JWTOptions{Issuer: issuer, Audience: endpoint})
	if err != nil {
		log.Fatal(err)
	}
	introspector, err := authn.NewIntrospector(&authn.IntrospectionOptions{
		Endpoint:     issuer + "/oauth2/introspect",
		ClientID:     "vmcp",
		ClientSecret: "from a secret store",
		Issuer:       issuer,
		Audience:     endpoint,
	})
	if err != nil {
		log.Fatal(err)
	}
	paths, metadataURL, err := authn.MetadataLocations(endpoint)
	if err != nil {
		log.Fatal(err)
	}
	prm, err := authn.NewProtectedResourceHandler(&authn.ProtectedResource{
		Resource:             endpoint,
		AuthorizationServers: []string{issuer},
		ScopesSupported:      []string{"mcp"},
	})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	for _, p := range paths {
		mux.Handle("GET "+p, prm)
	}
	var gateway http.Handler = http.NotFoundHandler() // the MCP endpoint
	requireToken := authn.Middleware(&authn.Chain{JWT: jwt, Opaque: introspector}, &authn.MiddlewareOptions{
		ResourceMetadata: metadataURL,
		Scopes:           []string{"mcp"},
	})
	mux.Handle("/mcp", requireToken(gateway))
	_ = http.ListenAndServe("127.0.0.1:4483", mux)
}
