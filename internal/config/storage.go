package config

import (
	"fmt"
	"net"
	"slices"
	"time"
)

// Storage types.
const (
	StorageMemory   = "memory"
	StorageEmbedded = "embedded"
	StorageRedis    = "redis"
)

// Defaults of storage.
const (
	DefaultStorageTimeout = 2 * time.Second
	// DefaultStateDirName is the directory under $XDG_STATE_HOME (or
	// ~/.local/state) of the embedded store.
	DefaultStateDirName = "vmcp"
)

// Storage says where the embedded authorization server keeps what it
// must not forget: registered clients, tokens, users' upstream grants,
// pending logins, the keys it generated, and the MCP sessions. Without
// authServerConfig only type redis is used (it shares the MCP sessions
// among replicas). In a VirtualMCPServer it is spec.storage.
type Storage struct {
	// Type is embedded (default: a database file in StateDir, for one
	// process), redis (shared by several replicas) or memory (lost on
	// restart).
	Type string `yaml:"type"`
	// StateDir is the embedded store's directory. Default: the --state-dir
	// flag, else $XDG_STATE_HOME/vmcp, else ~/.local/state/vmcp.
	StateDir string `yaml:"stateDir"`
	// EncryptionKeyRefs are the keys that seal secrets at rest (AES-256-GCM;
	// each at least 32 bytes): the first seals, every one opens, so a key
	// is rotated by putting the new one first. Required for redis; for
	// embedded the default is a key generated into StateDir/storage.key.
	EncryptionKeyRefs []SecretRef `yaml:"encryptionKeyRefs"`
	// Timeout bounds each call to Redis. Default: 2s.
	Timeout Duration `yaml:"timeout"`
	// Redis says how to reach Redis, for type redis.
	Redis *RedisStorage `yaml:"redis"`
}

// RedisStorage addresses Redis: one server (addr) or a primary through
// Sentinel (sentinel). Redis Cluster is not supported.
type RedisStorage struct {
	// Addr is host:port of the Redis server.
	Addr string `yaml:"addr"`
	// Sentinel finds the primary through Redis Sentinel.
	Sentinel *RedisSentinel `yaml:"sentinel"`
	// Username is the ACL user (default: none, the default user).
	Username string `yaml:"username"`
	// PasswordRef is the password (ACL user's, or requirepass).
	PasswordRef *SecretRef `yaml:"passwordRef"`
	// DB is the database number. Default: 0.
	DB int `yaml:"db"`
	// KeyPrefix starts every key vmcp writes. Default: "vmcp:<name>:", so
	// that gateways sharing a Redis keep apart.
	KeyPrefix string `yaml:"keyPrefix"`
	// TLS, if set, is used for every connection.
	TLS *RedisTLS `yaml:"tls"`
}

// RedisSentinel is a Sentinel deployment.
type RedisSentinel struct {
	// MasterName is the name the sentinels monitor the primary under.
	MasterName string `yaml:"masterName"`
	// Addrs are the sentinels' host:port.
	Addrs []string `yaml:"addrs"`
	// Username and PasswordRef authenticate to the sentinels.
	Username    string     `yaml:"username"`
	PasswordRef *SecretRef `yaml:"passwordRef"`
}

// RedisTLS configures TLS to Redis.
type RedisTLS struct {
	// CAFile is a PEM bundle of the CAs to trust. Default: the system's.
	CAFile string `yaml:"caFile"`
	// CARef is a PEM bundle of the CAs to trust, read from a secret
	// reference: in Kubernetes a Secret's key, such as the ca.crt of a
	// cert-manager Certificate; standalone, an alternative to caFile.
	// Default: the system's.
	CARef *SecretRef `yaml:"caRef"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `yaml:"serverName"`
	// InsecureSkipVerify turns certificate checks off. Tests only.
	InsecureSkipVerify bool `yaml:"insecureSkipVerify"`
}

func (c *Config) applyStorageDefaults() {
	if c.Storage == nil {
		c.Storage = &Storage{}
	}
	s := c.Storage
	setDefault(&s.Type, StorageEmbedded)
	setDefault(&s.Timeout, Duration(DefaultStorageTimeout))
	if s.Redis != nil {
		setDefault(&s.Redis.KeyPrefix, "vmcp:"+c.Name+":")
	}
}

func (c *Config) validateStorage(v *validator) {
	s := c.Storage
	const f = "storage"
	switch s.Type {
	case StorageMemory, StorageEmbedded, StorageRedis:
	default:
		v.add(f+".type", "%q is not one of memory, embedded, redis", s.Type)
	}
	for i, r := range s.EncryptionKeyRefs {
		validateSecretRef(v, fmt.Sprintf("%s.encryptionKeyRefs[%d]", f, i), &r)
	}
	if s.Type != StorageRedis && s.Redis != nil {
		v.add(f+".redis", "is used only with storage.type: redis")
	}
	if s.Type != StorageEmbedded && s.StateDir != "" {
		v.add(f+".stateDir", "is used only with storage.type: embedded")
	}
	if s.Type != StorageRedis {
		return
	}
	if len(s.EncryptionKeyRefs) == 0 {
		v.add(f+".encryptionKeyRefs", "is required with redis: every replica seals and opens with the same keys (at least 32 bytes each)")
	}
	r := s.Redis
	if r == nil {
		v.add(f+".redis", "is required with storage.type: redis (addr, or sentinel)")
		return
	}
	rf := f + ".redis"
	switch {
	case r.Addr != "" && r.Sentinel != nil:
		v.add(rf, "set addr or sentinel, not both")
	case r.Addr != "":
		validateHostPort(v, rf+".addr", r.Addr)
	case r.Sentinel != nil:
		sf := rf + ".sentinel"
		if r.Sentinel.MasterName == "" {
			v.add(sf+".masterName", "is required")
		}
		if len(r.Sentinel.Addrs) == 0 {
			v.add(sf+".addrs", "needs at least one sentinel host:port")
		}
		for i, a := range r.Sentinel.Addrs {
			validateHostPort(v, fmt.Sprintf("%s.addrs[%d]", sf, i), a)
		}
		if r.Sentinel.PasswordRef != nil {
			validateSecretRef(v, sf+".passwordRef", r.Sentinel.PasswordRef)
		}
	default:
		v.add(rf, "set addr (host:port) or sentinel {masterName, addrs}")
	}
	if r.PasswordRef != nil {
		validateSecretRef(v, rf+".passwordRef", r.PasswordRef)
	}
	if t := r.TLS; t != nil && t.CARef != nil {
		if t.CAFile != "" {
			v.add(rf+".tls", "set caFile or caRef, not both")
		}
		validateSecretRef(v, rf+".tls.caRef", t.CARef)
	}
	if r.DB < 0 || r.DB > 15 {
		v.add(rf+".db", "must be between 0 and 15")
	}
}

func validateHostPort(v *validator, field, addr string) {
	if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
		v.add(field, "%q must be host:port", addr)
	}
}

// storageNotes are the notes about storage settings that take no effect.
func (c *Config) storageNotes() []string {
	if c.AuthServerConfig == nil && c.Storage != nil && (c.Storage.Redis != nil || c.Storage.StateDir != "" ||
		!slices.Contains([]string{"", StorageEmbedded}, c.Storage.Type) || len(c.Storage.EncryptionKeyRefs) > 0) {
		return []string{"storage is used by the embedded authorization server only (authServerConfig); without it nothing is stored"}
	}
	return nil
}
