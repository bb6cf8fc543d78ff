package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ManifestKind is the kind of the Kubernetes resource whose spec vmcp reads.
const ManifestKind = "VirtualMCPServer"

// Error is one problem in a configuration file, located by line and field.
type Error struct {
	File  string // path of the file, or "<builtin>"
	Line  int    // 1-based line; 0 if unknown
	Field string // field path, e.g. backends[1].url
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is the list of every problem found in one file.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Load reads, validates and defaults the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path)
}

// Parse validates and defaults a configuration document; file names it in
// errors.
func Parse(data []byte, file string) (*Config, error) {
	p := &parser{file: file, nodes: map[string]*yaml.Node{}}
	cfg, err := p.parse(data)
	if err != nil {
		return nil, err
	}
	cfg.File = file
	cfg.prefix = p.prefix
	cfg.lines = make(map[string]int, len(p.nodes))
	for path, n := range p.nodes {
		cfg.lines[path] = n.Line
	}
	cfg.applyDefaults()
	if errs := cfg.locate(cfg.validate()); len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

// parser remembers where each field path sits in the document.
type parser struct {
	file   string
	prefix string                // "spec." for a whole manifest
	nodes  map[string]*yaml.Node // field path -> value node
	errs   Errors
}

func (p *parser) errorf(n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) parse(data []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: p.file, Msg: "the file is empty"}}
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "line ") {
			msg = rest // the line is in Error.Line already
		}
		return nil, Errors{{File: p.file, Line: yamlErrorLine(err), Msg: msg}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, Errors{{File: p.file, Line: extra.Line, Msg: "the file holds more than one YAML document"}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, Errors{{File: p.file, Line: root.Line, Msg: "the top level must be a mapping"}}
	}
	spec, name, prefix := p.unwrapManifest(root)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	p.prefix = prefix
	p.checkFields(spec, reflect.TypeFor[Config](), prefix)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	var cfg Config
	if err := spec.Decode(&cfg); err != nil {
		return nil, p.decodeErrors(err)
	}
	if name != "" {
		cfg.Name = name
	}
	return &cfg, nil
}

// unwrapManifest returns the spec node of a whole VirtualMCPServer manifest
// (and its metadata.name), or root itself for a bare spec.
func (p *parser) unwrapManifest(root *yaml.Node) (spec *yaml.Node, name, prefix string) {
	kind := mapValue(root, "kind")
	if kind == nil {
		return root, "", ""
	}
	if kind.Value != ManifestKind {
		p.errorf(kind, "kind", "is %q; vmcp reads a %s manifest or a bare spec", kind.Value, ManifestKind)
		return nil, "", ""
	}
	for i := 0; i < len(root.Content); i += 2 {
		switch k := root.Content[i]; k.Value {
		case "apiVersion", "kind", "metadata", "spec", "status":
		default:
			p.errorf(k, k.Value, "unknown field in a %s manifest", ManifestKind)
		}
	}
	if md := mapValue(root, "metadata"); md != nil {
		if n := mapValue(md, "name"); n != nil {
			name = n.Value
		}
	}
	spec = mapValue(root, "spec")
	if spec == nil || spec.Kind != yaml.MappingNode {
		p.errorf(root, "spec", "a %s manifest needs a spec mapping", ManifestKind)
		return nil, "", ""
	}
	return spec, name, "spec."
}

// checkFields reports every key of n that t has no field for, and records
// the node of each known field path.
func (p *parser) checkFields(n *yaml.Node, t reflect.Type, path string) {
	p.nodes[strings.TrimSuffix(path, ".")] = n
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[yaml.Node]() || t == reflect.TypeFor[Duration]() {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Tag != "!!null" {
				p.errorf(n, strings.TrimSuffix(path, "."), "must be a mapping")
			}
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				p.errorf(k, path+k.Value, "unknown field%s", suggest(k.Value, fields))
				continue
			}
			p.checkFields(v, ft, path+k.Value+".")
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return // the decoder reports the type error with its line
		}
		base := strings.TrimSuffix(path, ".")
		for i, item := range n.Content {
			p.checkFields(item, t.Elem(), fmt.Sprintf("%s[%d].", base, i))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		base := strings.TrimSuffix(path, ".")
		for i := 0; i+1 < len(n.Content); i += 2 {
			p.checkFields(n.Content[i+1], t.Elem(), base+"."+n.Content[i].Value+".")
		}
	}
}

// yamlFields maps the YAML keys of struct t to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "-" || !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		m[tag] = f.Type
	}
	return m
}

// suggest returns ` (did you mean "x"?)` for a near miss of a known key.
func suggest(key string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for k := range fields {
		if d := editDistance(strings.ToLower(key), strings.ToLower(k)); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// decodeErrors turns the decoder's errors (type errors, and errors of
// custom unmarshalers such as [Duration]) into located errors.
func (p *parser) decodeErrors(err error) Errors {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var errs Errors
	for _, msg := range msgs {
		line := yamlErrorLine(errors.New(msg))
		if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "line ") {
			msg = rest
		}
		errs = append(errs, &Error{File: p.file, Line: line, Field: p.fieldAt(line), Msg: msg})
	}
	return errs
}

// fieldAt returns the field path whose value starts on line, if any.
func (p *parser) fieldAt(line int) string {
	best := ""
	for path, n := range p.nodes {
		if n.Line == line && len(path) > len(best) {
			best = path
		}
	}
	return best
}

// yamlErrorLine extracts "line N" from a yaml error message.
func yamlErrorLine(err error) int {
	s := err.Error()
	i := strings.Index(s, "line ")
	if i < 0 {
		return 0
	}
	s = s[i+5:]
	j := 0
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	n, _ := strconv.Atoi(s[:j])
	return n
}

func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}
