// Package bolt is the embedded, persistent [authserver.Store] of a single
// vmcp process: one bbolt file in the state directory. Every value that
// grants access is sealed ([seal]); token records are found by the hash
// of their signature, pending logins by the hash of their state. Writes
// are transactions, fsynced before they return, so what a client was told
// survives a crash. The file is locked: a second process on the same
// state directory is refused.
package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/mcpsession"
	"github.com/vmcp-dev/vmcp/internal/store/lease"
	"github.com/vmcp-dev/vmcp/internal/store/seal"
)

// FileName is the database file in the state directory.
const FileName = "vmcp.db"

// Options configure [Open].
type Options struct {
	// Dir is the state directory; it is created (0700) if missing.
	Dir string
	// Keys seal values at rest. Required.
	Keys *seal.Keys
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// LockTimeout bounds the wait for the file lock. Default: 1s.
	LockTimeout time.Duration
}

// Store is the bolt-backed store.
type Store struct {
	db    *bbolt.DB
	keys  *seal.Keys
	now   func() time.Time
	locks lease.Table

	writes atomic.Uint64 // writes so far: every sweepEvery-th sweeps

	watchers mcpsession.Watchers // of session changes (sessions.go)
}

var _ authserver.Store = (*Store)(nil)

// Buckets.
var (
	bClients   = []byte("clients")
	bTokens    = []byte("tokens")   // kind 0 hash(sig) -> token record
	bFamilies  = []byte("families") // kind 0 request ID 0 hash(sig) -> nothing
	bGrants    = []byte("grants")   // id -> grant record
	bPending   = []byte("pending")  // hash(state) -> pending record
	bSecrets   = []byte("secrets")  // name -> sealed secret
	bSessions  = []byte("sessions") // mcpsession.Key(id) -> session record (sessions.go)
	allBuckets = [][]byte{bClients, bTokens, bFamilies, bGrants, bPending, bSecrets, bSessions}
)

// ErrLocked means another process has the database open.
var ErrLocked = errors.New("the state directory is in use by another vmcp process")

// Open opens (or creates) the database in opts.Dir.
func Open(opts Options) (*Store, error) {
	if opts.Keys == nil {
		return nil, errors.New("bolt store: no encryption keys")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	path := filepath.Join(opts.Dir, FileName)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.LockTimeout, NoFreelistSync: true})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	s := &Store{db: db, keys: opts.Keys, now: opts.Now}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return s.sweep(tx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initializing %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Path is the database file.
func (s *Store) Path() string { return s.db.Path() }

// Ping checks that the database is open.
func (s *Store) Ping(context.Context) error {
	return s.view(context.Background(), func(*bbolt.Tx) error { return nil })
}

// unavailable wraps a database failure.
func unavailable(err error) error {
	if err == nil || errors.Is(err, authserver.ErrNotFound) || errors.Is(err, authserver.ErrInactive) ||
		errors.Is(err, authserver.ErrConflict) || errors.Is(err, errExists) ||
		errors.Is(err, mcpsession.ErrNotFound) || errors.Is(err, mcpsession.ErrConflict) {
		return err
	}
	return fmt.Errorf("%w: bolt: %w", authserver.ErrUnavailable, err)
}

func (s *Store) view(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", authserver.ErrUnavailable, err)
	}
	return unavailable(s.db.View(fn))
}

// sweepEvery is how many writes pass between sweeps of expired entries.
const sweepEvery = 1024

func (s *Store) update(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", authserver.ErrUnavailable, err)
	}
	sweep := s.writes.Add(1)%sweepEvery == 0
	return unavailable(s.db.Update(func(tx *bbolt.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if sweep {
			return s.sweep(tx)
		}
		return nil
	}))
}

// sweep deletes expired token records, grants and pending logins.
func (s *Store) sweep(tx *bbolt.Tx) error {
	now := s.now()
	var dead [][]byte
	tb := tx.Bucket(bTokens)
	var fams [][]byte
	err := tb.ForEach(func(k, v []byte) error {
		r, err := decodeToken(v)
		if err == nil && r.expired(now) {
			dead = append(dead, k)
			fams = append(fams, familyKey(k, r.rid))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, k := range dead {
		if err := tb.Delete(k); err != nil {
			return err
		}
		if err := tx.Bucket(bFamilies).Delete(fams[i]); err != nil {
			return err
		}
	}
	for _, b := range []struct {
		name []byte
		exp  func([]byte) time.Time
	}{
		{bGrants, func(v []byte) time.Time { g, _ := decodeGrant(v); return g.exp }},
		{bPending, func(v []byte) time.Time { p, _ := decodePending(v); return p.exp }},
		{bClients, func(v []byte) time.Time { c, _ := decodeClient(v); return c.exp }},
		{bSessions, func(v []byte) time.Time { r, _ := decodeSession(v); return r.exp }},
	} {
		bucket := tx.Bucket(b.name)
		dead = dead[:0]
		_ = bucket.ForEach(func(k, v []byte) error {
			if e := b.exp(v); !e.IsZero() && !now.Before(e) {
				dead = append(dead, k)
			}
			return nil
		})
		for _, k := range dead {
			if err := bucket.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// Records. Times are Unix nanoseconds, 0 for none.

func putTime(b []byte, t time.Time) {
	var n int64
	if !t.IsZero() {
		n = t.UnixNano()
	}
	binary.BigEndian.PutUint64(b, uint64(n))
}

func getTime(b []byte) time.Time {
	n := int64(binary.BigEndian.Uint64(b))
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// token is a stored token record: active (1 byte), expiry (8), request ID
// length (2) and request ID, then the sealed rest.
type token struct {
	active bool
	exp    time.Time
	rid    string
	sealed []byte
}

func (r token) expired(now time.Time) bool { return !r.exp.IsZero() && now.After(r.exp) }

func (r token) encode() []byte {
	b := make([]byte, 11, 11+len(r.rid)+len(r.sealed))
	if r.active {
		b[0] = 1
	}
	putTime(b[1:], r.exp)
	binary.BigEndian.PutUint16(b[9:], uint16(len(r.rid)))
	b = append(b, r.rid...)
	return append(b, r.sealed...)
}

func decodeToken(v []byte) (token, error) {
	if len(v) < 11 {
		return token{}, errors.New("bolt: short token record")
	}
	n := int(binary.BigEndian.Uint16(v[9:]))
	if len(v) < 11+n {
		return token{}, errors.New("bolt: short token record")
	}
	return token{active: v[0] == 1, exp: getTime(v[1:]), rid: string(v[11 : 11+n]), sealed: v[11+n:]}, nil
}

func tokenKey(kind authserver.TokenKind, sig string) []byte {
	return []byte(string(kind) + "\x00" + seal.Hash(sig))
}

// familyKey is the family index entry of the token at key k (kind 0 hash).
func familyKey(k []byte, rid string) []byte {
	for i, c := range k {
		if c == 0 {
			return []byte(string(k[:i]) + "\x00" + rid + "\x00" + string(k[i+1:]))
		}
	}
	return nil
}

func familyPrefix(kind authserver.TokenKind, rid string) []byte {
	return []byte(string(kind) + "\x00" + rid + "\x00")
}

func sealContext(kind string, key []byte) string { return kind + ":" + string(key) }

// clientRec is a stored client: created, used and expiry times (8 bytes
// each; what eviction and expiry need, readable without the key), then the
// sealed client.
type clientRec struct {
	created, used, exp time.Time
	sealed             []byte
}

func (c clientRec) encode() []byte {
	b := make([]byte, 24, 24+len(c.sealed))
	putTime(b, c.created)
	putTime(b[8:], c.used)
	putTime(b[16:], c.exp)
	return append(b, c.sealed...)
}

func decodeClient(v []byte) (clientRec, error) {
	if len(v) < 24 {
		return clientRec{}, errors.New("bolt: short client record")
	}
	return clientRec{created: getTime(v), used: getTime(v[8:]), exp: getTime(v[16:]), sealed: v[24:]}, nil
}

func (c clientRec) expired(now time.Time) bool { return !c.exp.IsZero() && !now.Before(c.exp) }

func (s *Store) sealClient(c *authserver.Client) (clientRec, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return clientRec{}, err
	}
	return clientRec{created: c.CreatedAt, used: c.UsedAt, exp: c.ExpiresAt, sealed: s.keys.Seal(b, sealContext("client", []byte(c.ID)))}, nil
}

// CreateClient stores c; it fails if the ID is taken by a live client.
// With max > 0 and max live clients stored, it first forgets the
// never-used registration created first, or fails with
// [authserver.ErrLimit]; all in one transaction.
func (s *Store) CreateClient(ctx context.Context, c *authserver.Client, max int) error {
	rec, err := s.sealClient(c)
	if err != nil {
		return err
	}
	k := []byte(c.ID)
	return s.update(ctx, func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bClients)
		now := s.now()
		if v := bk.Get(k); v != nil {
			if old, err := decodeClient(v); err != nil || !old.expired(now) {
				return fmt.Errorf("client %q %w", c.ID, errExists)
			}
		}
		if max > 0 {
			var live int
			var victim []byte
			var victimCreated time.Time
			var dead [][]byte
			err := bk.ForEach(func(id, v []byte) error {
				r, err := decodeClient(v)
				if err != nil {
					return err
				}
				if r.expired(now) {
					dead = append(dead, id)
					return nil
				}
				live++
				if r.used.IsZero() && !r.exp.IsZero() && (victim == nil || r.created.Before(victimCreated)) {
					victim, victimCreated = append([]byte(nil), id...), r.created
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, id := range dead {
				if err := bk.Delete(id); err != nil {
					return err
				}
			}
			if live >= max {
				if victim == nil {
					return authserver.ErrLimit
				}
				if err := bk.Delete(victim); err != nil {
					return err
				}
			}
		}
		return bk.Put(k, rec.encode())
	})
}

var errExists = errors.New("already exists")

// liveClient reads the unexpired client record of id.
func (s *Store) liveClient(tx *bbolt.Tx, id string) (clientRec, error) {
	v := tx.Bucket(bClients).Get([]byte(id))
	if v == nil {
		return clientRec{}, authserver.ErrNotFound
	}
	r, err := decodeClient(v)
	if err != nil {
		return clientRec{}, err
	}
	if r.expired(s.now()) {
		return clientRec{}, authserver.ErrNotFound
	}
	return r, nil
}

// GetClient returns the client with id, unless it expired.
func (s *Store) GetClient(ctx context.Context, id string) (*authserver.Client, error) {
	var c *authserver.Client
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		r, err := s.liveClient(tx, id)
		if err != nil {
			return err
		}
		c, err = openJSON[authserver.Client](s.keys, r.sealed, sealContext("client", []byte(id)))
		return err
	})
	return c, err
}

// TouchClient records a use of the client with id.
func (s *Store) TouchClient(ctx context.Context, id string, usedAt, expiresAt time.Time) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		r, err := s.liveClient(tx, id)
		if err != nil {
			return err
		}
		c, err := openJSON[authserver.Client](s.keys, r.sealed, sealContext("client", []byte(id)))
		if err != nil {
			return err
		}
		c.UsedAt, c.ExpiresAt = usedAt, expiresAt
		rec, err := s.sealClient(c)
		if err != nil {
			return err
		}
		return tx.Bucket(bClients).Put([]byte(id), rec.encode())
	})
}

func openJSON[T any](keys *seal.Keys, sealed []byte, context string) (*T, error) {
	b, err := keys.Open(sealed, context)
	if err != nil {
		return nil, err
	}
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("decoding a stored value: %w", err)
	}
	return v, nil
}

// CreateToken stores r under the hash of its signature.
func (s *Store) CreateToken(ctx context.Context, kind authserver.TokenKind, r *authserver.TokenRecord) error {
	k := tokenKey(kind, r.Signature)
	rec := token{active: r.Active, exp: r.ExpiresAt, rid: r.RequestID, sealed: s.keys.Seal(r.Request, sealContext("token", k))}
	return s.update(ctx, func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bTokens).Put(k, rec.encode()); err != nil {
			return err
		}
		return tx.Bucket(bFamilies).Put(familyKey(k, r.RequestID), nil)
	})
}

// getToken reads the live record at k.
func (s *Store) getToken(tx *bbolt.Tx, k []byte) (token, error) {
	v := tx.Bucket(bTokens).Get(k)
	if v == nil {
		return token{}, authserver.ErrNotFound
	}
	r, err := decodeToken(v)
	if err != nil {
		return token{}, err
	}
	if r.expired(s.now()) {
		return token{}, authserver.ErrNotFound
	}
	return r, nil
}

// GetToken returns the record of signature, active or not, unless expired.
func (s *Store) GetToken(ctx context.Context, kind authserver.TokenKind, signature string) (*authserver.TokenRecord, error) {
	k := tokenKey(kind, signature)
	var out *authserver.TokenRecord
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		r, err := s.getToken(tx, k)
		if err != nil {
			return err
		}
		req, err := s.keys.Open(r.sealed, sealContext("token", k))
		if err != nil {
			return err
		}
		out = &authserver.TokenRecord{Signature: signature, RequestID: r.rid, Active: r.active, ExpiresAt: r.exp, Request: req}
		return nil
	})
	return out, err
}

// TokenActive reports whether the record of signature is active.
func (s *Store) TokenActive(ctx context.Context, kind authserver.TokenKind, signature string) (bool, error) {
	k := tokenKey(kind, signature)
	var active bool
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		r, err := s.getToken(tx, k)
		active = r.active
		return err
	})
	return active, err
}

// DeleteToken removes the record of signature, if any.
func (s *Store) DeleteToken(ctx context.Context, kind authserver.TokenKind, signature string) error {
	k := tokenKey(kind, signature)
	return s.update(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bTokens).Get(k)
		if v == nil {
			return nil
		}
		if r, err := decodeToken(v); err == nil {
			if err := tx.Bucket(bFamilies).Delete(familyKey(k, r.rid)); err != nil {
				return err
			}
		}
		return tx.Bucket(bTokens).Delete(k)
	})
}

// DeactivateToken marks the active record of signature inactive.
func (s *Store) DeactivateToken(ctx context.Context, kind authserver.TokenKind, signature string) error {
	k := tokenKey(kind, signature)
	return s.update(ctx, func(tx *bbolt.Tx) error {
		r, err := s.getToken(tx, k)
		if err != nil {
			return err
		}
		if !r.active {
			return authserver.ErrInactive
		}
		r.active = false
		return tx.Bucket(bTokens).Put(k, r.encode())
	})
}

// family calls fn with the token key of every member of a family.
func family(tx *bbolt.Tx, kind authserver.TokenKind, rid string, fn func(famKey, tokKey []byte) error) error {
	prefix := familyPrefix(kind, rid)
	c := tx.Bucket(bFamilies).Cursor()
	var keys [][]byte
	for k, _ := c.Seek(prefix); k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, fk := range keys {
		if err := fn(fk, []byte(string(kind)+"\x00"+string(fk[len(prefix):]))); err != nil {
			return err
		}
	}
	return nil
}

// DeactivateFamily marks every record of the family inactive.
func (s *Store) DeactivateFamily(ctx context.Context, kind authserver.TokenKind, requestID string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		tb := tx.Bucket(bTokens)
		return family(tx, kind, requestID, func(_, k []byte) error {
			v := tb.Get(k)
			if v == nil {
				return nil
			}
			r, err := decodeToken(v)
			if err != nil || !r.active {
				return err
			}
			r.active = false
			return tb.Put(k, r.encode())
		})
	})
}

// DeleteFamily removes every record of the family.
func (s *Store) DeleteFamily(ctx context.Context, kind authserver.TokenKind, requestID string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		return family(tx, kind, requestID, func(fk, k []byte) error {
			if err := tx.Bucket(bTokens).Delete(k); err != nil {
				return err
			}
			return tx.Bucket(bFamilies).Delete(fk)
		})
	})
}

// grantRec is a stored grant: revoked (1 byte), version (8), expiry (8),
// then the sealed grant.
type grantRec struct {
	revoked bool
	version int64
	exp     time.Time
	sealed  []byte
}

func (g grantRec) encode() []byte {
	b := make([]byte, 17, 17+len(g.sealed))
	if g.revoked {
		b[0] = 1
	}
	binary.BigEndian.PutUint64(b[1:], uint64(g.version))
	putTime(b[9:], g.exp)
	return append(b, g.sealed...)
}

func decodeGrant(v []byte) (grantRec, error) {
	if len(v) < 17 {
		return grantRec{}, errors.New("bolt: short grant record")
	}
	return grantRec{revoked: v[0] == 1, version: int64(binary.BigEndian.Uint64(v[1:])), exp: getTime(v[9:]), sealed: v[17:]}, nil
}

func (g grantRec) expired(now time.Time) bool { return !g.exp.IsZero() && !now.Before(g.exp) }

// liveGrant reads the unexpired grant record of id.
func (s *Store) liveGrant(tx *bbolt.Tx, id string) (grantRec, error) {
	v := tx.Bucket(bGrants).Get([]byte(id))
	if v == nil {
		return grantRec{}, authserver.ErrNotFound
	}
	g, err := decodeGrant(v)
	if err != nil {
		return grantRec{}, err
	}
	if g.expired(s.now()) {
		return grantRec{}, authserver.ErrNotFound
	}
	return g, nil
}

// PutGrant stores g if the stored grant is the version g.Version.
func (s *Store) PutGrant(ctx context.Context, g *authserver.Grant) error {
	c := *g
	c.Version++
	b, err := json.Marshal(&c)
	if err != nil {
		return err
	}
	k := []byte(g.ID)
	rec := grantRec{revoked: g.Revoked, version: c.Version, exp: g.ExpiresAt, sealed: s.keys.Seal(b, sealContext("grant", k))}
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		old, err := s.liveGrant(tx, g.ID)
		switch {
		case errors.Is(err, authserver.ErrNotFound):
			if g.Version != 0 {
				return authserver.ErrConflict
			}
		case err != nil:
			return err
		case old.version != g.Version:
			return authserver.ErrConflict
		}
		return tx.Bucket(bGrants).Put(k, rec.encode())
	})
	if err == nil {
		g.Version = c.Version
	}
	return err
}

// GetGrant returns the grant with id.
func (s *Store) GetGrant(ctx context.Context, id string) (*authserver.Grant, error) {
	var out *authserver.Grant
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		g, err := s.liveGrant(tx, id)
		if err != nil {
			return err
		}
		out, err = openJSON[authserver.Grant](s.keys, g.sealed, sealContext("grant", []byte(id)))
		return err
	})
	return out, err
}

// GrantRevoked reports whether the grant with id is revoked.
func (s *Store) GrantRevoked(ctx context.Context, id string) (bool, error) {
	var revoked bool
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		g, err := s.liveGrant(tx, id)
		revoked = g.revoked
		return err
	})
	return revoked, err
}

// DeleteGrant removes the grant with id.
func (s *Store) DeleteGrant(ctx context.Context, id string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error { return tx.Bucket(bGrants).Delete([]byte(id)) })
}

// LockGrant takes the lease on id for owner (the file is one process's:
// leases live in memory).
func (s *Store) LockGrant(_ context.Context, id, owner string, ttl time.Duration) (bool, error) {
	return s.locks.Acquire(id, owner, ttl, s.now()), nil
}

// UnlockGrant ends owner's lease on id.
func (s *Store) UnlockGrant(_ context.Context, id, owner string) error {
	s.locks.Release(id, owner)
	return nil
}

// pendingRec is a stored pending login: expiry (8 bytes), the client ID's
// length (2) and the client ID (what the limits count), then the sealed
// entry.
type pendingRec struct {
	exp    time.Time
	client string
	sealed []byte
}

func (p pendingRec) encode() []byte {
	b := make([]byte, 10, 10+len(p.client)+len(p.sealed))
	putTime(b, p.exp)
	binary.BigEndian.PutUint16(b[8:], uint16(len(p.client)))
	b = append(b, p.client...)
	return append(b, p.sealed...)
}

func decodePending(v []byte) (pendingRec, error) {
	if len(v) < 10 {
		return pendingRec{}, errors.New("bolt: short pending record")
	}
	n := int(binary.BigEndian.Uint16(v[8:]))
	if len(v) < 10+n {
		return pendingRec{}, errors.New("bolt: short pending record")
	}
	return pendingRec{exp: getTime(v), client: string(v[10 : 10+n]), sealed: v[10+n:]}, nil
}

func (p pendingRec) expired(now time.Time) bool { return !now.Before(p.exp) }

// PutPending stores p under the hash of state for ttl, within limits (the
// count, the check and the insert in one transaction).
func (s *Store) PutPending(ctx context.Context, state string, p *authserver.Pending, ttl time.Duration, limits authserver.PendingLimits) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	k := []byte(seal.Hash(state))
	client := p.Request.ClientID
	if len(client) > 0xffff {
		return errors.New("bolt: client ID too long")
	}
	rec := pendingRec{exp: s.now().Add(ttl), client: client, sealed: s.keys.Seal(b, sealContext("pending", k))}
	return s.update(ctx, func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bPending)
		if limits.Total > 0 || limits.PerClient > 0 {
			now := s.now()
			total, mine := 0, 0
			var dead [][]byte
			err := bk.ForEach(func(key, v []byte) error {
				r, err := decodePending(v)
				switch {
				case err != nil || r.expired(now):
					dead = append(dead, append([]byte(nil), key...))
				case string(key) != string(k): // a replaced entry does not count
					total++
					if r.client == client {
						mine++
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, key := range dead {
				if err := bk.Delete(key); err != nil {
					return err
				}
			}
			switch {
			case limits.Total > 0 && total >= limits.Total:
				return authserver.ErrLimit
			case limits.PerClient > 0 && mine >= limits.PerClient:
				return authserver.ErrClientLimit
			}
		}
		return bk.Put(k, rec.encode())
	})
}

// TakePending returns and forgets the entry of state.
func (s *Store) TakePending(ctx context.Context, state string) (*authserver.Pending, error) {
	k := []byte(seal.Hash(state))
	var rec pendingRec
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bPending)
		v := bk.Get(k)
		if v == nil {
			return authserver.ErrNotFound
		}
		r, err := decodePending(v)
		if err == nil {
			rec = r
			rec.sealed = append([]byte(nil), r.sealed...)
		}
		return bk.Delete(k)
	})
	if err != nil {
		return nil, err
	}
	if rec.sealed == nil || rec.expired(s.now()) {
		return nil, authserver.ErrNotFound
	}
	return openJSON[authserver.Pending](s.keys, rec.sealed, sealContext("pending", k))
}

// GetSecret returns the secret stored under name.
func (s *Store) GetSecret(ctx context.Context, name string) ([]byte, error) {
	k := []byte(name)
	var out []byte
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bSecrets).Get(k)
		if v == nil {
			return authserver.ErrNotFound
		}
		var err error
		out, err = s.keys.Open(v, sealContext("secret", k))
		return err
	})
	return out, err
}

// InitSecret stores value under name unless one is stored, and returns the
// stored one.
func (s *Store) InitSecret(ctx context.Context, name string, value []byte) ([]byte, error) {
	k := []byte(name)
	var stored []byte
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bSecrets)
		if v := bk.Get(k); v != nil {
			stored = append([]byte(nil), v...)
			return nil
		}
		stored = s.keys.Seal(value, sealContext("secret", k))
		return bk.Put(k, stored)
	})
	if err != nil {
		return nil, err
	}
	return s.keys.Open(stored, sealContext("secret", k))
}
