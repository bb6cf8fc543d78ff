package app

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/config"
	"github.com/vmcp-dev/vmcp/internal/frontend"
	"github.com/vmcp-dev/vmcp/internal/mcpsession"
	"github.com/vmcp-dev/vmcp/internal/store/bolt"
	"github.com/vmcp-dev/vmcp/internal/store/memory"
	"github.com/vmcp-dev/vmcp/internal/store/redis"
	"github.com/vmcp-dev/vmcp/internal/store/seal"
)

// KeyFileName is the generated encryption key of the embedded store, in
// the state directory, when storage.encryptionKeyRefs is not set.
const KeyFileName = "storage.key"

// openedStore is the authorization server's store, with what readiness
// and shutdown need of it.
type openedStore struct {
	authserver.Store
	ping  func(context.Context) error // nil: always reachable
	close func() error                // nil: nothing to close
}

// openStore opens the store cfg.Storage names. It does not wait for
// Redis: a Redis that is down makes vmcp start unready, not fail.
func (a *App) openStore(s *config.Storage) (*openedStore, error) {
	switch s.Type {
	case config.StorageMemory:
		a.logger.Warn("storage.type is memory: a restart forgets every registered client, token and login")
		return &openedStore{Store: memory.New(nil)}, nil
	case config.StorageEmbedded:
		dir, err := a.stateDir(s)
		if err != nil {
			return nil, err
		}
		keys, err := encryptionKeys(s.EncryptionKeyRefs, dir)
		if err != nil {
			return nil, err
		}
		st, err := bolt.Open(bolt.Options{Dir: dir, Keys: keys})
		if err != nil {
			if errors.Is(err, bolt.ErrLocked) {
				return nil, fmt.Errorf("storage: %w (set storage.stateDir or --state-dir to run another gateway)", err)
			}
			return nil, fmt.Errorf("storage: %w", err)
		}
		a.logger.Info("storage: embedded", "file", st.Path(), "sealing_key", keys.SealingKeyID())
		return &openedStore{Store: st, ping: st.Ping, close: st.Close}, nil
	case config.StorageRedis:
		keys, err := encryptionKeys(s.EncryptionKeyRefs, "")
		if err != nil {
			return nil, err
		}
		rc, err := redisConfig(s)
		if err != nil {
			return nil, err
		}
		client, err := redis.NewClient(rc)
		if err != nil {
			return nil, fmt.Errorf("storage.redis: %w", err)
		}
		st, err := redis.New(redis.Options{Client: client, Keys: keys, Prefix: s.Redis.KeyPrefix, Timeout: s.Timeout.D(), Logger: a.logger})
		if err != nil {
			client.Close()
			return nil, fmt.Errorf("storage.redis: %w", err)
		}
		a.logger.Info("storage: redis", "addr", rc.Addr, "sentinels", rc.SentinelAddrs, "prefix", s.Redis.KeyPrefix, "sealing_key", keys.SealingKeyID())
		return &openedStore{Store: st, ping: st.Ping, close: st.Close}, nil
	}
	return nil, fmt.Errorf("storage.type %q is not one of memory, embedded, redis", s.Type)
}

// stateDir is the embedded store's directory: --state-dir, then
// storage.stateDir, then $XDG_STATE_HOME/vmcp, then ~/.local/state/vmcp.
func (a *App) stateDir(s *config.Storage) (string, error) {
	if a.opts.StateDir != "" {
		return a.opts.StateDir, nil
	}
	if s.StateDir != "" {
		return s.StateDir, nil
	}
	return DefaultStateDir()
}

// DefaultStateDir is $XDG_STATE_HOME/vmcp, or ~/.local/state/vmcp.
func DefaultStateDir() (string, error) {
	if x := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, config.DefaultStateDirName), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("storage: no state directory (set storage.stateDir or --state-dir): %w", err)
	}
	return filepath.Join(home, ".local", "state", config.DefaultStateDirName), nil
}

// encryptionKeys resolves storage.encryptionKeyRefs; without any, and with
// a state directory, the key in dir/storage.key (generated on first use).
func encryptionKeys(refs []config.SecretRef, dir string) (*seal.Keys, error) {
	var secrets [][]byte
	for i, r := range refs {
		b, err := r.Resolve()
		if err != nil {
			return nil, fmt.Errorf("storage.encryptionKeyRefs[%d]: %w", i, err)
		}
		secrets = append(secrets, b)
	}
	if len(secrets) == 0 {
		if dir == "" {
			return nil, errors.New("storage.encryptionKeyRefs: at least one key is required")
		}
		b, err := keyFile(dir)
		if err != nil {
			return nil, err
		}
		secrets = append(secrets, b)
	}
	keys, err := seal.New(secrets)
	if err != nil {
		return nil, fmt.Errorf("storage.encryptionKeyRefs: %w", err)
	}
	return keys, nil
}

// keyFile reads dir/storage.key, creating it (0600, a random key) if it
// does not exist. A key file others can read is refused.
func keyFile(dir string) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	p := filepath.Join(dir, KeyFileName)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, werr := io.WriteString(f, rand.Text()+rand.Text()+"\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(p)
			return nil, fmt.Errorf("writing %s: %w", p, werr)
		}
	} else if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("creating %s: %w", p, err)
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %v): chmod 600 it", p, st.Mode().Perm())
	}
	b, err := (&config.SecretRef{File: p}).Resolve()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	return b, nil
}

// redisConfig turns storage.redis into a client configuration, secrets
// resolved.
func redisConfig(s *config.Storage) (redis.Config, error) {
	r := s.Redis
	rc := redis.Config{Addr: r.Addr, Username: r.Username, DB: r.DB, Timeout: s.Timeout.D()}
	if r.PasswordRef != nil {
		b, err := r.PasswordRef.Resolve()
		if err != nil {
			return rc, fmt.Errorf("storage.redis.passwordRef: %w", err)
		}
		rc.Password = string(b)
	}
	if sn := r.Sentinel; sn != nil {
		rc.MasterName, rc.SentinelAddrs, rc.SentinelUsername = sn.MasterName, sn.Addrs, sn.Username
		if sn.PasswordRef != nil {
			b, err := sn.PasswordRef.Resolve()
			if err != nil {
				return rc, fmt.Errorf("storage.redis.sentinel.passwordRef: %w", err)
			}
			rc.SentinelPassword = string(b)
		}
	}
	if t := r.TLS; t != nil {
		rc.TLS = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // tests only, documented
		pem, src, err := caBundle(t)
		if err != nil {
			return rc, err
		}
		if pem != nil {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return rc, fmt.Errorf("%s holds no PEM certificate", src)
			}
			rc.TLS.RootCAs = pool
		}
	}
	return rc, nil
}

// caBundle reads the CAs storage.redis.tls trusts (caFile or caRef), and
// names where they came from; nil without either (the system's roots).
func caBundle(t *config.RedisTLS) (pem []byte, src string, err error) {
	switch {
	case t.CARef != nil:
		src = "storage.redis.tls.caRef (" + t.CARef.String() + ")"
		pem, err = t.CARef.Resolve()
	case t.CAFile != "":
		src = "storage.redis.tls.caFile " + t.CAFile
		pem, err = os.ReadFile(t.CAFile)
	default:
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", src, err)
	}
	return pem, src, nil
}

// closeStore closes the store, if one is open.
func (a *App) closeStore() {
	if a.store == nil || a.store.close == nil {
		return
	}
	if err := a.store.close(); err != nil {
		a.logger.Warn("closing the storage", "error", err)
	}
	a.store = nil
}

// dependencies are what readiness checks besides the backends: the
// authorization server's storage (reachable, and the server's keys
// loaded from it).
func (a *App) dependencies() []frontend.Dependency {
	if a.authServer == nil {
		if a.store == nil || a.store.ping == nil {
			return nil
		}
		ping := a.store.ping // the sessions' store only
		return []frontend.Dependency{{Name: "storage", Check: ping}}
	}
	st, as := a.store, a.authServer
	return []frontend.Dependency{{Name: "storage", Check: func(ctx context.Context) error {
		if st.ping != nil {
			if err := st.ping(ctx); err != nil {
				return err
			}
		}
		return as.Ready(ctx)
	}}}
}

// sessionStore is where the MCP sessions are shared (any replica serves
// any session, a restart keeps them): the authorization server's store,
// unless it is in memory (one process, which holds its sessions anyway).
func (a *App) sessionStore() mcpsession.Store {
	if a.store == nil || a.cfg.Storage.Type == config.StorageMemory {
		return nil
	}
	st, _ := a.store.Store.(mcpsession.Store)
	return st
}
