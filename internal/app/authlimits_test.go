package app_test

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
	"github.com/vmcp-dev/vmcp/internal/testsupport/hydra"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// TestAuthServerLimitsFromConfig: authServerConfig.clientRegistration and
// pendingLogins reach the authorization server, and oauth2Config's
// emailVerified its provider.
func TestAuthServerLimitsFromConfig(t *testing.T) {
	gh := fakeidp.Start(t, fakeidp.Options{Mode: fakeidp.GitHub, Subject: "7", Claims: map[string]any{"email": "octo@example.com"}})
	addr := vmcptest.FreeAddr(t)
	base := "http://" + addr
	t.Setenv("VMCP_SECRET_IDP_SECRET", "secret")
	vmcptest.Start(t, fmt.Sprintf(`
incomingAuth:
  type: oidc
  oidcConfigRef: {name: self, audience: %[1]s/mcp}
authServerConfig:
  issuer: %[1]s
  pendingLogins: {maxPerClient: 1}
  clientRegistration: {maxBytes: 512}
  upstreamProviders:
  - name: github
    type: oauth2
    oauth2Config:
      authorizationUrl: %[2]s
      tokenUrl: %[3]s
      userInfoUrl: %[4]s
      clientId: vmcp
      clientSecretRef: {name: idp, key: secret}
      claimMapping: {subject: id}
      emailVerified: true
server:
  listen: %[5]s
`, base, gh.AuthorizationURL(), gh.TokenURL(), gh.UserInfoURL(), addr), nil)

	body := `{"redirect_uris":["http://127.0.0.1:7777/cb"],"client_name":"` + strings.Repeat("n", 600) + `"}`
	resp, err := http.Post(base+"/oauth/register", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["error_description"]), "512 bytes") {
		t.Errorf("a 650-byte registration with maxBytes 512: %d %v", resp.StatusCode, out)
	}

	token := login(t, base)
	claims := claimsOf(t, token)
	if claims["email"] != "octo@example.com" {
		t.Errorf("email of a provider declared emailVerified = %v", claims["email"])
	}

	// maxPerClient 1: a second unfinished login of one client is refused.
	resp, err = http.Post(base+"/oauth/register", "application/json", strings.NewReader(`{"redirect_uris":["http://127.0.0.1:7777/cb"]}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	client, _ := out["client_id"].(string)
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {"http://127.0.0.1:7777/cb"}, "state": {"st-12345678"},
		"code_challenge": {strings.Repeat("A", 43)}, "code_challenge_method": {"S256"}}
	browser := hydra.NewBrowser()
	var last *url.URL
	for range 2 {
		resp, err := browser.Get(base + "/oauth/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK { // consent remembered: straight on
			last, _ = resp.Location()
			continue
		}
		form := url.Values{"decision": {"approve"}, "provider": {"github"}}
		for _, m := range regexp.MustCompile(`name="(request|csrf)" value="([^"]*)"`).FindAllStringSubmatch(string(page), 2) {
			form.Set(m[1], html.UnescapeString(m[2]))
		}
		if resp, err = browser.PostForm(base+"/oauth/consent", form); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		last, _ = resp.Location()
	}
	if last == nil || last.Query().Get("error") != "temporarily_unavailable" {
		t.Errorf("a second pending login with maxPerClient 1: redirect to %v, want temporarily_unavailable", last)
	}
}
