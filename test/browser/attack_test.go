package browser

import (
	"strings"
	"testing"

	"github.com/vmcp-dev/vmcp/internal/testsupport/chrome"
)

// TestLoginFinishedInAnotherBrowser is the consent bypass: an attacker
// approves its own client on vmcp's consent page in its browser, keeps the
// upstream login URL vmcp sent it to, and gets a victim to open it. The
// victim logs in at the IdP (or is logged in already), and the IdP sends
// the victim's browser back to vmcp with a code for the victim. vmcp must
// not finish the attacker's authorization with the victim's identity: the
// victim gets a page saying the login cannot be completed, and the
// attacker's redirect URI is never reached.
func TestLoginFinishedInAnotherBrowser(t *testing.T) {
	skipUnlessE2E(t)
	g := startGateway(t, gatewayOptions{providers: []string{corp}})
	b := chrome.Start(t, nil)
	consentBypass(t, g, b.NewProfile(t), b.NewProfile(t))
}

// consentBypass runs the attack: the attacker approves its client in
// theirs, the victim finishes the upstream login in victim, another
// browser. It fails the test unless vmcp refuses with a page that says
// what happened.
func consentBypass(t *testing.T, g *gateway, theirs, victim page) {
	t.Helper()
	attacker := registerClient(t, g, "Innocent-looking app")
	theirs.Navigate(attacker.authURL("state-attack-1"))
	waitConsent(t, g, theirs)
	theirs.Click(consentApprove(corp))
	theirs.WaitURL(g.hydra.LoginAppURL() + "/login")
	upstream := theirs.Requested(g.hydra.PublicURL() + "/oauth2/auth")

	victim.Navigate(upstream)
	hydraLogin(t, g, victim)
	end := victim.WaitURLFunc("vmcp's callback page or the attacker's redirect URI", func(u string) bool {
		return strings.HasPrefix(u, g.base+"/oauth/callback") || strings.HasPrefix(u, attacker.redirect)
	})
	if got := attacker.visits(); len(got) != 0 || strings.HasPrefix(end, attacker.redirect) {
		t.Fatalf("the victim's login completed the attacker's authorization: the attacker's redirect URI got %v", got)
	}
	if h := victim.Text("h1"); h != "This login was started in another browser" {
		t.Errorf("the victim's page heading %q does not say what happened", h)
	}
	victim.Screenshot("error-login-other-browser")
}
