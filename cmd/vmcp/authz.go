package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vmcp-dev/vmcp/internal/app"
	"github.com/vmcp-dev/vmcp/internal/authz"
	"github.com/vmcp-dev/vmcp/internal/config"
)

// identityDoc describes a caller for offline decisions: the claims of the
// token vmcp saw, and what vmcp verified at the upstream IdP (as the
// authorization server stores it: an opaque upstream access token has no
// claims entry).
type identityDoc struct {
	Subject  string         `json:"subject" yaml:"subject"`
	Token    map[string]any `json:"token" yaml:"token"`
	Upstream *struct {
		Provider    string         `json:"provider" yaml:"provider"`
		IDToken     map[string]any `json:"idToken" yaml:"idToken"`
		Userinfo    map[string]any `json:"userinfo" yaml:"userinfo"`
		AccessToken map[string]any `json:"accessToken" yaml:"accessToken"`
	} `json:"upstream" yaml:"upstream"`
}

// claims resolves the document's claims the way the gateway does for cfg.
func (d *identityDoc) claims(cfg *config.Config) (authz.Claims, string) {
	var up *authz.Upstream
	if d.Upstream != nil {
		up = &authz.Upstream{Provider: d.Upstream.Provider, IDTokenClaims: d.Upstream.IDToken,
			UserinfoClaims: d.Upstream.Userinfo, AccessTokenClaims: d.Upstream.AccessToken}
	}
	subject := d.Subject
	if subject == "" {
		subject, _ = d.Token["sub"].(string)
	}
	if subject == "" {
		subject = "anonymous"
	}
	return app.PolicyClaims(cfg.IncomingAuth.AuthzConfig, d.Token, up), subject
}

// request is one offline authorization question.
type request struct {
	Action    string         `yaml:"action"`
	Resource  string         `yaml:"resource"`
	Backend   string         `yaml:"backend"`
	Arguments map[string]any `yaml:"arguments"`
	// Annotations are the tool's annotations (context.annotations).
	Annotations map[string]any `yaml:"annotations"`
}

// methods are the MCP methods each action answers (context.operation, as
// the gateway sets it).
var methods = map[authz.Action]string{
	authz.CallTool: "tools/call", authz.ListTools: "tools/list",
	authz.ReadResource: "resources/read", authz.ListResources: "resources/list",
	authz.GetPrompt: "prompts/get", authz.ListPrompts: "prompts/list",
}

func (r request) decide(a *authz.Authorizer, cfg *config.Config, id *identityDoc) (authz.Explanation, error) {
	act, err := authz.ParseAction(r.Action)
	if err != nil {
		return authz.Explanation{}, err
	}
	claims, subject := id.claims(cfg)
	p := a.Principal(subject, claims)
	backend := r.Backend
	if backend == "" {
		backend = guessBackend(cfg, r.Resource)
	}
	var t *authz.Target
	var display string
	switch act {
	case authz.CallTool:
		t, display = a.Tool(r.Resource, backend, r.Annotations), `Vmcp::Tool::"`+r.Resource+`"`
	case authz.GetPrompt:
		t, display = a.Prompt(r.Resource, backend), `Vmcp::Prompt::"`+r.Resource+`"`
	case authz.ReadResource:
		t, display = a.Resource(r.Resource, backend), `Vmcp::Resource::"`+r.Resource+`"`
	default:
		return a.Explain(a.DecideList(p, act, methods[act]), p, act, `Vmcp::Server::"`+cfg.Name+`"`, true), nil
	}
	return a.Explain(a.Decide(p, t, r.Arguments, methods[act]), p, act, display, true), nil
}

// guessBackend finds the backend whose prefix an advertised name carries.
func guessBackend(cfg *config.Config, name string) string {
	if cfg.Config.Aggregation.ConflictResolution != config.ConflictPrefix {
		return ""
	}
	for _, b := range cfg.Backends {
		if strings.HasPrefix(name, strings.ReplaceAll(cfg.Config.Aggregation.ConflictResolutionConfig.PrefixFormat, "{workload}", b.Name)) {
			return b.Name
		}
	}
	return ""
}

func loadAuthz(file string) (*config.Config, *authz.Authorizer, error) {
	cfg, err := config.Load(file)
	if err != nil {
		return nil, nil, err
	}
	a, err := app.NewAuthorizer(cfg, nil)
	if err != nil {
		return nil, nil, err
	}
	if a == nil {
		return nil, nil, fmt.Errorf("%s has no incomingAuth.authzConfig: every caller may do everything", file)
	}
	return cfg, a, nil
}

func authzCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: vmcp authz explain|test [flags]")
	}
	switch args[0] {
	case "explain":
		return explainCmd(args[1:], stdout)
	case "test":
		return testCmd(args[1:], stdout)
	}
	return fmt.Errorf("unknown authz command %q", args[0])
}

func explainCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("authz explain", flag.ContinueOnError)
	file := fs.String("config", "", "configuration file")
	idFile := fs.String("identity", "", "identity document (JSON or YAML)")
	var r request
	fs.StringVar(&r.Action, "action", "call_tool", "action: call_tool, list_tools, read_resource, list_resources, get_prompt, list_prompts")
	fs.StringVar(&r.Resource, "resource", "", "advertised tool or prompt name, or resource URI")
	fs.StringVar(&r.Backend, "backend", "", "backend of the resource (default: guessed from the prefix)")
	argsJSON := fs.String("arguments", "", "tool arguments (JSON object)")
	annJSON := fs.String("annotations", "", "tool annotations (JSON object)")
	asJSON := fs.Bool("json", false, "print the explanation as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" || *idFile == "" {
		return errors.New("authz explain needs --config and --identity")
	}
	cfg, a, err := loadAuthz(*file)
	if err != nil {
		return err
	}
	var id identityDoc
	if err := readDoc(*idFile, &id); err != nil {
		return err
	}
	if *argsJSON != "" {
		if err := json.Unmarshal([]byte(*argsJSON), &r.Arguments); err != nil {
			return fmt.Errorf("--arguments: %w", err)
		}
	}
	if *annJSON != "" {
		if err := json.Unmarshal([]byte(*annJSON), &r.Annotations); err != nil {
			return fmt.Errorf("--annotations: %w", err)
		}
	}
	e, err := r.decide(a, cfg, &id)
	if err != nil {
		return err
	}
	if *asJSON {
		out, _ := json.MarshalIndent(e, "", "  ")
		fmt.Fprintln(stdout, string(out))
	} else {
		fmt.Fprint(stdout, e.String())
	}
	return nil
}

// testFile is a policy test suite.
type testFile struct {
	Config string     `yaml:"config"`
	Cases  []testCase `yaml:"cases"`
}

type testCase struct {
	Name     string      `yaml:"name"`
	Identity identityDoc `yaml:"identity"`
	request  `yaml:",inline"`
	Expect   string `yaml:"expect"`
}

func testCmd(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: vmcp authz test CASES.yaml")
	}
	var tf testFile
	if err := readDoc(args[0], &tf); err != nil {
		return err
	}
	if tf.Config == "" {
		return fmt.Errorf("%s: config (the vmcp configuration with the policies) is required", args[0])
	}
	cfgPath := tf.Config
	if !filepath.IsAbs(cfgPath) {
		cfgPath = filepath.Join(filepath.Dir(args[0]), cfgPath)
	}
	cfg, a, err := loadAuthz(cfgPath)
	if err != nil {
		return err
	}
	failed := 0
	for i, c := range tf.Cases {
		name := c.Name
		if name == "" {
			name = fmt.Sprintf("case %d", i+1)
		}
		if c.Expect != "allow" && c.Expect != "deny" {
			return fmt.Errorf("%s: %s: expect must be allow or deny", args[0], name)
		}
		e, err := c.request.decide(a, cfg, &c.Identity)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", args[0], name, err)
		}
		if e.Decision == c.Expect {
			fmt.Fprintf(stdout, "PASS  %s\n", name)
			continue
		}
		failed++
		fmt.Fprintf(stdout, "FAIL  %s: got %s, want %s\n%s\n", name, e.Decision, c.Expect, indent(e.String()))
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", len(tf.Cases)-failed, failed)
	if failed > 0 {
		return fmt.Errorf("%d policy test cases failed", failed)
	}
	return nil
}

func indent(s string) string {
	return "      " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n      ")
}

// readDoc reads a YAML (or JSON, which is YAML) document strictly.
func readDoc(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
