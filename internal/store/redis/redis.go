// Package redis is the [authserver.Store] shared by several vmcp
// replicas: one Redis (a single server, or a primary found through
// Sentinel). Every value that grants access is sealed ([seal]); token
// records are found by the hash of their signature, pending logins by the
// hash of their state. Changes that must be atomic (a code used once, a
// grant updated only from the version read, a lock) are single Lua
// scripts. Every call is bounded by a timeout and fails with
// [authserver.ErrUnavailable] when Redis is down or slow.
//
// The per-request checks (is this access token active, is this grant
// revoked) are answered from a local cache, so that a tool call does not
// wait for Redis: every change publishes the keys it touched on the
// store's channel, and every replica drops its copies when the message
// arrives (and all of them while it is not subscribed).
package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/mcpsession"
	"github.com/vmcp-dev/vmcp/internal/store/seal"
)

// Defaults.
const (
	DefaultTimeout  = 2 * time.Second
	DefaultCacheAge = 10 * time.Second
	defaultCacheMax = 100_000
)

// Options configure [New].
type Options struct {
	// Client reaches Redis ([NewClient]). Required; [Store.Close] closes it.
	Client goredis.UniversalClient
	// Keys seal values at rest. Required.
	Keys *seal.Keys
	// Prefix starts every key (and the invalidation channel), so that
	// several gateways can share one Redis. Default: "vmcp:".
	Prefix string
	// Timeout bounds each call. Default: 2s.
	Timeout time.Duration
	// CacheAge is the longest a local copy is used without Redis
	// confirming it (invalidations normally drop it at once). Default:
	// 10s; negative: no cache.
	CacheAge time.Duration
	// Now is the clock of record expiries. Default: time.Now.
	Now func() time.Time
	// Logger. Default: discard.
	Logger *slog.Logger
}

// Store is the Redis-backed store.
type Store struct {
	rdb     goredis.UniversalClient
	keys    *seal.Keys
	p       string // key prefix
	channel string
	timeout time.Duration
	now     func() time.Time
	logger  *slog.Logger
	cache   *cache // nil: none

	stop context.CancelFunc
	done chan struct{}
	once sync.Once

	psMu sync.Mutex // guards ps
	ps   *goredis.PubSub

	watchers mcpsession.Watchers // of session changes (sessions.go)
	lost     bool                // the channel was lost since the last subscription; only listen uses it
}

var _ authserver.Store = (*Store)(nil)

// New returns a store over opts.Client. It does not wait for Redis; it
// starts listening for invalidations (until [Store.Close]).
func New(opts Options) (*Store, error) {
	if opts.Client == nil || opts.Keys == nil {
		return nil, errors.New("redis store: a client and encryption keys are required")
	}
	if opts.Prefix == "" {
		opts.Prefix = "vmcp:"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.CacheAge == 0 {
		opts.CacheAge = DefaultCacheAge
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{rdb: opts.Client, keys: opts.Keys, p: opts.Prefix, channel: opts.Prefix + "invalidate",
		timeout: opts.Timeout, now: opts.Now, logger: opts.Logger, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	if opts.CacheAge > 0 {
		s.cache = newCache(opts.CacheAge, defaultCacheMax)
	}
	go s.listen(ctx) // the cache's invalidations and the sessions' changes
	return s, nil
}

// Close stops listening and closes the client.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		s.stop()
		s.psMu.Lock()
		if s.ps != nil {
			_ = s.ps.Close() // ends a blocked receive
		}
		s.psMu.Unlock()
		<-s.done
		err = s.rdb.Close()
	})
	return err
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	return s.fail(s.rdb.Ping(ctx).Err())
}

func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// fail turns a Redis error into the store's: redis.Nil is not found, any
// other failure is unavailability.
func (s *Store) fail(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, goredis.Nil):
		return authserver.ErrNotFound
	}
	return fmt.Errorf("%w: redis: %w", authserver.ErrUnavailable, err)
}

// Keys. Values derived from tokens (signatures, states) are hashed.
func (s *Store) clientKey(id string) string { return s.p + "client:" + id }
func (s *Store) tokenPrefix(kind authserver.TokenKind) string {
	return s.p + "token:" + string(kind) + ":"
}
func (s *Store) familyKey(kind authserver.TokenKind, rid string) string {
	return s.p + "family:" + string(kind) + ":" + rid
}
func (s *Store) grantKey(id string) string    { return s.p + "grant:" + id }
func (s *Store) lockKey(id string) string     { return s.p + "lock:grant:" + id }
func (s *Store) pendingKey(h string) string   { return s.p + "pending:" + h }
func (s *Store) secretKey(name string) string { return s.p + "secret:" + name }

// Cache keys and invalidation messages: "t:<kind>:<hash>" for a token
// record, "g:<id>" for a grant (its revoked flag and its content).
func tokenTag(kind authserver.TokenKind, h string) string { return "t:" + string(kind) + ":" + h }
func grantTag(id string) string                           { return "g:" + id }

// ms is a time as Unix milliseconds, 0 for none.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// ttl is how long Redis keeps a record that expires at exp (in the
// store's clock), in milliseconds: 0 for none, at least 1.
func (s *Store) ttl(exp time.Time) int64 {
	if exp.IsZero() {
		return 0
	}
	return max(1, exp.Sub(s.now()).Milliseconds()+1)
}

// Clients are found through two sorted sets besides their keys:
// <prefix>clients:expiry (every client, by expiry; +inf for none) counts
// the live ones and forgets the expired, and <prefix>clients:unused (the
// never-used registrations that expire, by creation) names the one a full
// store forgets first.

var createClient = goredis.NewScript(`
local now = ARGV[5]
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(dead) do
  redis.call('DEL', ARGV[8] .. id)
  redis.call('ZREM', KEYS[3], id)
end
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
local max = tonumber(ARGV[6])
if max > 0 and redis.call('ZCARD', KEYS[2]) >= max then
  local victim = redis.call('ZRANGE', KEYS[3], 0, 0)
  if #victim == 0 then return 'limit' end
  redis.call('DEL', ARGV[8] .. victim[1])
  redis.call('ZREM', KEYS[2], victim[1])
  redis.call('ZREM', KEYS[3], victim[1])
end
redis.call('SET', KEYS[1], ARGV[2])
if tonumber(ARGV[7]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[7]) end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1]) end
return 'ok'`)

// expiryScore is a sorted-set score for an expiry: Unix ms, or +inf.
func expiryScore(t time.Time) string {
	if t.IsZero() {
		return "+inf"
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// CreateClient stores c; it fails if the ID is taken by a live client.
// With max > 0 and max live clients stored, it first forgets the
// never-used registration created first, or fails with
// [authserver.ErrLimit]; all in one script.
func (s *Store) CreateClient(ctx context.Context, c *authserver.Client, max int) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	k := s.clientKey(c.ID)
	unused := ""
	if c.UsedAt.IsZero() && !c.ExpiresAt.IsZero() {
		unused = strconv.FormatInt(c.CreatedAt.UnixMilli(), 10)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	res, err := createClient.Run(ctx, s.rdb, []string{k, s.p + "clients:expiry", s.p + "clients:unused"},
		c.ID, s.keys.Seal(b, k), expiryScore(c.ExpiresAt), unused, ms(s.now()), max, s.ttl(c.ExpiresAt), s.clientKey("")).Text()
	switch {
	case err != nil:
		return s.fail(err)
	case res == "exists":
		return fmt.Errorf("client %q already exists", c.ID)
	case res == "limit":
		return authserver.ErrLimit
	}
	return nil
}

// GetClient returns the client with id, unless it expired.
func (s *Store) GetClient(ctx context.Context, id string) (*authserver.Client, error) {
	k := s.clientKey(id)
	ctx, cancel := s.call(ctx)
	defer cancel()
	v, err := s.rdb.Get(ctx, k).Bytes()
	if err != nil {
		return nil, s.fail(err)
	}
	c, err := openJSON[authserver.Client](s.keys, v, k)
	if err != nil {
		return nil, err
	}
	if !c.ExpiresAt.IsZero() && !s.now().Before(c.ExpiresAt) {
		return nil, authserver.ErrNotFound
	}
	return c, nil
}

var touchClient = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) else redis.call('PERSIST', KEYS[1]) end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1`)

// TouchClient records a use of the client with id.
func (s *Store) TouchClient(ctx context.Context, id string, usedAt, expiresAt time.Time) error {
	c, err := s.GetClient(ctx, id)
	if err != nil {
		return err
	}
	c.UsedAt, c.ExpiresAt = usedAt, expiresAt
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	k := s.clientKey(id)
	ctx, cancel := s.call(ctx)
	defer cancel()
	n, err := touchClient.Run(ctx, s.rdb, []string{k, s.p + "clients:expiry", s.p + "clients:unused"},
		id, s.keys.Seal(b, k), expiryScore(expiresAt), s.ttl(expiresAt)).Int()
	switch {
	case err != nil:
		return s.fail(err)
	case n == 0:
		return authserver.ErrNotFound
	}
	return nil
}

func openJSON[T any](keys *seal.Keys, sealed []byte, context string) (*T, error) {
	b, err := keys.Open(sealed, context)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", authserver.ErrUnavailable, err)
	}
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("%w: decoding a stored value: %w", authserver.ErrUnavailable, err)
	}
	return v, nil
}

var createToken = goredis.NewScript(`
local existed = redis.call('EXISTS', KEYS[2])
redis.call('HSET', KEYS[1], 'a', ARGV[1], 'r', ARGV[2], 'e', ARGV[3], 'd', ARGV[4])
local ttl = tonumber(ARGV[5])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
redis.call('SADD', KEYS[2], ARGV[6])
if ttl == 0 then
  redis.call('PERSIST', KEYS[2])
elseif existed == 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
else
  local cur = redis.call('PTTL', KEYS[2])
  if cur >= 0 and cur < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
end
return 1`)

// CreateToken stores r under the hash of its signature, in its family.
func (s *Store) CreateToken(ctx context.Context, kind authserver.TokenKind, r *authserver.TokenRecord) error {
	h := seal.Hash(r.Signature)
	k := s.tokenPrefix(kind) + h
	active := "0"
	if r.Active {
		active = "1"
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	err := createToken.Run(ctx, s.rdb, []string{k, s.familyKey(kind, r.RequestID)},
		active, r.RequestID, ms(r.ExpiresAt), s.keys.Seal(r.Request, k), s.ttl(r.ExpiresAt), h).Err()
	return s.fail(err)
}

// live reports whether a record with expiry e (Unix ms) is unexpired now.
func (s *Store) live(e int64) bool { return e == 0 || !s.now().After(fromMS(e)) }

// GetToken returns the record of signature, active or not, unless expired.
func (s *Store) GetToken(ctx context.Context, kind authserver.TokenKind, signature string) (*authserver.TokenRecord, error) {
	k := s.tokenPrefix(kind) + seal.Hash(signature)
	ctx, cancel := s.call(ctx)
	defer cancel()
	v, err := s.rdb.HMGet(ctx, k, "a", "r", "e", "d").Result()
	if err != nil {
		return nil, s.fail(err)
	}
	if v[0] == nil || v[3] == nil {
		return nil, authserver.ErrNotFound
	}
	e, _ := strconv.ParseInt(str(v[2]), 10, 64)
	if !s.live(e) {
		return nil, authserver.ErrNotFound
	}
	req, err := s.keys.Open([]byte(str(v[3])), k)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", authserver.ErrUnavailable, err)
	}
	return &authserver.TokenRecord{Signature: signature, RequestID: str(v[1]), Active: str(v[0]) == "1",
		ExpiresAt: fromMS(e), Request: req}, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// tokenState is what the cache keeps of a token record.
type tokenState struct{ active bool }

// TokenActive reports whether the record of signature is active. Access
// tokens are answered from the cache when possible.
func (s *Store) TokenActive(ctx context.Context, kind authserver.TokenKind, signature string) (bool, error) {
	h := seal.Hash(signature)
	tag := tokenTag(kind, h)
	cacheable := s.cache != nil && kind == authserver.KindAccess
	var gen uint64
	if cacheable {
		if v, ok := s.cache.get(tag, s.now()); ok {
			return v.(tokenState).active, nil
		}
		gen = s.cache.gen.Load()
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	v, err := s.rdb.HMGet(ctx, s.tokenPrefix(kind)+h, "a", "e").Result()
	if err != nil {
		return false, s.fail(err)
	}
	if v[0] == nil {
		return false, authserver.ErrNotFound
	}
	e, _ := strconv.ParseInt(str(v[1]), 10, 64)
	if !s.live(e) {
		return false, authserver.ErrNotFound
	}
	active := str(v[0]) == "1"
	if cacheable && active {
		s.cache.put(tag, tokenState{active: true}, fromMS(e), gen)
	}
	return active, nil
}

var deleteToken = goredis.NewScript(`
local rid = redis.call('HGET', KEYS[1], 'r')
if not rid then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', ARGV[1] .. rid, ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1`)

// DeleteToken removes the record of signature, if any.
func (s *Store) DeleteToken(ctx context.Context, kind authserver.TokenKind, signature string) error {
	h := seal.Hash(signature)
	tag := tokenTag(kind, h)
	defer s.dropLocal(tag)
	ctx, cancel := s.call(ctx)
	defer cancel()
	err := deleteToken.Run(ctx, s.rdb, []string{s.tokenPrefix(kind) + h},
		s.familyKey(kind, ""), h, s.channel, tag).Err()
	return s.fail(err)
}

var deactivateToken = goredis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'a', 'e')
if not v[1] then return -1 end
local e = tonumber(v[2])
if e ~= 0 and e < tonumber(ARGV[1]) then return -1 end
if v[1] == '0' then return 0 end
redis.call('HSET', KEYS[1], 'a', '0')
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1`)

// DeactivateToken marks the active record of signature inactive.
func (s *Store) DeactivateToken(ctx context.Context, kind authserver.TokenKind, signature string) error {
	h := seal.Hash(signature)
	tag := tokenTag(kind, h)
	defer s.dropLocal(tag)
	ctx, cancel := s.call(ctx)
	defer cancel()
	n, err := deactivateToken.Run(ctx, s.rdb, []string{s.tokenPrefix(kind) + h}, ms(s.now()), s.channel, tag).Int()
	switch {
	case err != nil:
		return s.fail(err)
	case n < 0:
		return authserver.ErrNotFound
	case n == 0:
		return authserver.ErrInactive
	}
	return nil
}

var changeFamily = goredis.NewScript(`
local members = redis.call('SMEMBERS', KEYS[1])
if #members == 0 then return {} end
for _, h in ipairs(members) do
  local k = ARGV[1] .. h
  if ARGV[2] == 'delete' then
    redis.call('DEL', k)
  elseif redis.call('HEXISTS', k, 'a') == 1 then
    redis.call('HSET', k, 'a', '0')
  end
end
if ARGV[2] == 'delete' then redis.call('DEL', KEYS[1]) end
redis.call('PUBLISH', ARGV[3], ARGV[4] .. table.concat(members, ','))
return members`)

// DeactivateFamily marks every record of the family inactive.
func (s *Store) DeactivateFamily(ctx context.Context, kind authserver.TokenKind, requestID string) error {
	return s.changeFamily(ctx, kind, requestID, "deactivate")
}

// DeleteFamily removes every record of the family.
func (s *Store) DeleteFamily(ctx context.Context, kind authserver.TokenKind, requestID string) error {
	return s.changeFamily(ctx, kind, requestID, "delete")
}

func (s *Store) changeFamily(ctx context.Context, kind authserver.TokenKind, rid, mode string) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	members, err := changeFamily.Run(ctx, s.rdb, []string{s.familyKey(kind, rid)},
		s.tokenPrefix(kind), mode, s.channel, tokenTag(kind, "")).StringSlice()
	if errors.Is(err, goredis.Nil) {
		err = nil
	}
	// The message reaches this replica too; its own copies go now, so
	// that its next request sees the change whatever the channel's delay.
	tags := make([]string, len(members))
	for i, h := range members {
		tags[i] = tokenTag(kind, h)
	}
	s.dropLocal(tags...)
	return s.fail(err)
}

// dropLocal forgets this replica's copies at once (others get the
// message).
func (s *Store) dropLocal(tags ...string) {
	if s.cache != nil {
		s.cache.drop(tags...)
	}
}

var putGrant = goredis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'v', 'e')
local v = 0
if cur[1] then
  local e = tonumber(cur[2])
  if e == 0 or e > tonumber(ARGV[7]) then v = tonumber(cur[1]) end
end
if v ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'r', ARGV[3], 'e', ARGV[4], 'd', ARGV[5])
if tonumber(ARGV[6]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[6]) else redis.call('PERSIST', KEYS[1]) end
redis.call('PUBLISH', ARGV[8], ARGV[9])
return 1`)

// PutGrant stores g if the stored grant is the version g.Version.
func (s *Store) PutGrant(ctx context.Context, g *authserver.Grant) error {
	c := *g
	c.Version++
	b, err := json.Marshal(&c)
	if err != nil {
		return err
	}
	k := s.grantKey(g.ID)
	revoked := "0"
	if g.Revoked {
		revoked = "1"
	}
	tag := grantTag(g.ID)
	defer s.dropLocal(tag)
	ctx, cancel := s.call(ctx)
	defer cancel()
	n, err := putGrant.Run(ctx, s.rdb, []string{k}, g.Version, c.Version, revoked, ms(g.ExpiresAt),
		s.keys.Seal(b, k), s.ttl(g.ExpiresAt), ms(s.now()), s.channel, tag).Int()
	switch {
	case err != nil:
		return s.fail(err)
	case n == 0:
		return authserver.ErrConflict
	}
	g.Version = c.Version
	return nil
}

// grantState is what the cache keeps of a grant.
type grantState struct {
	revoked bool
	plain   []byte // the opened grant, if read whole
}

// GetGrant returns the grant with id.
func (s *Store) GetGrant(ctx context.Context, id string) (*authserver.Grant, error) {
	tag := grantTag(id)
	var gen uint64
	if s.cache != nil {
		if v, ok := s.cache.get(tag, s.now()); ok && v.(grantState).plain != nil {
			return decodeGrant(v.(grantState).plain)
		}
		gen = s.cache.gen.Load()
	}
	k := s.grantKey(id)
	ctx, cancel := s.call(ctx)
	defer cancel()
	v, err := s.rdb.HMGet(ctx, k, "r", "e", "d").Result()
	if err != nil {
		return nil, s.fail(err)
	}
	if v[0] == nil || v[2] == nil {
		return nil, authserver.ErrNotFound
	}
	e, _ := strconv.ParseInt(str(v[1]), 10, 64)
	if e != 0 && !s.now().Before(fromMS(e)) {
		return nil, authserver.ErrNotFound
	}
	plain, err := s.keys.Open([]byte(str(v[2])), k)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", authserver.ErrUnavailable, err)
	}
	if s.cache != nil {
		s.cache.put(tag, grantState{revoked: str(v[0]) == "1", plain: plain}, fromMS(e), gen)
	}
	return decodeGrant(plain)
}

func decodeGrant(plain []byte) (*authserver.Grant, error) {
	g := new(authserver.Grant)
	if err := json.Unmarshal(plain, g); err != nil {
		return nil, fmt.Errorf("%w: decoding a stored grant: %w", authserver.ErrUnavailable, err)
	}
	return g, nil
}

// GrantRevoked reports whether the grant with id is revoked.
func (s *Store) GrantRevoked(ctx context.Context, id string) (bool, error) {
	tag := grantTag(id)
	var gen uint64
	if s.cache != nil {
		if v, ok := s.cache.get(tag, s.now()); ok {
			return v.(grantState).revoked, nil
		}
		gen = s.cache.gen.Load()
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	v, err := s.rdb.HMGet(ctx, s.grantKey(id), "r", "e").Result()
	if err != nil {
		return false, s.fail(err)
	}
	if v[0] == nil {
		return false, authserver.ErrNotFound
	}
	e, _ := strconv.ParseInt(str(v[1]), 10, 64)
	if e != 0 && !s.now().Before(fromMS(e)) {
		return false, authserver.ErrNotFound
	}
	revoked := str(v[0]) == "1"
	if s.cache != nil && !revoked {
		s.cache.put(tag, grantState{}, fromMS(e), gen)
	}
	return revoked, nil
}

// DeleteGrant removes the grant with id.
func (s *Store) DeleteGrant(ctx context.Context, id string) error {
	tag := grantTag(id)
	defer s.dropLocal(tag)
	ctx, cancel := s.call(ctx)
	defer cancel()
	_, err := s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Del(ctx, s.grantKey(id))
		p.Publish(ctx, s.channel, tag)
		return nil
	})
	return s.fail(err)
}

var lockGrant = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`)

// LockGrant takes the lease on id for owner. On success, this replica's
// copy of the grant is dropped: the next GetGrant reads what the last
// holder stored.
func (s *Store) LockGrant(ctx context.Context, id, owner string, ttl time.Duration) (bool, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	n, err := lockGrant.Run(ctx, s.rdb, []string{s.lockKey(id)}, owner, max(1, ttl.Milliseconds())).Int()
	if err != nil {
		return false, s.fail(err)
	}
	if n == 1 {
		s.dropLocal(grantTag(id))
	}
	return n == 1, nil
}

var unlockGrant = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// UnlockGrant ends owner's lease on id.
func (s *Store) UnlockGrant(ctx context.Context, id, owner string) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	return s.fail(unlockGrant.Run(ctx, s.rdb, []string{s.lockKey(id)}, owner).Err())
}

// Pending logins are hashes (e: expiry, c: client, d: sealed entry),
// counted through <prefix>pending:expiry (all, by expiry) and
// <prefix>pending:client:<id> (one client's, by expiry).

var putPending = goredis.NewScript(`
local now = ARGV[5]
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local old = redis.call('HGET', KEYS[1], 'c')
local total = redis.call('ZCARD', KEYS[2])
local mine = redis.call('ZCARD', KEYS[3])
if old then
  if redis.call('ZSCORE', KEYS[2], ARGV[1]) then total = total - 1 end
  if old == ARGV[2] and redis.call('ZSCORE', KEYS[3], ARGV[1]) then mine = mine - 1 end
end
local lt, lc = tonumber(ARGV[6]), tonumber(ARGV[7])
if lt > 0 and total >= lt then return 'limit' end
if lc > 0 and mine >= lc then return 'client' end
if old then
  redis.call('ZREM', ARGV[8] .. old, ARGV[1])
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'e', ARGV[3], 'c', ARGV[2], 'd', ARGV[9])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
local ttl = redis.call('PTTL', KEYS[3])
if ttl < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[3], ARGV[4]) end
return 'ok'`)

// PutPending stores p under the hash of state for ttl, within limits (the
// count, the check and the insert in one script).
func (s *Store) PutPending(ctx context.Context, state string, p *authserver.Pending, ttl time.Duration, limits authserver.PendingLimits) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	h := seal.Hash(state)
	k := s.pendingKey(h)
	client := p.Request.ClientID
	exp := s.now().Add(ttl)
	ctx, cancel := s.call(ctx)
	defer cancel()
	res, err := putPending.Run(ctx, s.rdb, []string{k, s.p + "pending:expiry", s.p + "pending:client:" + client},
		h, client, ms(exp), max(1, (ttl+time.Second).Milliseconds()), ms(s.now()), limits.Total, limits.PerClient,
		s.p+"pending:client:", s.keys.Seal(b, k)).Text()
	switch {
	case err != nil:
		return s.fail(err)
	case res == "limit":
		return authserver.ErrLimit
	case res == "client":
		return authserver.ErrClientLimit
	}
	return nil
}

var takePending = goredis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'e', 'c', 'd')
if not v[1] then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', ARGV[2] .. v[2], ARGV[1])
return {v[1], v[3]}`)

// TakePending returns and forgets the entry of state.
func (s *Store) TakePending(ctx context.Context, state string) (*authserver.Pending, error) {
	h := seal.Hash(state)
	k := s.pendingKey(h)
	ctx, cancel := s.call(ctx)
	defer cancel()
	v, err := takePending.Run(ctx, s.rdb, []string{k, s.p + "pending:expiry"}, h, s.p+"pending:client:").StringSlice()
	if err != nil {
		return nil, s.fail(err)
	}
	if len(v) != 2 {
		return nil, authserver.ErrNotFound
	}
	e, _ := strconv.ParseInt(v[0], 10, 64)
	if !s.now().Before(fromMS(e)) {
		return nil, authserver.ErrNotFound
	}
	return openJSON[authserver.Pending](s.keys, []byte(v[1]), k)
}

// GetSecret returns the secret stored under name.
func (s *Store) GetSecret(ctx context.Context, name string) ([]byte, error) {
	k := s.secretKey(name)
	ctx, cancel := s.call(ctx)
	defer cancel()
	v, err := s.rdb.Get(ctx, k).Bytes()
	if err != nil {
		return nil, s.fail(err)
	}
	b, err := s.keys.Open(v, k)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", authserver.ErrUnavailable, err)
	}
	return b, nil
}

// InitSecret stores value under name unless one is stored, and returns the
// stored one.
func (s *Store) InitSecret(ctx context.Context, name string, value []byte) ([]byte, error) {
	k := s.secretKey(name)
	ctx, cancel := s.call(ctx)
	defer cancel()
	if err := s.rdb.SetNX(ctx, k, s.keys.Seal(value, k), 0).Err(); err != nil {
		return nil, s.fail(err)
	}
	cancel()
	return s.GetSecret(context.WithoutCancel(ctx), name)
}

// listen applies invalidations until ctx ends. The cache is used only
// while the subscription is confirmed; any failure clears it, and the
// subscription is renewed (go-redis reconnects and subscribes again).
func (s *Store) listen(ctx context.Context) {
	defer close(s.done)
	s.psMu.Lock()
	if ctx.Err() != nil {
		s.psMu.Unlock()
		return
	}
	ps := s.rdb.Subscribe(ctx, s.channel)
	s.ps = ps
	s.psMu.Unlock()
	defer ps.Close()
	pingSent := false
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, 5*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() && !pingSent {
				// Quiet: ask for a pong; no answer by the next timeout
				// means the connection is gone.
				pingSent = ps.Ping(ctx) == nil
				continue
			}
			if !s.lost {
				s.logger.Warn("redis store: invalidation channel lost; local copies dropped until it is back", "error", err)
			}
			s.lost = true
			s.cache.clear(false)
			pingSent = false
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		pingSent = false
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				s.cache.clear(true)
				backoff = 50 * time.Millisecond
				if s.lost {
					// Session changes may have been missed meanwhile.
					s.watchers.Notify(mcpsession.Change{All: true})
				}
				s.lost = false
			}
		case *goredis.Message:
			s.invalidate(m.Payload)
		}
	}
}

// invalidate drops the copies a message names: "g:<id>", "t:<kind>:<hash>"
// or "t:<kind>:<hash>,<hash>,…".
func (s *Store) invalidate(msg string) {
	if strings.HasPrefix(msg, "s:") {
		s.sessionChanged(msg)
		return
	}
	if strings.HasPrefix(msg, "g:") {
		s.cache.drop(msg)
		return
	}
	kindEnd := strings.IndexByte(msg[min(2, len(msg)):], ':')
	if !strings.HasPrefix(msg, "t:") || kindEnd < 0 {
		s.cache.clear(true) // unknown: be safe
		return
	}
	prefix := msg[:2+kindEnd+1]
	var tags []string
	for h := range strings.SplitSeq(msg[len(prefix):], ",") {
		tags = append(tags, prefix+h)
	}
	s.cache.drop(tags...)
}

// Subscribed reports whether the store receives invalidations (and so
// uses its local copies).
func (s *Store) Subscribed() bool { return s.cache != nil && s.cache.live.Load() }
