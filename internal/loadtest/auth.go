package loadtest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/authz"
)

// The authenticated scenarios ("JWT + Cedar"): vmcp validates an RS256 JWT
// on every request (incomingAuth type oidc, keys from a JWKS URL) and
// decides every call and list item with 20 Cedar policies. The harness is
// its own identity provider: [Issuer] generates a key, serves its JWKS on
// loopback and mints the caller's token.

// AuthAudience is the audience of the harness's tokens and of the gateway
// configured by [AuthGatewayConfig].
const AuthAudience = "http://vmcp-load.invalid/mcp"

// AuthGroups are the caller's groups. The policies of [AuthPolicies] let
// group team-i call the tools of backend b0i, so the caller may use the
// tools of backends b00 and b03 and no others.
var AuthGroups = []string{"team-0", "team-3"}

// AuthAllowedBackends are the indexes of the backends (b00, b03) whose
// tools the caller sees.
var AuthAllowedBackends = []int{0, 3}

// TargetDecision is issue 6's target for one Cedar decision.
const TargetDecision = 10 * time.Microsecond

// DecisionCost measures one Cedar decision as the authenticated scenarios
// make it for every tools/call: the caller of [Issuer.Token], the policies
// of [AuthPolicies], tool b00_echo with arguments. It returns the median
// over rounds of the mean time per decision (n decisions a round; the go
// test benchmarks of internal/authz measure the same with -benchmem).
func DecisionCost(n, rounds int) (time.Duration, error) {
	a, err := authz.New(&authz.Options{Server: "vmcp-load", Policies: authz.Policies{Inline: AuthPolicies()}})
	if err != nil {
		return 0, err
	}
	p := a.Principal("user-42", authz.Resolve(map[string]any{"sub": "user-42", "email": "alice@corp.example",
		"groups": []any{AuthGroups[0], AuthGroups[1]}, "scope": "mcp tools:read tools:call"}, nil))
	tool := a.Tool("b00_echo", "b00", nil)
	args := map[string]any{"text": "hello"}
	if !a.Decide(p, tool, args, "tools/call").Allowed {
		return 0, fmt.Errorf("the harness's caller may not call b00_echo")
	}
	var per []time.Duration
	for range rounds {
		start := time.Now()
		for range n {
			a.Decide(p, tool, args, "tools/call")
		}
		per = append(per, time.Since(start)/time.Duration(n))
	}
	return median(per), nil
}

// Issuer is a minimal OIDC token issuer: an RSA key whose public half is
// served as a JWKS document.
type Issuer struct {
	// URL is the issuer ("iss"); JWKSURL serves its keys.
	URL, JWKSURL string
	key          *rsa.PrivateKey
	signer       jose.Signer
	srv          *http.Server
}

// StartIssuer generates a 2048-bit RSA key and serves its JWKS on loopback
// until Close.
func StartIssuer() (*Issuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	const kid = "vmcp-load-1"
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), kid))
	if err != nil {
		return nil, err
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"}}})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	base := "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	})
	i := &Issuer{URL: base, JWKSURL: base + "/jwks", key: key, signer: signer,
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = i.srv.Serve(ln) }()
	return i, nil
}

// Close stops serving the JWKS.
func (i *Issuer) Close() { _ = i.srv.Close() }

// Token mints an RS256 JWT for audience, valid for a day, with the claims
// of the benchmark's caller (subject, e-mail, groups, scopes) over extra.
func (i *Issuer) Token(audience string, extra map[string]any) (string, error) {
	now := time.Now()
	claims := map[string]any{
		"iss": i.URL, "aud": audience, "sub": "user-42", "email": "alice@corp.example",
		"groups": AuthGroups, "scope": "mcp tools:read tools:call", "name": "Alice",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(24 * time.Hour).Unix(),
	}
	for k, v := range extra {
		claims[k] = v
	}
	return jwt.Signed(i.signer).Claims(claims).Serialize()
}

// AuthPolicies are 20 realistic Cedar policies, in the style of
// internal/authz's benchmarks: per-team permits on one backend each, per-
// department permits on every tool, forbids on blocked subjects and on a
// dangerous argument, and the list permit. The caller of [Issuer.Token]
// matches two team permits (b00 and b03) and no department.
func AuthPolicies() []string {
	var ps []string
	for i := range 8 {
		ps = append(ps, fmt.Sprintf(`@id("team-%d") permit(principal in Vmcp::Group::"team-%d", action == Vmcp::Action::"call_tool", resource) when { resource.backend == "b%02d" };`, i, i, i))
	}
	for i := range 6 {
		ps = append(ps, fmt.Sprintf(`@id("dept-%d") permit(principal, action in Vmcp::Action::"tools", resource) when { principal has email && principal.email like "*@dept%d.example" };`, i, i))
	}
	for i := range 4 {
		ps = append(ps, fmt.Sprintf(`@id("blocked-%d") forbid(principal, action, resource) when { principal.sub == "blocked-%d" };`, i, i))
	}
	ps = append(ps, `@id("no-force") forbid(principal, action == Vmcp::Action::"call_tool", resource) when { context.arguments has force && context.arguments.force == true };`)
	ps = append(ps, `@id("list") permit(principal, action == Vmcp::Action::"list_tools", resource);`)
	return ps
}

// AuthGatewayConfig returns a gateway configuration template (see
// [GatewayConfig]) for backends b00, b01, … at ${BACKEND_URL_<i>}: incoming
// JWTs of iss for [AuthAudience], keys from its JWKS URL, and the inline
// policies of [AuthPolicies].
func AuthGatewayConfig(backends int, iss *Issuer) string {
	var b strings.Builder
	b.WriteString("name: vmcp-load\nserver:\n  listen: 127.0.0.1:0\n  logLevel: warn\n")
	fmt.Fprintf(&b, "incomingAuth:\n  type: oidc\n  oidcConfig:\n    issuer: %s\n    jwksUrl: %s\n    audience: %s\n",
		quote(iss.URL), quote(iss.JWKSURL), quote(AuthAudience))
	b.WriteString("  authzConfig:\n    type: inline\n    inline:\n      policies:\n")
	for _, p := range AuthPolicies() {
		fmt.Fprintf(&b, "        - %s\n", quote(p))
	}
	b.WriteString("backends:\n")
	for i := range backends {
		fmt.Fprintf(&b, "  - name: b%02d\n    url: ${BACKEND_URL_%d}\n", i, i)
	}
	return b.String()
}

// authTargets starts the issuer of an authenticated comparison and sets
// the gateway's configuration, tool and bearer token in cfg.
func authTargets(cfg *CompareConfig) (*Issuer, error) {
	iss, err := StartIssuer()
	if err != nil {
		return nil, err
	}
	tok, err := iss.Token(AuthAudience, nil)
	if err != nil {
		iss.Close()
		return nil, err
	}
	n := 1
	if cfg.Mode == ModeList {
		n = cfg.Backends
	}
	cfg.GatewayTemplate = AuthGatewayConfig(n, iss)
	cfg.GatewayTool = "b00_echo"
	if cfg.GatewayHeaders == nil {
		cfg.GatewayHeaders = http.Header{}
	}
	cfg.GatewayHeaders.Set("Authorization", "Bearer "+tok)
	return iss, nil
}

// checkAuthorized proves that the authenticated gateway decides: without
// a token it answers 401; with it, a list shows exactly the tools of
// [AuthAllowedBackends] (list mode) and the echo tool answers (call mode).
func checkAuthorized(ctx context.Context, cfg *CompareConfig, url string) error {
	resp, err := http.Post(url, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("a request without a token got %s, want 401", resp.Status)
	}
	rc := Config{URL: url, Headers: cfg.GatewayHeaders, NoStandaloneStream: true}
	sessions, err := Connect(ctx, &rc, 1)
	if err != nil {
		return err
	}
	defer CloseAll(sessions)
	s := sessions[0]
	var names []string
	for t, err := range s.Tools(ctx, nil) {
		if err != nil {
			return err
		}
		names = append(names, t.Name)
	}
	var want []string
	if cfg.Mode == ModeList {
		for _, b := range AuthAllowedBackends {
			for i := range cfg.Tools {
				if b < cfg.Backends {
					want = append(want, fmt.Sprintf("b%02d_tool_%03d", b, i))
				}
			}
		}
	} else {
		want = []string{cfg.GatewayTool}
	}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		return fmt.Errorf("the caller sees %d tools %.200q, want the %d tools of backends %v", len(names), names, len(want), AuthAllowedBackends)
	}
	if cfg.Mode == ModeList {
		// A tool of a backend the caller may not use is unknown to it.
		_, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "b01_tool_000", Arguments: map[string]any{}})
		if err == nil || !strings.Contains(err.Error(), "unknown tool") {
			return fmt.Errorf("calling a denied tool: %v, want an unknown tool error", err)
		}
		return nil
	}
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: cfg.GatewayTool, Arguments: map[string]any{"force": true}})
	if err == nil && !res.IsError {
		return fmt.Errorf("a call with force=true was allowed; the no-force policy should deny it")
	}
	return nil
}
