package browser

import (
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
	severalProviders(t, g, func(t *testing.T) page { return b.NewTab(t) })
	t.Run(corp+" remembered", func(t *testing.T) { loginRemembered(t, g, b.NewTab(t)) })
}

// TestFirefoxDeny: Deny on vmcp's consent page sends Firefox straight back
// to the client with access_denied.
func TestFirefoxDeny(t *testing.T) {
	skipUnlessE2E(t)
	deny(t, func() page { return firefox.Start(t, nil).NewTab(t) })
}

// TestFirefoxLoginFinishedInAnotherBrowser is the consent bypass of
// TestLoginFinishedInAnotherBrowser with Firefox as the victim's browser:
// the attacker approves its own client in another Firefox profile, or in
// Chromium, and the victim finishes the upstream login in Firefox. vmcp
// must refuse with a page saying what happened; the attacker's redirect
// URI is never reached. (A gateway each: Hydra remembers a person's
// consent, which would skip its consent page the second time.)
func TestFirefoxLoginFinishedInAnotherBrowser(t *testing.T) {
	skipUnlessE2E(t)
	t.Run("started in another Firefox profile", func(t *testing.T) {
		g := startGateway(t, gatewayOptions{providers: []string{corp}})
		b := firefox.Start(t, nil)
		consentBypass(t, g, b.NewProfile(t), b.NewProfile(t))
	})
	t.Run("started in Chromium", func(t *testing.T) {
		g := startGateway(t, gatewayOptions{providers: []string{corp}})
		consentBypass(t, g, chrome.Start(t, nil).NewTab(t), firefox.Start(t, nil).NewTab(t))
	})
}

// TestFirefoxCookies: vmcp's cookies in Firefox after a completed login,
// over plain HTTP on loopback and over HTTPS: as in Chromium (TestCookies),
// HttpOnly, SameSite=Lax, path /, and over HTTPS Secure with the __Host-
// prefix, which Firefox accepts only from a secure origin.
func TestFirefoxCookies(t *testing.T) {
	skipUnlessE2E(t)
	cookiesAfterLogin(t, func(t *testing.T, tls bool) (page, func(string) []cookie) {
		tab := firefox.Start(t, &firefox.Options{IgnoreCertificateErrors: tls}).NewTab(t)
		return tab, func(u string) []cookie {
			var cookies []cookie
			for _, ck := range tab.Cookies(u) {
				cookies = append(cookies, cookie{ck.Name, ck.Path, ck.HTTPOnly, ck.Secure, ck.SameSite})
			}
			return cookies
		}
	})
}
