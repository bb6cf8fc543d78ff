package app_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"

	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// TestForeignTokenCannotNameGrant: vmcp accepts tokens of an external
// issuer and also runs its authorization server (for upstream_inject). A
// user of the external issuer whose token carries the "gid" of another
// user's grant must not get that user's upstream token sent to a backend:
// only vmcp's own tokens name a grant.
func TestForeignTokenCannotNameGrant(t *testing.T) {
	upstream := fakeidp.Start(t, fakeidp.Options{Subject: "victim"})
	addr := vmcptest.FreeAddr(t)
	base := "http://" + addr
	extClaims := map[string]any{"aud": base + "/mcp"}
	external := fakeidp.Start(t, fakeidp.Options{Subject: "attacker", JWTAccessTokens: true, AccessTokenClaims: extClaims})
	backend := newRecorder(t)
	t.Setenv("VMCP_SECRET_IDP_SECRET", "secret")
	a := vmcptest.Start(t, fmt.Sprintf(`
incomingAuth:
  type: oidc
  oidcConfig: {issuer: %[2]s}
authServerConfig:
  issuer: %[1]s
  upstreamProviders:
  - name: idp
    type: oidc
    oidcConfig: {issuerUrl: %[3]s, clientId: vmcp, clientSecretRef: {name: idp, key: secret}}
backends:
- name: up
  url: %[4]s
  outgoingAuth: {type: upstream_inject, upstreamInject: {provider: idp}}
server:
  listen: %[5]s
`, base, external.URL(), upstream.URL(), backend.srv.URL, addr), nil)

	// The victim logs in through vmcp's authorization server: a grant
	// holding the victim's upstream token.
	gid, _ := claimsOf(t, login(t, base))["gid"].(string)
	g, err := a.AuthServer().StoredGrant(t.Context(), gid)
	if err != nil || g.AccessToken == "" {
		t.Fatalf("the victim's grant: %+v, %v", g, err)
	}

	// The attacker's token from the external issuer names that grant.
	extClaims["gid"], extClaims["idp"] = gid, "idp" // read when the token is issued, below
	conf := &oauth2.Config{ClientID: "vmcp", ClientSecret: "secret", RedirectURL: "http://127.0.0.1:1/cb",
		Endpoint: oauth2.Endpoint{AuthURL: external.URL() + "/authorize", TokenURL: external.URL() + "/token"}}
	verifier := oauth2.GenerateVerifier()
	code := external.AuthorizeCode(t, conf.AuthCodeURL("state-1234", oauth2.S256ChallengeOption(verifier)))
	tok, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if claimsOf(t, tok.AccessToken)["gid"] != gid {
		t.Fatalf("the attacker's token does not carry the victim's gid: %v", claimsOf(t, tok.AccessToken))
	}

	s := connect(t, base+"/mcp", tok.AccessToken)
	res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "up_whoami"})
	var text string
	if err == nil && len(res.Content) > 0 {
		text = res.Content[0].(*mcp.TextContent).Text
	}
	if strings.Contains(text, g.AccessToken) || strings.Contains(backend.seen(), g.AccessToken) {
		t.Errorf("the victim's upstream token reached the backend for the attacker: %q", text)
	}
}
