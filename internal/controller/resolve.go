package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/vmcp-dev/vmcp/api/v1alpha1"
	"github.com/vmcp-dev/vmcp/internal/app"
	"github.com/vmcp-dev/vmcp/internal/config"
)

// Defaults of the generated configuration.
const (
	// DefaultPort is the port of the gateway's container and Service.
	DefaultPort = 4483
	// SecretsDir is where the Deployment mounts Secrets: <dir>/<name>/<key>.
	SecretsDir = "/var/run/vmcp/secrets"
	// ConfigDir is where the Deployment mounts the generated ConfigMap.
	ConfigDir = "/etc/vmcp"
	// ConfigKey is the generated ConfigMap's key holding the document.
	ConfigKey = "config.yaml"
	// DefaultPolicyKey is the key of a policy ConfigMap when
	// authzConfig.configMap.key is not set.
	DefaultPolicyKey = "authz.json"
	// DefaultServerPort and DefaultServerPath locate an image MCPServer's
	// endpoint in its container.
	DefaultServerPort = 8080
	DefaultServerPath = "/mcp"
	// maxMessage bounds a condition message (the API allows 32 KiB).
	maxMessage = 4096
)

// problem is one thing wrong with a gateway, reported in condition cond.
// A blocking problem would keep vmcp from starting, so nothing is applied.
type problem struct {
	cond     string
	reason   string
	msg      string
	blocking bool
}

// resolution is a VirtualMCPServer resolved against the cluster.
type resolution struct {
	doc       []byte              // the configuration document vmcp reads
	cfg       *config.Config      // doc parsed and validated; nil if invalid
	backends  []string            // backend names, in document order
	secrets   map[string][]string // Secret name -> keys the document reads
	versions  []string            // uid and resourceVersion of each Secret, for the hash
	publicURL string
	problems  []problem
	// found is the True message of BackendsDiscovered.
	found string
	// waiting is what the pods wait for, if anything, besides themselves
	// (an unbound state volume claim), for the Ready condition.
	waiting string
}

func (r *resolution) add(cond, reason string, blocking bool, format string, args ...any) {
	r.problems = append(r.problems, problem{cond: cond, reason: reason, msg: fmt.Sprintf(format, args...), blocking: blocking})
}

// blocked reports whether a problem keeps the gateway from being applied.
func (r *resolution) blocked() bool {
	return slices.ContainsFunc(r.problems, func(p problem) bool { return p.blocking })
}

// resolver builds a resolution; it remembers where each part of the
// document came from, so that errors point at what the user wrote.
type resolver struct {
	c   client.Reader
	vs  *v1alpha1.VirtualMCPServer
	res *resolution
	doc map[string]any

	servers      []v1alpha1.MCPServer // the backends, in document order
	oidcName     string               // MCPOIDCConfig inlined as incomingAuth.oidcConfig
	audienceRef  bool                 // its audience came from oidcConfigRef
	policySource string               // "ConfigMap x, key y" when policies came from a ConfigMap
	audience     string               // the audience incoming tokens must carry, if set
	publicFrom   string               // where server.publicURL came from, if not spec.server
}

// resolve reads what vs depends on and builds the configuration document,
// checked as `vmcp validate` checks a file.
func resolve(ctx context.Context, c client.Reader, vs *v1alpha1.VirtualMCPServer) (*resolution, error) {
	rs := &resolver{c: c, vs: vs, res: &resolution{secrets: map[string][]string{}}}
	raw, err := json.Marshal(vs.Spec.GatewaySpec)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &rs.doc); err != nil {
		return nil, err
	}
	steps := []func(context.Context) error{rs.backends, rs.incomingOIDC, rs.policies}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	rs.server()
	rs.storageDefaults()
	rs.checkAudience()
	rs.doc["name"] = vs.Name
	if rs.res.doc, err = yaml.Marshal(rs.doc); err != nil {
		return nil, err
	}
	if rs.res.blocked() {
		return rs.res, nil // the document lacks what was missing; its errors would mislead
	}
	cfg, err := config.Parse(rs.res.doc, "VirtualMCPServer "+vs.Namespace+"/"+vs.Name)
	var errs config.Errors
	switch {
	case errors.As(err, &errs):
		for _, e := range errs {
			cond, where := rs.where(e.Field)
			rs.res.add(cond, v1alpha1.ReasonInvalid, true, "%s: %s", where, e.Msg)
		}
		return rs.res, nil
	case err != nil:
		return nil, err
	}
	if err := app.Validate(cfg); err != nil {
		rs.policyErrors(cfg, err)
		return rs.res, nil
	}
	if err := rs.secrets(ctx, cfg); err != nil {
		return nil, err
	}
	rs.res.cfg = cfg
	return rs.res, nil
}

// groupName is the group the gateway serves: spec.groupRef.name or
// spec.config.groupRef (a CEL rule keeps them equal when both are set).
func groupName(vs *v1alpha1.VirtualMCPServer) string {
	if g := vs.Spec.GroupRef; g != nil && g.Name != "" {
		return g.Name
	}
	if c := vs.Spec.Config; c != nil {
		return c.GroupRef
	}
	return ""
}

// backends lists the MCPServers of the group as the document's backends.
func (rs *resolver) backends(ctx context.Context) error {
	vs, res := rs.vs, rs.res
	var groups v1alpha1.MCPGroupList
	if err := rs.c.List(ctx, &groups, client.InNamespace(vs.Namespace)); err != nil {
		return err
	}
	var servers v1alpha1.MCPServerList
	if err := rs.c.List(ctx, &servers, client.InNamespace(vs.Namespace)); err != nil {
		return err
	}
	names := make([]string, 0, len(groups.Items))
	for _, g := range groups.Items {
		names = append(names, g.Name)
	}
	slices.Sort(names)
	group := groupName(vs)
	var stray []string // servers no gateway serves, and why
	for _, s := range servers.Items {
		switch {
		case s.Spec.GroupRef == nil || s.Spec.GroupRef.Name == "":
			stray = append(stray, fmt.Sprintf("MCPServer %s has no spec.groupRef, so no gateway serves it", s.Name))
		case !slices.Contains(names, s.Spec.GroupRef.Name):
			stray = append(stray, fmt.Sprintf("MCPServer %s names MCPGroup %q, which does not exist", s.Name, s.Spec.GroupRef.Name))
		case s.Spec.GroupRef.Name == group:
			rs.servers = append(rs.servers, s)
		}
	}
	slices.SortFunc(rs.servers, func(a, b v1alpha1.MCPServer) int { return strings.Compare(a.Name, b.Name) })
	hint := rs.reportGroup(group, names, stray)
	inline := false
	if o := vs.Spec.OutgoingAuth; o != nil && o.Source == "inline" {
		inline = true
	}
	var list []any
	remote := 0
	for _, s := range rs.servers {
		b := map[string]any{"name": s.Name, "url": serverURL(&s)}
		if s.Spec.Transport != "" {
			b["transport"] = s.Spec.Transport
		}
		if s.Spec.URL != "" {
			remote++
		}
		if a := s.Spec.OutgoingAuth; a != nil && !inline {
			m, err := toMap(a)
			if err != nil {
				return err
			}
			b["outgoingAuth"] = m
		}
		list = append(list, b)
		res.backends = append(res.backends, s.Name)
	}
	if list != nil {
		rs.doc["backends"] = list
	}
	if len(rs.servers) > 0 {
		res.found = fmt.Sprintf("%d backends from MCPGroup %s (%d remote, %d run by the operator): %s%s",
			len(rs.servers), group, remote, len(rs.servers)-remote, strings.Join(res.backends, ", "), hint)
	}
	return nil
}

// reportGroup reports a group that is unset, missing or empty, and
// returns the hint about servers no gateway serves (stray).
func (rs *resolver) reportGroup(group string, names, stray []string) (hint string) {
	vs, res := rs.vs, rs.res
	if len(stray) > 0 {
		fix := "set its spec.groupRef.name"
		if group != "" {
			fix = fmt.Sprintf("set spec.groupRef.name: %s to add it here", group)
		}
		hint = fmt.Sprintf(". %s (%s)", strings.Join(stray, "; "), fix)
	}
	groupList := "none"
	if len(names) > 0 {
		groupList = strings.Join(names, ", ")
	}
	switch {
	case group == "":
		res.add(v1alpha1.ConditionBackendsDiscovered, v1alpha1.ReasonNoGroup, false,
			"spec.groupRef.name is not set, so the gateway has no backends: set it to an MCPGroup (in namespace %s: %s)%s", vs.Namespace, groupList, hint)
	case !slices.Contains(names, group):
		res.add(v1alpha1.ConditionBackendsDiscovered, v1alpha1.ReasonNotFound, false,
			"MCPGroup %q (spec.groupRef.name) does not exist in namespace %s: create it, or name one of: %s%s", group, vs.Namespace, groupList, hint)
	case len(rs.servers) == 0:
		res.add(v1alpha1.ConditionBackendsDiscovered, v1alpha1.ReasonNoBackends, false,
			"MCPGroup %s has no MCPServers: give an MCPServer spec.groupRef.name: %s%s", group, group, hint)
	}
	return hint
}

// serverURL is the address vmcp reaches an MCPServer at.
func serverURL(s *v1alpha1.MCPServer) string {
	if s.Spec.URL != "" {
		return s.Spec.URL
	}
	port, path := s.Spec.Port, s.Spec.Path
	if port == 0 {
		port = DefaultServerPort
	}
	if path == "" {
		path = DefaultServerPath
	}
	return fmt.Sprintf("http://%s.%s.svc:%d%s", serverObjectName(s.Name), s.Namespace, port, path)
}

// incomingOIDC resolves incomingAuth.oidcConfigRef. An MCPOIDCConfig whose
// issuer is the gateway's own authorization server keeps the reference
// (vmcp then checks its own tokens, as standalone); any other issuer
// becomes incomingAuth.oidcConfig.
func (rs *resolver) incomingOIDC(ctx context.Context) error {
	in := rs.vs.Spec.IncomingAuth
	if in == nil || in.OIDCConfigRef == nil {
		return nil
	}
	ref := in.OIDCConfigRef
	var oc v1alpha1.MCPOIDCConfig
	err := rs.c.Get(ctx, types.NamespacedName{Namespace: rs.vs.Namespace, Name: ref.Name}, &oc)
	if apierrors.IsNotFound(err) {
		issuer := "the issuer of your identity provider"
		if as := rs.vs.Spec.AuthServerConfig; as != nil {
			issuer = as.Issuer + " (authServerConfig.issuer, for the tokens of the gateway's own authorization server)"
		}
		rs.res.add(v1alpha1.ConditionAuthConfigured, v1alpha1.ReasonNotFound, true,
			"MCPOIDCConfig %q (spec.incomingAuth.oidcConfigRef.name) does not exist in namespace %s: create it with spec.type: inline and spec.inline.issuer: %s",
			ref.Name, rs.vs.Namespace, issuer)
		return nil
	}
	if err != nil {
		return err
	}
	if oc.Spec.Inline == nil {
		rs.res.add(v1alpha1.ConditionAuthConfigured, v1alpha1.ReasonInvalid, true, "MCPOIDCConfig %s: spec.inline is required", oc.Name)
		return nil
	}
	audience := ref.Audience
	if audience == "" {
		audience = oc.Spec.Inline.Audience
	}
	rs.audience = audience
	if as := rs.vs.Spec.AuthServerConfig; as != nil && sameURL(as.Issuer, oc.Spec.Inline.Issuer) {
		if ref.Audience == "" && audience != "" {
			setPath(rs.doc, audience, "incomingAuth", "oidcConfigRef", "audience")
		}
		return nil
	}
	m, err := toMap(oc.Spec.Inline)
	if err != nil {
		return err
	}
	if audience != "" {
		m["audience"] = audience
	}
	incoming := rs.doc["incomingAuth"].(map[string]any)
	delete(incoming, "oidcConfigRef")
	incoming["oidcConfig"] = m
	rs.oidcName, rs.audienceRef = oc.Name, ref.Audience != ""
	return nil
}

func sameURL(a, b string) bool { return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/") }

// policies reads Cedar policies from the ConfigMap of authzConfig type
// configMap and puts them in the document inline, which is what vmcp
// reads (standalone vmcp refuses type configMap).
func (rs *resolver) policies(ctx context.Context) error {
	in := rs.vs.Spec.IncomingAuth
	if in == nil || in.AuthzConfig == nil || in.AuthzConfig.Type != config.AuthzConfigMap || in.AuthzConfig.ConfigMap == nil {
		return nil
	}
	ref := in.AuthzConfig.ConfigMap
	key := ref.Key
	if key == "" {
		key = DefaultPolicyKey
	}
	var cm corev1.ConfigMap
	err := rs.c.Get(ctx, types.NamespacedName{Namespace: rs.vs.Namespace, Name: ref.Name}, &cm)
	if apierrors.IsNotFound(err) {
		rs.res.add(v1alpha1.ConditionAuthzConfigured, v1alpha1.ReasonNotFound, true,
			"ConfigMap %q (spec.incomingAuth.authzConfig.configMap.name) does not exist in namespace %s: create it with the Cedar policies under key %s",
			ref.Name, rs.vs.Namespace, key)
		return nil
	}
	if err != nil {
		return err
	}
	text, ok := cm.Data[key]
	if !ok {
		rs.res.add(v1alpha1.ConditionAuthzConfigured, v1alpha1.ReasonNotFound, true,
			"ConfigMap %s has no key %q (spec.incomingAuth.authzConfig.configMap.key); its keys: %s",
			cm.Name, key, strings.Join(slices.Sorted(maps.Keys(cm.Data)), ", "))
		return nil
	}
	rs.policySource = fmt.Sprintf("ConfigMap %s, key %s", cm.Name, key)
	policies, entities, err := parsePolicyDoc(text)
	if err != nil {
		rs.res.add(v1alpha1.ConditionAuthzConfigured, v1alpha1.ReasonInvalid, true, "%s: %v", rs.policySource, err)
		return nil
	}
	authz := rs.doc["incomingAuth"].(map[string]any)["authzConfig"].(map[string]any)
	delete(authz, "configMap")
	authz["type"] = config.AuthzInline
	inline := map[string]any{"policies": policies}
	if entities != "" {
		inline["entitiesJson"] = entities
	}
	authz["inline"] = inline
	return nil
}

// parsePolicyDoc reads a policy ConfigMap value: Cedar policy text, or a
// JSON document {"cedar": {"policies": [...], "entities_json": "..."}}
// (the layout ToolHive's operator uses).
func parsePolicyDoc(text string) (policies []any, entities string, err error) {
	if !strings.HasPrefix(strings.TrimSpace(text), "{") {
		return []any{text}, "", nil
	}
	var doc struct {
		Cedar *struct {
			Policies     []string `json:"policies"`
			EntitiesJSON string   `json:"entities_json"`
		} `json:"cedar"`
	}
	if err := json.Unmarshal([]byte(text), &doc); err != nil {
		return nil, "", fmt.Errorf("not Cedar policy text, and not JSON: %w", err)
	}
	if doc.Cedar == nil {
		return nil, "", errors.New(`a JSON value needs a "cedar" object with "policies"`)
	}
	for _, p := range doc.Cedar.Policies {
		policies = append(policies, p)
	}
	return policies, doc.Cedar.EntitiesJSON, nil
}

// server sets what the operator owns in the server block: the listen
// address (the container port) and, unless given, the public URL: the
// audience incoming tokens must carry (the URL clients use, behind an
// ingress), or else the Service's URL.
func (rs *resolver) server() {
	port := rs.vs.Spec.Port
	if port == 0 {
		port = DefaultPort
	}
	srv, _ := rs.doc["server"].(map[string]any)
	if srv == nil {
		srv = map[string]any{}
		rs.doc["server"] = srv
	}
	srv["listen"] = "0.0.0.0:" + strconv.Itoa(int(port))
	if u, _ := srv["publicURL"].(string); u != "" {
		rs.res.publicURL = u
		return
	}
	u := serviceURL(rs.vs)
	if rs.audience != "" {
		u, rs.publicFrom = rs.audience, "the audience of incomingAuth.oidcConfigRef"
	}
	srv["publicURL"] = u
	rs.res.publicURL = u
}

// checkAudience reports an oidcConfigRef audience that is not the public
// URL: vmcp serve refuses to start on it (app.authenticator), which
// `vmcp validate` does not see, since standalone the URL comes from the
// listen address.
func (rs *resolver) checkAudience() {
	in := rs.vs.Spec.IncomingAuth
	if in == nil || in.OIDCConfigRef == nil || rs.oidcName != "" || rs.audience == "" || sameURL(rs.audience, rs.res.publicURL) {
		return
	}
	rs.res.add(v1alpha1.ConditionAuthConfigured, v1alpha1.ReasonInvalid, true,
		"the audience of spec.incomingAuth.oidcConfigRef (%s) is not spec.server.publicURL (%s): tokens of the gateway's authorization server are issued for its MCP endpoint, so the two must be the URL clients use; leave spec.server.publicURL unset to use the audience",
		rs.audience, rs.res.publicURL)
}

// serviceURL is the gateway's MCP endpoint inside the cluster.
func serviceURL(vs *v1alpha1.VirtualMCPServer) string {
	port := vs.Spec.Port
	if port == 0 {
		port = DefaultPort
	}
	return fmt.Sprintf("http://%s.%s.svc:%d/mcp", gatewayObjectName(vs.Name), vs.Namespace, port)
}

// secrets checks that every Secret the document reads exists and has the
// key, and records them for the Deployment.
func (rs *resolver) secrets(ctx context.Context, cfg *config.Config) error {
	seen := map[string]*corev1.Secret{}
	for _, r := range cfg.SecretRefs() {
		name, key := r.Ref.Name, r.Ref.Key
		cond, where := rs.where(r.Field)
		s, ok := seen[name]
		if !ok {
			s = &corev1.Secret{}
			err := rs.c.Get(ctx, types.NamespacedName{Namespace: rs.vs.Namespace, Name: name}, s)
			switch {
			case apierrors.IsNotFound(err):
				s = nil
			case err != nil:
				return err
			default:
				rs.res.versions = append(rs.res.versions, name+"/"+string(s.UID)+"/"+s.ResourceVersion)
			}
			seen[name] = s
		}
		if s == nil {
			rs.res.add(cond, v1alpha1.ReasonNotFound, true,
				"Secret %q (%s) does not exist in namespace %s: create it with key %s, e.g. kubectl create secret generic %s --from-literal=%s=...",
				name, where, rs.vs.Namespace, key, name, key)
			continue
		}
		if v, ok := s.Data[key]; !ok {
			rs.res.add(cond, v1alpha1.ReasonNotFound, true, "Secret %s has no key %q (%s); its keys: %s",
				name, key, where, strings.Join(slices.Sorted(maps.Keys(s.Data)), ", "))
			continue
		} else if strings.TrimSpace(string(v)) == "" {
			rs.res.add(cond, v1alpha1.ReasonInvalid, true, "Secret %s key %q (%s) is empty", name, key, where)
			continue
		}
		if !slices.Contains(rs.res.secrets[name], key) {
			rs.res.secrets[name] = append(rs.res.secrets[name], key)
		}
	}
	for _, keys := range rs.res.secrets {
		slices.Sort(keys)
	}
	return nil
}

var backendField = regexp.MustCompile(`^backends\[(\d+)\](.*)$`)

// where maps a field path of the document to the condition it belongs to
// and to the field the user wrote, in the resource they wrote it in.
func (rs *resolver) where(field string) (cond, where string) {
	if m := backendField.FindStringSubmatch(field); m != nil {
		i, _ := strconv.Atoi(m[1])
		name := "?"
		if i < len(rs.servers) {
			name = rs.servers[i].Name
		}
		rest := m[2]
		cond = v1alpha1.ConditionBackendsDiscovered
		if strings.HasPrefix(rest, ".outgoingAuth") {
			cond = v1alpha1.ConditionAuthConfigured
		}
		if rest == "" {
			return cond, "MCPServer " + name
		}
		return cond, "MCPServer " + name + " spec" + rest
	}
	switch {
	case strings.HasPrefix(field, "incomingAuth.authzConfig"):
		if rs.policySource != "" && strings.HasPrefix(field, "incomingAuth.authzConfig.inline") {
			return v1alpha1.ConditionAuthzConfigured, rs.policySource
		}
		return v1alpha1.ConditionAuthzConfigured, "spec." + field
	case rs.oidcName != "" && strings.HasPrefix(field, "incomingAuth.oidcConfig"):
		rest := strings.TrimPrefix(field, "incomingAuth.oidcConfig")
		if rest == ".audience" && rs.audienceRef {
			return v1alpha1.ConditionAuthConfigured, "spec.incomingAuth.oidcConfigRef.audience"
		}
		return v1alpha1.ConditionAuthConfigured, "MCPOIDCConfig " + rs.oidcName + " spec.inline" + rest
	case strings.HasPrefix(field, "incomingAuth"), strings.HasPrefix(field, "authServerConfig"), strings.HasPrefix(field, "outgoingAuth"):
		return v1alpha1.ConditionAuthConfigured, "spec." + field
	case strings.HasPrefix(field, "config.aggregation"), strings.HasPrefix(field, "config.operational.timeouts.perWorkload"):
		return v1alpha1.ConditionBackendsDiscovered, "spec." + field
	case field == "name":
		return v1alpha1.ConditionReady, "metadata.name"
	case field == "server.publicURL" && rs.publicFrom != "":
		return v1alpha1.ConditionReady, "spec.server.publicURL (taken from " + rs.publicFrom + ")"
	}
	return v1alpha1.ConditionReady, "spec." + field
}

var positionPrefix = regexp.MustCompile(`^[^\n]*?:\d+: (incomingAuth\.authzConfig[^:]*): `)

// policyErrors reports the Cedar policy errors app.Validate found; each
// line names its policy as "file:line: field: error".
func (rs *resolver) policyErrors(cfg *config.Config, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		where := "spec.incomingAuth.authzConfig"
		if m := positionPrefix.FindStringSubmatch(line); m != nil {
			_, where = rs.where(m[1])
			line = line[len(m[0]):]
		} else {
			line = strings.TrimPrefix(line, cfg.File+": incomingAuth.authzConfig: ")
		}
		rs.res.add(v1alpha1.ConditionAuthzConfigured, v1alpha1.ReasonInvalid, true, "%s: %s", where, line)
	}
}

// toMap turns an API value into the generic form of the document.
func toMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	err = json.Unmarshal(b, &m)
	return m, err
}

func setPath(m map[string]any, v any, path ...string) {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}
