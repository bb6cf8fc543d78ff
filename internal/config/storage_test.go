package config_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vmcp-dev/vmcp/internal/config"
)

// yamlBlocks returns the ```yaml blocks of a document.
func yamlBlocks(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, part := range strings.Split(string(b), "```yaml\n")[1:] {
		block, _, ok := strings.Cut(part, "```")
		if !ok {
			t.Fatalf("%s: an unterminated yaml block", file)
		}
		out = append(out, block)
	}
	return out
}

const authBase = `name: gw
incomingAuth:
  type: oidc
  oidcConfigRef: {name: gw}
authServerConfig:
  issuer: http://127.0.0.1:4483
  upstreamProviders:
  - name: idp
    type: oidc
    oidcConfig: {issuerUrl: https://idp.example.com, clientId: vmcp}
`

// TestStorageDocExamples: the storage examples of the documentation are
// valid configurations (docs/configuration.md's storage blocks, and the
// whole vmcp.yaml of the Kubernetes example in docs/operations.md).
func TestStorageDocExamples(t *testing.T) {
	n := 0
	for _, block := range yamlBlocks(t, "../../docs/configuration.md") {
		if !strings.HasPrefix(block, "storage:") {
			continue
		}
		for doc := range strings.SplitSeq(block, "---\n") {
			n++
			if _, err := config.Parse([]byte(authBase+doc), "configuration.md"); err != nil {
				t.Errorf("docs/configuration.md storage example:\n%s\n%v", doc, err)
			}
		}
	}
	for _, block := range yamlBlocks(t, "../../docs/operations.md") {
		if !strings.HasPrefix(block, "# vmcp.yaml") {
			continue
		}
		n++
		cfg, err := config.Parse([]byte(block), "operations.md")
		if err != nil {
			t.Errorf("docs/operations.md vmcp.yaml example: %v", err)
			continue
		}
		if cfg.Storage.Type != config.StorageRedis || cfg.Storage.Redis.Sentinel == nil {
			t.Errorf("docs/operations.md example storage = %+v, want redis through Sentinel", cfg.Storage)
		}
	}
	if n < 3 {
		t.Fatalf("found %d storage examples in the docs, want at least 3", n)
	}
}

func TestStorage(t *testing.T) {
	tests := []struct {
		name    string
		storage string
		wantErr string // substring; "" for valid
		check   func(*testing.T, *config.Storage)
	}{
		{name: "default", check: func(t *testing.T, s *config.Storage) {
			if s.Type != config.StorageEmbedded || s.Timeout.D() != config.DefaultStorageTimeout {
				t.Errorf("defaults: %+v", s)
			}
		}},
		{name: "redis prefix default", storage: "storage:\n  type: redis\n  encryptionKeyRefs: [{env: K}]\n  redis: {addr: 'r:6379'}\n",
			check: func(t *testing.T, s *config.Storage) {
				if s.Redis.KeyPrefix != "vmcp:gw:" {
					t.Errorf("keyPrefix = %q, want vmcp:gw:", s.Redis.KeyPrefix)
				}
			}},
		{name: "unknown type", storage: "storage: {type: etcd}\n", wantErr: `storage.type: "etcd" is not one of memory, embedded, redis`},
		{name: "redis without keys", storage: "storage:\n  type: redis\n  redis: {addr: 'r:6379'}\n", wantErr: "storage.encryptionKeyRefs: is required with redis"},
		{name: "redis without address", storage: "storage:\n  type: redis\n  encryptionKeyRefs: [{env: K}]\n", wantErr: "storage.redis: is required"},
		{name: "redis addr and sentinel", storage: "storage:\n  type: redis\n  encryptionKeyRefs: [{env: K}]\n  redis: {addr: 'r:6379', sentinel: {masterName: m, addrs: ['s:26379']}}\n",
			wantErr: "storage.redis: set addr or sentinel, not both"},
		{name: "sentinel without master", storage: "storage:\n  type: redis\n  encryptionKeyRefs: [{env: K}]\n  redis: {sentinel: {addrs: ['s:26379']}}\n",
			wantErr: "storage.redis.sentinel.masterName: is required"},
		{name: "bad addr", storage: "storage:\n  type: redis\n  encryptionKeyRefs: [{env: K}]\n  redis: {addr: redis}\n", wantErr: `storage.redis.addr: "redis" must be host:port`},
		{name: "redis block with embedded", storage: "storage:\n  redis: {addr: 'r:6379'}\n", wantErr: "storage.redis: is used only with storage.type: redis"},
		{name: "stateDir with memory", storage: "storage: {type: memory, stateDir: /x}\n", wantErr: "storage.stateDir: is used only with storage.type: embedded"},
		{name: "tls caFile and caRef", storage: "storage:\n  type: redis\n  encryptionKeyRefs: [{env: K}]\n  redis: {addr: 'r:6379', tls: {caFile: /ca.pem, caRef: {name: ca, key: ca.crt}}}\n",
			wantErr: "storage.redis.tls: set caFile or caRef, not both"},
		{name: "tls bad caRef", storage: "storage:\n  type: redis\n  encryptionKeyRefs: [{env: K}]\n  redis: {addr: 'r:6379', tls: {caRef: {name: ca}}}\n",
			wantErr: "storage.redis.tls.caRef: name and key go together"},
		{name: "tls caRef is a secret reference", storage: "storage:\n  type: redis\n  encryptionKeyRefs: [{env: K}]\n  redis: {addr: 'r:6379', tls: {caRef: {name: ca, key: ca.crt}}}\n",
			check: func(t *testing.T, s *config.Storage) {
				if s.Redis.TLS.CARef == nil || s.Redis.TLS.CARef.Name != "ca" {
					t.Errorf("tls = %+v", s.Redis.TLS)
				}
			}},
		{name: "bad key ref", storage: "storage:\n  encryptionKeyRefs: [{name: x}]\n", wantErr: "storage.encryptionKeyRefs[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(authBase+tc.storage), "test.yaml")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, cfg.Storage)
			}
		})
	}
}

// TestStorageSecretRefs: every secret of storage is a secret reference
// that SecretRefs lists, with its field: what the operator mounts into the
// pods and hashes so that a change rolls them.
func TestStorageSecretRefs(t *testing.T) {
	cfg, err := config.Parse([]byte(authBase+`storage:
  type: redis
  encryptionKeyRefs: [{name: keys, key: new}, {name: keys, key: old}]
  redis:
    sentinel: {masterName: m, addrs: ["s:26379"], passwordRef: {name: sentinel, key: password}}
    passwordRef: {name: redis, key: password}
    tls: {caRef: {name: redis-tls, key: ca.crt}}
`), "refs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range cfg.SecretRefs() {
		got = append(got, r.Field+"="+r.Ref.String())
	}
	want := []string{
		"storage.encryptionKeyRefs[0]=keys/new",
		"storage.encryptionKeyRefs[1]=keys/old",
		"storage.redis.sentinel.passwordRef=sentinel/password",
		"storage.redis.passwordRef=redis/password",
		"storage.redis.tls.caRef=redis-tls/ca.crt",
	}
	if !slices.Equal(got, want) {
		t.Errorf("SecretRefs = %q, want %q", got, want)
	}
}
