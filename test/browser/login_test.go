package browser

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vmcp-dev/vmcp/internal/testsupport/chrome"
	"github.com/vmcp-dev/vmcp/internal/testsupport/hydra"
)

// sdkLogin runs the TypeScript SDK client through the whole MCP
// authorization flow with a person's browser: the client prints its
// authorization URL, the browser (Chromium or Firefox) opens it, login does what the person does
// there, the browser lands on the client's loopback redirect URI, and the
// client gets tokens and calls a tool. It returns the client's output.
func sdkLogin(t *testing.T, g *gateway, tab page, login func()) []any {
	t.Helper()
	proc := hydra.StartNodeScript(t.Context(), t, "mcp-oauth-client.mjs", "--url", g.mcpURL(), "--browser", "script",
		`[{"op":"tools"},{"op":"call","name":"fixture_test_simple_text","arguments":{}}]`)
	authURL := proc.WaitLine("OPEN ", 2*chrome.Timeout)
	tab.Navigate(authURL)
	login()
	tab.WaitVisible(clientDone)
	if got := tab.Text(clientDone); got != "Signed in" {
		t.Errorf("the client's page says %q, want Signed in", got)
	}
	out, err := proc.Wait(2 * chrome.Timeout)
	if err != nil {
		t.Fatalf("TypeScript client failed: %v\n%s", err, out)
	}
	var steps []any
	if err := json.Unmarshal(out, &steps); err != nil || len(steps) != 2 {
		t.Fatalf("client output: %v\n%s", err, out)
	}
	call, _ := json.Marshal(steps[1])
	if !strings.Contains(string(call), "This is a simple text response for testing.") {
		t.Errorf("tools/call = %s", call)
	}
	return steps
}

// TestLoginHydra: the MCP client's authorization URL opened in Chromium;
// the person approves vmcp's consent page, logs in at Hydra's login page
// and allows its consent page; the client gets tokens and calls a tool.
// With the consent page's old CSP (form-action 'self') Chromium blocks the
// approval: it enforces form-action on every redirect after the submission.
// A second client's login in the same browser needs only vmcp's consent
// page: Hydra remembers the person, so its login app answers with
// redirects, and every hop of that chain (Hydra, its login app, vmcp's
// callback, the client) must be allowed by the consent page's CSP.
func TestLoginHydra(t *testing.T) {
	skipUnlessE2E(t)
	g := startGateway(t, gatewayOptions{providers: []string{corp}})
	b := chrome.Start(t, nil)
	tab := b.NewTab(t)
	sdkLogin(t, g, tab, func() {
		waitConsent(t, g, tab)
		tab.Screenshot("consent-one-provider")
		tab.Click(consentApprove(corp))
		hydraLogin(t, g, tab)
	})
	loginRemembered(t, g, b.NewTab(t))
}

// loginRemembered logs in with corp in tab, a browser Hydra remembers: only
// vmcp's consent page shows, then a chain of redirects runs through Hydra,
// its login app and vmcp's callback to the client.
func loginRemembered(t *testing.T, g *gateway, tab page) {
	t.Helper()
	sdkLogin(t, g, tab, func() {
		waitConsent(t, g, tab)
		tab.Click(consentApprove(corp))
	})
}

// TestLoginGitHub: the same with the GitHub-shaped provider, which logs the
// person in without showing a page. The approval's redirect chain then runs
// from vmcp's consent page through the provider and vmcp's callback to the
// client's loopback redirect URI without stopping, so the consent page's
// CSP must allow the client's redirect URI too.
func TestLoginGitHub(t *testing.T) {
	skipUnlessE2E(t)
	g := startGateway(t, gatewayOptions{providers: []string{github}})
	tab := chrome.Start(t, nil).NewTab(t)
	sdkLogin(t, g, tab, func() {
		waitConsent(t, g, tab)
		tab.Click(consentApprove(github))
	})
}

// TestLoginSeveralProviders: with two providers the consent page offers
// both, and the login completes with either.
func TestLoginSeveralProviders(t *testing.T) {
	skipUnlessE2E(t)
	g := startGateway(t, gatewayOptions{providers: []string{corp, github}})
	b := chrome.Start(t, nil)
	severalProviders(t, g, func(t *testing.T) page { return b.NewTab(t) })
}

// severalProviders logs in through a gateway with both providers, in a new
// tab of one browser for each: with corp (Hydra's login and consent pages),
// then with github.
func severalProviders(t *testing.T, g *gateway, newTab func(*testing.T) page) {
	t.Run(corp, func(t *testing.T) {
		tab := newTab(t)
		sdkLogin(t, g, tab, func() {
			waitConsent(t, g, tab)
			tab.Screenshot("consent-two-providers")
			tab.Click(consentApprove(corp))
			hydraLogin(t, g, tab)
		})
	})
	t.Run(github, func(t *testing.T) {
		tab := newTab(t)
		sdkLogin(t, g, tab, func() {
			waitConsent(t, g, tab)
			tab.Click(consentApprove(github))
		})
	})
}
