package browser

import (
	"strings"
	"testing"

	"github.com/vmcp-dev/vmcp/internal/testsupport/chrome"
	"github.com/vmcp-dev/vmcp/internal/testsupport/firefox"
)

// The same logins in Firefox ESR, driven over WebDriver BiDi. Firefox
// differs from Chromium exactly where the consent page's security lives:
// how Content-Security-Policy applies to a form submission and the
// redirects after it, SameSite defaults, cookies on a plain-HTTP loopback
// address, navigation and history. Every Firefox tab fails its test if it
// saw a CSP violation (package firefox checks when the test ends), so each
// of these tests also proves that vmcp's pages, Hydra's login app and the
// whole redirect chain break none of the consent page's directives in
// Firefox.

// TestFirefoxLogin: with two providers configured, the MCP client's
// authorization URL opened in Firefox; the person approves with corp
// (Ory Hydra: its login and consent pages), and the client gets tokens and
// calls a tool. Then a second client logs in with the GitHub-shaped
// provider, whose approval runs through to the client's redirect URI
// without a page, and a third with corp again, which Hydra now answers
// with redirects only (it remembers the person).
func TestFirefoxLogin(t *testing.T) {
	skipUnlessE2E(t)
	g := startGateway(t, gatewayOptions{providers: []string{corp, github}})
	b := firefox.Start(t, nil)
	t.Logf("browser %s", b.Version)
	t.Run(corp, func(t *testing.T) {
		tab := b.NewTab(t)
		sdkLogin(t, g, tab, func() {
			waitConsent(t, g, tab)
			tab.Screenshot("consent-two-providers")
			tab.Click(consentApprove(corp))
			hydraLogin(t, g, tab)
		})
	})
	t.Run(github, func(t *testing.T) {
		tab := b.NewTab(t)
		sdkLogin(t, g, tab, func() {
			waitConsent(t, g, tab)
			tab.Click(consentApprove(github))
		})
	})
	t.Run(corp+" remembered", func(t *testing.T) {
		tab := b.NewTab(t)
		sdkLogin(t, g, tab, func() {
			waitConsent(t, g, tab)
			tab.Click(consentApprove(corp))
		})
	})
}

// TestFirefoxDeny: Deny on vmcp's consent page sends Firefox straight back
// to the client with access_denied.
func TestFirefoxDeny(t *testing.T) {
	skipUnlessE2E(t)
	g := startGateway(t, gatewayOptions{providers: []string{corp}})
	c := registerClient(t, g, "Deny test client")
	tab := firefox.Start(t, nil).NewTab(t)
	tab.Navigate(c.authURL("state-deny-ff"))
	waitConsent(t, g, tab)
	tab.Click(consentDeny)
	wantError(t, g, c.landed(tab), "access_denied", "state-deny-ff")
}

// TestFirefoxLoginFinishedInAnotherBrowser is the consent bypass of
// TestLoginFinishedInAnotherBrowser with Firefox as the victim's browser:
// the attacker approves its own client in another Firefox profile, or in
// Chromium, and the victim finishes the upstream login in Firefox. vmcp
// must refuse with a page saying what happened; the attacker's redirect
// URI is never reached.
func TestFirefoxLoginFinishedInAnotherBrowser(t *testing.T) {
	skipUnlessE2E(t)
	g := startGateway(t, gatewayOptions{providers: []string{corp}})
	fx := firefox.Start(t, nil)
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) (page, func(prefix string) string)
	}{
		{"started in another Firefox profile", func(t *testing.T) (page, func(string) string) {
			tab := fx.NewProfile(t)
			return tab, tab.Requested
		}},
		{"started in Chromium", func(t *testing.T) (page, func(string) string) {
			tab := chrome.Start(t, nil).NewTab(t)
			return tab, tab.Requested
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attacker := registerClient(t, g, "Innocent-looking app")
			theirs, requested := tc.start(t)
			theirs.Navigate(attacker.authURL("state-attack-ff"))
			waitConsent(t, g, theirs)
			theirs.Click(consentApprove(corp))
			theirs.WaitURL(g.hydra.LoginAppURL() + "/login")
			upstream := requested(g.hydra.PublicURL() + "/oauth2/auth")

			victim := fx.NewProfile(t)
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
		})
	}
}

// TestFirefoxCookies: vmcp's cookies in Firefox after a completed login,
// over plain HTTP on loopback and over HTTPS: as in Chromium (TestCookies),
// HttpOnly, SameSite=Lax, path /, and over HTTPS Secure with the __Host-
// prefix, which Firefox accepts only from a secure origin.
func TestFirefoxCookies(t *testing.T) {
	skipUnlessE2E(t)
	for _, tc := range []struct {
		name   string
		tls    bool
		prefix string
	}{
		{"http loopback", false, ""},
		{"https", true, "__Host-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, gatewayOptions{providers: []string{github}, tls: tc.tls})
			c := registerClient(t, g, "Cookie client")
			tab := firefox.Start(t, &firefox.Options{IgnoreCertificateErrors: tc.tls}).NewTab(t)
			tab.Navigate(c.authURL("state-cookies-ff"))
			waitConsent(t, g, tab)
			tab.Click(consentApprove(github))
			got := c.landed(tab)
			if tok := c.exchange(got.Get("code")); tok.AccessToken == "" {
				t.Fatalf("code exchange: %+v (landed with %v)", tok, got)
			}
			var cookies []cookie
			for _, ck := range tab.Cookies(g.base + "/oauth/consent") {
				cookies = append(cookies, cookie{ck.Name, ck.Path, ck.HTTPOnly, ck.Secure, ck.SameSite})
			}
			checkCookies(t, cookies, tc.prefix, tc.tls)
		})
	}
}
