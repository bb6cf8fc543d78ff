package browser

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/testsupport/chrome"
	"github.com/vmcp-dev/vmcp/internal/testsupport/hydra"
)

// wantError checks that the browser brought the client an OAuth error with
// the client's state and vmcp's issuer, and no code.
func wantError(t *testing.T, g *gateway, got url.Values, code, state string) {
	t.Helper()
	want := map[string]string{"error": code, "state": state, "iss": g.base, "code": ""}
	for k, v := range want {
		if got.Get(k) != v {
			t.Errorf("redirect query %s = %q, want %q (query %v)", k, got.Get(k), v, got)
		}
	}
}

// TestDeny: the person denies on vmcp's consent page; the browser goes
// straight back to the client with access_denied, never to the IdP.
func TestDeny(t *testing.T) {
	skipUnlessE2E(t)
	deny(t, func() page { return chrome.Start(t, nil).NewTab(t) })
}

// deny denies on vmcp's consent page in the tab open gives and checks the
// client got access_denied.
func deny(t *testing.T, open func() page) {
	t.Helper()
	g := startGateway(t, gatewayOptions{providers: []string{corp}})
	c := registerClient(t, g, "Deny test client")
	tab := open()
	tab.Navigate(c.authURL("state-deny-1"))
	waitConsent(t, g, tab)
	tab.Click(consentDeny)
	wantError(t, g, c.landed(tab), "access_denied", "state-deny-1")
	tab.Screenshot("client-after-deny")
}

// TestIdPRefuses: the person cancels at the IdP's login page, or denies at
// its consent page; the IdP sends the browser back to vmcp with an error,
// and vmcp sends it on to the client as access_denied.
func TestIdPRefuses(t *testing.T) {
	skipUnlessE2E(t)
	g := startGateway(t, gatewayOptions{providers: []string{corp}})
	b := chrome.Start(t, nil)
	for i, tc := range []struct {
		name  string
		at    string // the login app's page where the person refuses
		click string
	}{
		{"login cancelled", "/login", "#" + hydra.LoginCancel},
		{"consent denied", "/consent", "#" + hydra.ConsentDeny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := fmt.Sprintf("state-refused-%d", i)
			c := registerClient(t, g, "Refused client")
			tab := b.NewTab(t)
			tab.Navigate(c.authURL(state))
			waitConsent(t, g, tab)
			tab.Click(consentApprove(corp))
			tab.WaitURL(g.hydra.LoginAppURL() + "/login")
			if tc.at == "/consent" {
				tab.Click("#" + hydra.LoginSubmit)
				tab.WaitURL(g.hydra.LoginAppURL() + "/consent")
			}
			tab.Click(tc.click)
			wantError(t, g, c.landed(tab), "access_denied", state)
		})
	}
}

// TestExpiredConsentPage: a consent page submitted more than ten minutes
// after it was shown approves nothing: the person gets a page that says
// so and what to do, and the client gets nothing.
func TestExpiredConsentPage(t *testing.T) {
	skipUnlessE2E(t)
	clk := &clock{}
	g := startAuthServer(t, clk.Now)
	c := registerClient(t, g, "Slow person's client")
	tab := chrome.Start(t, nil).NewTab(t)
	tab.Navigate(c.authURL("state-late-1"))
	waitConsent(t, g, tab)
	clk.Advance(11 * time.Minute)
	tab.Click(consentApprove(github))
	tab.WaitURL(g.base + "/oauth/consent")
	if got := tab.Text("h1"); got != "This sign-in page has expired" {
		t.Errorf("page heading %q, want the expiry explained", got)
	}
	tab.Screenshot("error-consent-expired")
	if got := c.visits(); len(got) != 0 {
		t.Errorf("the client was reached: %v", got)
	}
}

// TestConsentCookieLost: a consent page submitted by a browser that no
// longer has the cookie it was shown with (cleared, expired or blocked)
// approves nothing.
func TestConsentCookieLost(t *testing.T) {
	skipUnlessE2E(t)
	g := startAuthServer(t, nil)
	c := registerClient(t, g, "Forgetful client")
	tab := chrome.Start(t, nil).NewTab(t)
	tab.Navigate(c.authURL("state-lost-1"))
	waitConsent(t, g, tab)
	tab.ClearCookies()
	tab.Click(consentApprove(github))
	tab.WaitURL(g.base + "/oauth/consent")
	if got := tab.Text("h1"); got != "This sign-in page cannot be used" {
		t.Errorf("page heading %q", got)
	}
	tab.Screenshot("error-consent-cookie-lost")
}

// TestBackAndSecondSubmit: the person approves with one provider, thinks
// better of it at the IdP's login page and goes back, and approves with the
// other provider: that login completes. Going back once more from the
// client's page and approving again starts a new login, which completes
// too; neither leaves the other's tokens unusable.
func TestBackAndSecondSubmit(t *testing.T) {
	skipUnlessE2E(t)
	g := startGateway(t, gatewayOptions{providers: []string{corp, github}})
	c := registerClient(t, g, "Undecided client")
	tab := chrome.Start(t, nil).NewTab(t)
	tab.Navigate(c.authURL("state-back-1"))
	waitConsent(t, g, tab)
	tab.Click(consentApprove(corp))
	tab.WaitURL(g.hydra.LoginAppURL() + "/login")
	tab.Back()
	waitConsent(t, g, tab)
	tab.Click(consentApprove(github))
	first := c.landed(tab)
	if first.Get("state") != "state-back-1" || first.Get("code") == "" {
		t.Fatalf("first landing: %v", first)
	}
	tok1 := c.exchange(first.Get("code"))
	if tok1.AccessToken == "" {
		t.Fatalf("first code: %+v", tok1)
	}
	if idp := jwtClaim(t, tok1.AccessToken, "idp"); idp != github {
		t.Errorf("the login went through %q, want the provider chosen last (%s)", idp, github)
	}

	tab.Back()
	waitConsent(t, g, tab)
	tab.Click(consentApprove(corp))
	hydraLogin(t, g, tab)
	second := c.landed(tab)
	if second.Get("state") != "state-back-1" || second.Get("code") == "" || second.Get("code") == first.Get("code") {
		t.Fatalf("second landing: %v (first code %q)", second, first.Get("code"))
	}
	tok2 := c.exchange(second.Get("code"))
	if tok2.AccessToken == "" {
		t.Fatalf("second code: %+v", tok2)
	}
	for _, tok := range []tokens{tok1, tok2} {
		if got := c.callTool(tok.AccessToken); !strings.Contains(got, "simple text") {
			t.Errorf("tool call = %q", got)
		}
	}
}

// TestTwoTabs: one person logs in from two tabs of one browser at once,
// for two clients: both consent pages are open together, and tab A's
// login is still pending at the IdP while tab B's starts and completes.
// Each tab ends at its own client with its own state and a working code.
// (Tab B uses the other provider because Hydra itself cannot run two
// logins of one client in one browser at once: its login CSRF cookie is
// one per client.)
func TestTwoTabs(t *testing.T) {
	skipUnlessE2E(t)
	g := startGateway(t, gatewayOptions{providers: []string{corp, github}})
	b := chrome.Start(t, nil)
	ca, cb := registerClient(t, g, "Client A"), registerClient(t, g, "Client B")
	ta, tb := b.NewTab(t), b.NewTab(t)
	ta.Navigate(ca.authURL("state-tab-a"))
	tb.Navigate(cb.authURL("state-tab-b"))
	waitConsent(t, g, ta)
	waitConsent(t, g, tb)
	ta.Click(consentApprove(corp))
	ta.WaitURL(g.hydra.LoginAppURL() + "/login")
	tb.Click(consentApprove(github))
	gotB := cb.landed(tb)
	hydraLogin(t, g, ta)
	gotA := ca.landed(ta)
	for _, x := range []struct {
		c     *mcpClient
		got   url.Values
		state string
	}{{ca, gotA, "state-tab-a"}, {cb, gotB, "state-tab-b"}} {
		if x.got.Get("state") != x.state || x.got.Get("code") == "" {
			t.Errorf("%s landed with %v, want state %s and a code", x.c.id, x.got, x.state)
			continue
		}
		if tok := x.c.exchange(x.got.Get("code")); tok.AccessToken == "" {
			t.Errorf("%s: code exchange: %+v", x.c.id, tok)
		}
	}
}

// TestCookies: vmcp's cookies over plain HTTP on loopback and over HTTPS,
// as the browser keeps them after a completed login: HttpOnly and
// SameSite=Lax always (Lax, not Strict: the IdP's redirect back to vmcp is
// a cross-site navigation that must carry them), and over HTTPS also
// Secure with the __Host- prefix.
func TestCookies(t *testing.T) {
	skipUnlessE2E(t)
	cookiesAfterLogin(t, func(t *testing.T, tls bool) (page, func(string) []cookie) {
		tab := chrome.Start(t, &chrome.Options{IgnoreCertificateErrors: tls}).NewTab(t)
		return tab, func(u string) []cookie {
			var cookies []cookie
			for _, ck := range tab.Cookies(u) {
				cookies = append(cookies, cookie{ck.Name, ck.Path, ck.HTTPOnly, ck.Secure, ck.SameSite.String()})
			}
			return cookies
		}
	})
}

// cookiesAfterLogin completes a login over plain HTTP on loopback and over
// HTTPS, each in a browser open starts, and checks the cookies the browser
// keeps for vmcp with the function open returns beside the tab.
func cookiesAfterLogin(t *testing.T, open func(t *testing.T, tls bool) (page, func(string) []cookie)) {
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
			tab, cookies := open(t, tc.tls)
			tab.Navigate(c.authURL("state-cookies"))
			waitConsent(t, g, tab)
			tab.Click(consentApprove(github))
			got := c.landed(tab)
			if tok := c.exchange(got.Get("code")); tok.AccessToken == "" {
				t.Fatalf("code exchange: %+v (landed with %v)", tok, got)
			}
			checkCookies(t, cookies(g.base+"/oauth/consent"), tc.prefix, tc.tls)
		})
	}
}

// cookie is a cookie as either browser keeps it.
type cookie struct {
	name, path       string
	httpOnly, secure bool
	sameSite         string
}

// checkCookies checks every cookie a browser keeps for vmcp (the set may
// grow): the name prefix, path /, HttpOnly, SameSite=Lax, Secure exactly
// over HTTPS; and that the consent and CSRF cookies are among them.
func checkCookies(t *testing.T, cookies []cookie, prefix string, tls bool) {
	t.Helper()
	var names []string
	for _, ck := range cookies {
		names = append(names, ck.name)
		if !strings.HasPrefix(ck.name, prefix+"vmcp-") {
			t.Errorf("cookie %q: want the prefix %q", ck.name, prefix+"vmcp-")
		}
		if ck.path != "/" || !ck.httpOnly || ck.sameSite != "Lax" || ck.secure != tls {
			t.Errorf("cookie %s: path %q, HttpOnly %v, SameSite %q, Secure %v; want /, true, Lax, %v",
				ck.name, ck.path, ck.httpOnly, ck.sameSite, ck.secure, tls)
		}
	}
	for _, want := range []string{prefix + "vmcp-consent", prefix + "vmcp-csrf"} {
		if !slices.Contains(names, want) {
			t.Errorf("cookies %v: no %s", names, want)
		}
	}
}
