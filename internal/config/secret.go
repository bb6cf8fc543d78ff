package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
)

// SecretsDirEnv names the directory holding secrets as Kubernetes mounts
// them: <dir>/<name>/<key>.
const SecretsDirEnv = "VMCP_SECRETS_DIR"

// Resolve reads the secret r points at. Surrounding whitespace (a trailing
// newline in a file) is removed.
func (r *SecretRef) Resolve() ([]byte, error) {
	var (
		b   []byte
		err error
	)
	switch {
	case r.File != "":
		b, err = os.ReadFile(r.File)
	case r.Env != "":
		v, ok := os.LookupEnv(r.Env)
		if !ok {
			return nil, fmt.Errorf("environment variable %s is not set", r.Env)
		}
		b = []byte(v)
	default:
		b, err = r.resolveNameKey()
	}
	if err != nil {
		return nil, err
	}
	b = []byte(strings.TrimSpace(string(b)))
	if len(b) == 0 {
		return nil, fmt.Errorf("secret %s is empty", r)
	}
	return b, nil
}

func (r *SecretRef) resolveNameKey() ([]byte, error) {
	if dir := os.Getenv(SecretsDirEnv); dir != "" {
		p := filepath.Join(dir, r.Name, r.Key)
		if b, err := os.ReadFile(p); err == nil {
			return b, nil
		}
	}
	env := r.EnvName()
	if v, ok := os.LookupEnv(env); ok {
		return []byte(v), nil
	}
	return nil, fmt.Errorf("secret %s not found: set %s or put it in $%s/%s/%s", r, env, SecretsDirEnv, r.Name, r.Key)
}

// EnvName is the environment variable a name/key reference is read from.
func (r *SecretRef) EnvName() string {
	up := strings.ToUpper(r.Name + "_" + r.Key)
	return "VMCP_SECRET_" + strings.Map(func(c rune) rune {
		if (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
			return c
		}
		return '_'
	}, up)
}

func (r *SecretRef) String() string {
	switch {
	case r.File != "":
		return "file " + r.File
	case r.Env != "":
		return "env " + r.Env
	}
	return r.Name + "/" + r.Key
}

// SecretEnvNames returns the environment variables the configuration's
// secret references read (explicit env ones, and the VMCP_SECRET_ name of
// name/key ones), so that child processes can be started without them.
func (c *Config) SecretEnvNames() []string {
	var names []string
	for _, r := range c.SecretRefs() {
		if r.Ref.Env != "" {
			names = append(names, r.Ref.Env)
		} else if r.Ref.Name != "" {
			names = append(names, r.Ref.EnvName())
		}
	}
	return names
}

// FieldSecretRef is a secret reference and the field path it sits at, like
// authServerConfig.hmacSecretRefs[0].
type FieldSecretRef struct {
	Field string
	Ref   SecretRef
}

// SecretRefs returns every secret reference of the configuration with its
// field path, in the order of the fields (map entries by key).
func (c *Config) SecretRefs() []FieldSecretRef {
	var refs []FieldSecretRef
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem(), path)
			}
		case reflect.Struct:
			if r, ok := v.Interface().(SecretRef); ok {
				refs = append(refs, FieldSecretRef{Field: path, Ref: r})
				return
			}
			for i := range v.NumField() {
				f := v.Type().Field(i)
				tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
				if !f.IsExported() || tag == "-" {
					continue
				}
				walk(v.Field(i), strings.TrimPrefix(path+"."+tag, "."))
			}
		case reflect.Slice:
			for i := range v.Len() {
				walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
			}
		case reflect.Map:
			keys := v.MapKeys()
			slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
			for _, k := range keys {
				walk(v.MapIndex(k), path+"."+k.String())
			}
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
	return refs
}
