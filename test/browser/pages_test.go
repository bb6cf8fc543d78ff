package browser

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vmcp-dev/vmcp/internal/testsupport/chrome"
)

// pageBasics checks what every page of vmcp's must have: English declared,
// a phone viewport, no script at all, a CSP that allows none and forbids
// framing, and nothing wider than a phone's screen.
func pageBasics(t *testing.T, tab *chrome.Tab, csp string) {
	t.Helper()
	if got := chrome.Eval[string](tab, `document.documentElement.lang`); got != "en" {
		t.Errorf("lang = %q, want en", got)
	}
	if got := chrome.Eval[string](tab, `document.querySelector('meta[name=viewport]')?.content ?? ""`); !strings.Contains(got, "width=device-width") {
		t.Errorf("viewport meta = %q", got)
	}
	if n := chrome.Eval[int](tab, `document.scripts.length`); n != 0 {
		t.Errorf("%d script elements; the pages need no JavaScript", n)
	}
	for _, d := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "style-src 'sha256-"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %s", csp, d)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q allows inline code", csp)
	}
	phone := chrome.Viewports[1]
	tab.Resize(phone)
	if w := chrome.Eval[int](tab, `document.documentElement.scrollWidth`); w > int(phone.Width) {
		t.Errorf("on a %dpx wide phone the page is %dpx wide: it scrolls sideways", phone.Width, w)
	}
	tab.Resize(chrome.Viewports[0])
}

// contrastJS returns, for each element a selector picks, its text colour
// and the colour of the nearest background behind it.
const contrastJS = `(() => {
  const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
  const bg = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  return %s.flatMap((sel) => [...document.querySelectorAll(sel)].map((el) =>
    ({sel, text: el.textContent.trim().slice(0, 40), fg: rgb(getComputedStyle(el).color).slice(0, 3), bg: bg(el)})));
})()`

type colours struct {
	Sel, Text string
	FG, BG    []float64
}

// contrast is the WCAG 2 contrast ratio of two sRGB colours.
func contrast(a, b []float64) float64 {
	lum := func(c []float64) float64 {
		var l [3]float64
		for i, v := range c {
			v /= 255
			if v <= 0.04045 {
				l[i] = v / 12.92
			} else {
				l[i] = math.Pow((v+0.055)/1.055, 2.4)
			}
		}
		return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2]
	}
	la, lb := lum(a), lum(b)
	return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)
}

// checkContrast requires WCAG AA (4.5:1) for the text of every element sel
// picks.
func checkContrast(t *testing.T, tab *chrome.Tab, sels ...string) {
	t.Helper()
	list := `["` + strings.Join(sels, `","`) + `"]`
	for _, c := range chrome.Eval[[]colours](tab, fmt.Sprintf(contrastJS, list)) {
		if r := contrast(c.FG, c.BG); r < 4.5 {
			t.Errorf("%s %q: contrast %.2f:1 (text %v on %v), want at least 4.5:1", c.Sel, c.Text, r, c.FG, c.BG)
		}
	}
}

// TestConsentPageForPeople: the consent page says who is asking, what for,
// where the person goes, and with which provider; its controls are
// reached by keyboard in reading order, primary actions first and Deny
// last, every text meets WCAG AA contrast, and it fits a phone.
func TestConsentPageForPeople(t *testing.T) {
	skipUnlessE2E(t)
	g := startGateway(t, gatewayOptions{providers: []string{corp, github}})
	c := registerClient(t, g, "Claude Desktop")
	tab := chrome.Start(t, nil).NewTab(t)
	resp := tab.Open(c.authURL("state-page-1"))
	waitConsent(t, g, tab)
	pageBasics(t, tab, headerValue(resp.Headers, "Content-Security-Policy"))

	text := tab.Text("main")
	for _, want := range []string{
		"acme-tools",                  // the gateway
		"Allow Claude Desktop to use", // the application
		"Self-registered",             // and how far its name can be trusted
		"not been verified",
		"Use the tools, resources and prompts", // what it may do
		"7 days",
		"corp", "github", // the providers
		c.redirect, "on your own computer", // where the person is sent
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the page does not say %q:\n%s", want, text)
		}
	}

	var order []string
	for range 4 {
		tab.Press("\t")
		order = append(order, chrome.Eval[string](tab, `document.activeElement === document.body ? "(left the page)" : document.activeElement.textContent.trim()`))
	}
	if diff := cmp.Diff([]string{"Log in with corp and allow", "Log in with github and allow", "Deny", "(left the page)"}, order); diff != "" {
		t.Errorf("focus order with the Tab key (-want +got):\n%s", diff)
	}
	if n := chrome.Eval[int](tab, `document.querySelectorAll('button.primary').length`); n != 2 {
		t.Errorf("%d primary buttons, want one per provider", n)
	}
	checkContrast(t, tab, "h1", ".gateway", "dt", "dd", ".note", ".badge", ".warn", "code", "button", ".fine")
	tab.Screenshot("consent-self-registered")
}

// TestConsentPageVerifiedClient: a client identified by its metadata
// document's URL is shown as verified, with the URL it is identified by.
func TestConsentPageVerifiedClient(t *testing.T) {
	skipUnlessE2E(t)
	g := startGateway(t, gatewayOptions{providers: []string{github}})
	c := metadataClient(t, g, "Claude Desktop")
	tab := chrome.Start(t, nil).NewTab(t)
	resp := tab.Open(c.authURL("state-page-2"))
	waitConsent(t, g, tab)
	pageBasics(t, tab, headerValue(resp.Headers, "Content-Security-Policy"))
	text := tab.Text("main")
	for _, want := range []string{"Verified address", c.id, "Allow and log in with github"} {
		if !strings.Contains(text, want) {
			t.Errorf("the page does not say %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Self-registered") {
		t.Errorf("a metadata document client shown as self-registered:\n%s", text)
	}
	checkContrast(t, tab, ".badge", ".note")
	tab.Screenshot("consent-verified-client")
	tab.Click(consentApprove(github))
	if got := c.landed(tab); got.Get("code") == "" {
		t.Errorf("landed without a code: %v", got)
	}
}

// TestErrorPages: what a person sees when the authorization cannot go on,
// at desktop and phone sizes: what happened and what to do, with no
// internal error, token or code on the page.
func TestErrorPages(t *testing.T) {
	skipUnlessE2E(t)
	g := startGateway(t, gatewayOptions{providers: []string{github}})
	c := registerClient(t, g, "Error client")
	tab := chrome.Start(t, nil).NewTab(t)
	for _, tc := range []struct {
		name, url string
		status    int64
		heading   string
	}{
		{"error-invalid-request", strings.Replace(c.authURL("state-err-1"), "client_id=", "client_id=unknown-", 1),
			http.StatusUnauthorized, "This authorization request cannot be completed"}, // invalid_client
		{"error-unknown-login", g.base + "/oauth/callback?state=forged-state-000&code=code-SECRET-123",
			http.StatusBadRequest, "This sign-in cannot be completed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := tab.Open(tc.url)
			if resp.Status != tc.status {
				t.Errorf("status %d, want %d", resp.Status, tc.status)
			}
			csp := headerValue(resp.Headers, "Content-Security-Policy")
			pageBasics(t, tab, csp)
			if !strings.Contains(csp, "form-action 'none'") {
				t.Errorf("an error page has no form, yet its CSP %q allows some", csp)
			}
			if got := tab.Text("h1"); got != tc.heading {
				t.Errorf("heading %q, want %q", got, tc.heading)
			}
			text := tab.Text("main")
			for _, bad := range []string{"code-SECRET-123", "forged-state-000", "goroutine", ".go:"} {
				if strings.Contains(text, bad) {
					t.Errorf("the page shows %q:\n%s", bad, text)
				}
			}
			if !strings.Contains(text, "What you can do") {
				t.Errorf("the page does not say what to do next:\n%s", text)
			}
			checkContrast(t, tab, "h1", "h2", "p")
			tab.Screenshot(tc.name)
		})
	}
}

// headerValue reads a response header from the DevTools protocol's map,
// whose keys keep the server's case.
func headerValue(h map[string]any, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

// TestContrast pins the contrast formula the page checks rely on to
// WCAG's reference values.
func TestContrast(t *testing.T) {
	for _, tc := range []struct {
		a, b []float64
		want float64
	}{
		{[]float64{0, 0, 0}, []float64{255, 255, 255}, 21},
		{[]float64{255, 255, 255}, []float64{255, 255, 255}, 1},
		{[]float64{118, 118, 118}, []float64{255, 255, 255}, 4.54}, // #767676, the lightest grey passing AA on white
	} {
		if got := contrast(tc.a, tc.b); math.Abs(got-tc.want) > 0.01 {
			t.Errorf("contrast(%v, %v) = %.3f, want %.2f", tc.a, tc.b, got, tc.want)
		}
	}
}
