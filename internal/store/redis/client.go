package redis

import (
	"crypto/tls"
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Config says how to reach Redis: one server (or a proxy in front of
// several) at Addr, or the primary that Sentinel names.
type Config struct {
	// Addr is host:port of a single Redis server.
	Addr string
	// SentinelAddrs and MasterName address the primary through Redis
	// Sentinel (failover follows the sentinels).
	SentinelAddrs []string
	MasterName    string
	// SentinelUsername and SentinelPassword authenticate to the sentinels.
	SentinelUsername, SentinelPassword string
	// Username and Password authenticate to Redis (ACL user, or the
	// password alone for requirepass).
	Username, Password string
	// DB is the database number.
	DB int
	// TLS, if not nil, is used for every connection.
	TLS *tls.Config
	// Timeout bounds dialing and each read and write. Default: 2s.
	Timeout time.Duration
}

// NewClient returns a client for cfg. It does not connect: the first
// command does, so that vmcp starts while Redis is down.
func NewClient(cfg Config) (goredis.UniversalClient, error) {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	switch {
	case len(cfg.SentinelAddrs) > 0:
		if cfg.MasterName == "" {
			return nil, errors.New("redis: sentinel addresses need a master name")
		}
		return goredis.NewFailoverClient(&goredis.FailoverOptions{
			MasterName: cfg.MasterName, SentinelAddrs: cfg.SentinelAddrs,
			SentinelUsername: cfg.SentinelUsername, SentinelPassword: cfg.SentinelPassword,
			Username: cfg.Username, Password: cfg.Password, DB: cfg.DB, TLSConfig: cfg.TLS,
			DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout, PoolTimeout: timeout,
			ContextTimeoutEnabled: true, MaxRetries: 1, DisableIdentity: true, Protocol: 2,
		}), nil
	case cfg.Addr != "":
		return goredis.NewClient(&goredis.Options{
			Addr: cfg.Addr, Username: cfg.Username, Password: cfg.Password, DB: cfg.DB, TLSConfig: cfg.TLS,
			DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout, PoolTimeout: timeout,
			ContextTimeoutEnabled: true, MaxRetries: 1, DisableIdentity: true, Protocol: 2,
		}), nil
	}
	return nil, errors.New("redis: no address: set an address or sentinel addresses")
}
