// Package authn authenticates incoming MCP requests: vmcp acting as an
// OAuth 2.1 resource server.
//
// A client presents a bearer token in the Authorization header. [Middleware]
// extracts it, hands it to an [Authenticator] and stores the resulting
// [identity.Identity] in the request context with [identity.With]; nothing
// downstream parses tokens again. Failures become the responses of RFC 6750
// and the MCP authorization specification: 400 for a malformed header, 401
// with a WWW-Authenticate challenge naming the protected resource metadata
// for a missing or invalid token, 403 for missing scopes and 503 when the
// identity provider cannot be reached ([WriteError] is the one place that
// maps errors to responses).
//
// Three authenticators are provided:
//
//   - [JWTVerifier] checks signed JWT access tokens locally: issuer,
//     audience and validity period (go-jose's jwt.Claims.ValidateWithLeeway),
//     then the signature, against a remote JWKS (go-oidc's RemoteKeySet,
//     found by OIDC or RFC 8414 discovery, its fetches throttled) or the
//     keys of vmcp's own authorization server.
//   - [Introspector] asks an RFC 7662 introspection endpoint about opaque
//     tokens, with a small cache.
//   - [Chain] sends JWT-shaped tokens to the first and opaque ones to the
//     second.
//
// [NewProtectedResourceHandler] serves the RFC 9728 protected resource
// metadata that clients discover through the challenges (the go-sdk's type
// and handler, checked and cached), and [MetadataLocations] derives the
// paths it is served at.
//
// # Security properties
//
// Tokens are accepted from the Authorization header only, never from the
// query string or a form body. The "none" algorithm and HMAC algorithms are
// never accepted. A failure to reach the identity provider is reported as
// [ErrUnavailable] and is never turned into a valid identity. Tokens are
// never logged; log records name a token by a short prefix of its SHA-256.
//
// This package knows nothing of MCP sessions, routing or authorization
// policies; it imports only [identity] from vmcp.
package authn
