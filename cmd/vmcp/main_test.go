package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(args, &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestAuthzExplain(t *testing.T) {
	out, err := runCLI(t, "authz", "explain", "--config", "testdata/authz.yaml", "--identity", "testdata/alice.json",
		"--action", "call_tool", "--resource", "docs_search")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"decision: ALLOW", "permitted by corp-email", "email", "id_token", "name                 userinfo"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
}

func TestAuthzTest(t *testing.T) {
	out, err := runCLI(t, "authz", "test", "testdata/cases.yaml")
	if err != nil || !strings.Contains(out, "3 passed, 0 failed") {
		t.Errorf("passing cases: %v\n%s", err, out)
	}
	out, err = runCLI(t, "authz", "test", "testdata/cases-failing.yaml")
	if err == nil || !strings.Contains(out, "FAIL  bob is blocked") || !strings.Contains(out, "forbidden by no-bob") {
		t.Errorf("failing case: %v\n%s", err, out)
	}
}

func TestValidate(t *testing.T) {
	if out, err := runCLI(t, "validate", "--config", "testdata/authz.yaml"); err != nil || !strings.Contains(out, "valid") {
		t.Errorf("validate: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "validate", "--config", "testdata/missing.yaml"); err == nil {
		t.Error("validating a missing file succeeded")
	}
}

// TestStateDirNeedsEmbedded: --state-dir with another storage type is an
// error naming both, not silently ignored.
func TestStateDirNeedsEmbedded(t *testing.T) {
	cfg := t.TempDir() + "/memory.yaml"
	doc := "name: x\nincomingAuth: {type: oidc, oidcConfigRef: {name: x}}\nauthServerConfig:\n  issuer: http://127.0.0.1:4483\n" +
		"  upstreamProviders: [{name: idp, type: oidc, oidcConfig: {issuerUrl: 'https://idp.example', clientId: c}}]\nstorage: {type: memory}\n"
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := runCLI(t, "serve", "--config", cfg, "--listen", "127.0.0.1:0", "--state-dir", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "--state-dir is for the embedded store; storage.type is memory") {
		t.Errorf("serve --state-dir with a memory store: %v", err)
	}
}

// TestExampleFiles: the examples docs/authorization.md shows are valid and
// their policy cases pass (a Google user's "contractors" group among them:
// docs/identity.md#threat-model).
func TestExampleFiles(t *testing.T) {
	if out, err := runCLI(t, "validate", "--config", "../../docs/examples/authz-gateway.yaml"); err != nil {
		t.Errorf("validate authz-gateway.yaml: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "authz", "test", "../../docs/examples/authz-cases.yaml"); err != nil || !strings.Contains(out, " 0 failed") {
		t.Errorf("authz-cases.yaml: %v\n%s", err, out)
	}
}

// TestClientToolsEmpty: `vmcp client tools` against an endpoint without
// tools says so and fails, rather than printing nothing and succeeding.
func TestClientToolsEmpty(t *testing.T) {
	addr := vmcptest.FreeAddr(t)
	vmcptest.Start(t, "backends: []\nserver: {listen: "+addr+"}\n", nil)
	out, err := runCLI(t, "client", "tools", "--url", "http://"+addr+"/mcp")
	if err == nil || !strings.Contains(err.Error(), "lists no tools") {
		t.Errorf("vmcp client tools on an empty catalog: %v, output %q; want an error saying it lists no tools", err, out)
	}
}
