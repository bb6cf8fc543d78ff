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
// authorization URL, Chromium opens it, login does what the person does
// there, the browser lands on the client's loopback redirect URI, and the
// client gets tokens and calls a tool. It returns the client's output.
func sdkLogin(t *testing.T, g *gateway, tab *chrome.Tab, login func()) []any {
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
	tab := b.NewTab()
	sdkLogin(t, g, tab, func() {
		waitConsent(t, g, tab)
		tab.Screenshot("consent-one-provider")
		tab.Click(consentApprove(corp))
		hydraLogin(t, g, tab)
	})
	second := b.NewTab()
	sdkLogin(t, g, second, func() {
		waitConsent(t, g, second)
		second.Click(consentApprove(corp))
	})
}
