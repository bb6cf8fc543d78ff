package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/mcpsession"
)

// MCP sessions are hashes under <prefix>session:<key> (key: mcpsession.Key
// of the ID): version, expiry (Unix ms) and the sealed record, with the
// record's expiry as Redis TTL. Every change publishes "s:<key>:<version>"
// on the invalidation channel (version 0: deleted), which every replica's
// watchers get.

var _ mcpsession.Store = (*Store)(nil)

func (s *Store) sessionKey(k string) string { return s.p + "session:" + k }

// sessionFail turns an error of the store into the session store's.
func sessionFail(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, authserver.ErrNotFound):
		return mcpsession.ErrNotFound
	case errors.Is(err, authserver.ErrUnavailable):
		return fmt.Errorf("%w: %w", mcpsession.ErrUnavailable, err)
	}
	return err
}

var putSession = goredis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'v', 'e')
local cur = 0
if v[1] and tonumber(v[2]) > tonumber(ARGV[5]) then cur = tonumber(v[1]) end
if cur ~= tonumber(ARGV[1]) then return -1 end
local nv = cur + 1
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', nv, 'e', ARGV[2], 'd', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[6], ARGV[7] .. nv)
return nv`)

// PutSession stores r if the stored version is r.Version, and announces
// the change.
func (s *Store) PutSession(ctx context.Context, r *mcpsession.Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	h := mcpsession.Key(r.ID)
	k := s.sessionKey(h)
	ctx, cancel := s.call(ctx)
	defer cancel()
	nv, err := putSession.Run(ctx, s.rdb, []string{k}, r.Version, ms(r.ExpiresAt), s.ttl(r.ExpiresAt), s.keys.Seal(b, k),
		ms(s.now()), s.channel, "s:"+h+":").Int64()
	switch {
	case err != nil:
		return sessionFail(s.fail(err))
	case nv < 0:
		return mcpsession.ErrConflict
	}
	r.Version = nv
	return nil
}

// GetSession returns the live record of id.
func (s *Store) GetSession(ctx context.Context, id string) (*mcpsession.Record, error) {
	k := s.sessionKey(mcpsession.Key(id))
	ctx, cancel := s.call(ctx)
	defer cancel()
	v, err := s.rdb.HMGet(ctx, k, "v", "e", "d").Result()
	if err != nil {
		return nil, sessionFail(s.fail(err))
	}
	e, _ := strconv.ParseInt(str(v[1]), 10, 64)
	if v[0] == nil || v[2] == nil || !s.now().Before(fromMS(e)) {
		return nil, mcpsession.ErrNotFound
	}
	r, err := openJSON[mcpsession.Record](s.keys, []byte(str(v[2])), k)
	if err != nil {
		return nil, sessionFail(err)
	}
	r.ID, r.ExpiresAt = id, fromMS(e)
	r.Version, _ = strconv.ParseInt(str(v[0]), 10, 64)
	return r, nil
}

var touchSession = goredis.NewScript(`
local e = redis.call('HGET', KEYS[1], 'e')
if not e or tonumber(e) <= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'e', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`)

// TouchSession moves a live record's expiry.
func (s *Store) TouchSession(ctx context.Context, id string, expiresAt time.Time) error {
	k := s.sessionKey(mcpsession.Key(id))
	ctx, cancel := s.call(ctx)
	defer cancel()
	n, err := touchSession.Run(ctx, s.rdb, []string{k}, ms(expiresAt), ms(s.now()), s.ttl(expiresAt)).Int()
	switch {
	case err != nil:
		return sessionFail(s.fail(err))
	case n == 0:
		return mcpsession.ErrNotFound
	}
	return nil
}

var deleteSession = goredis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1`)

// DeleteSession forgets the record of id and announces it.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	h := mcpsession.Key(id)
	ctx, cancel := s.call(ctx)
	defer cancel()
	return sessionFail(s.fail(deleteSession.Run(ctx, s.rdb, []string{s.sessionKey(h)}, s.channel, "s:"+h+":0").Err()))
}

// WatchSessions calls f with every change of a session record made by
// any replica, as the invalidation channel brings it, and with
// Change{All: true} whenever the channel is (re)subscribed after a loss.
func (s *Store) WatchSessions(f func(mcpsession.Change)) (stop func()) { return s.watchers.Add(f) }

// sessionChanged passes on a message "s:<key>:<version>".
func (s *Store) sessionChanged(msg string) {
	i := strings.LastIndexByte(msg, ':')
	v, err := strconv.ParseInt(msg[i+1:], 10, 64)
	if i < 2 || err != nil {
		s.watchers.Notify(mcpsession.Change{All: true}) // unknown: be safe
		return
	}
	s.watchers.Notify(mcpsession.Change{Key: msg[2:i], Version: v})
}
