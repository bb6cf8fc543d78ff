package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
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
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			if r, ok := v.Interface().(SecretRef); ok {
				if r.Env != "" {
					names = append(names, r.Env)
				} else if r.Name != "" {
					names = append(names, r.EnvName())
				}
				return
			}
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case reflect.Slice:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Map:
			for it := v.MapRange(); it.Next(); {
				walk(it.Value())
			}
		}
	}
	walk(reflect.ValueOf(c).Elem())
	return names
}
