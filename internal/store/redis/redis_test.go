package redis_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/store/redis"
	"github.com/vmcp-dev/vmcp/internal/store/seal"
	"github.com/vmcp-dev/vmcp/internal/store/storetest"
	"github.com/vmcp-dev/vmcp/internal/testsupport/redistest"
)

func keys(t testing.TB) *seal.Keys {
	t.Helper()
	k, err := seal.New([][]byte{[]byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var prefixes atomic.Int64

// newStore returns a store on srv under a prefix of its own, so that
// tests can share one server.
func newStore(t testing.TB, srv *redistest.Server, now func() time.Time, prefix string) *redis.Store {
	t.Helper()
	c, err := redis.NewClient(redis.Config{Addr: srv.Addr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s, err := redis.New(redis.Options{Client: c, Keys: keys(t), Prefix: prefix, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	waitSubscribed(t, s)
	return s
}

func nextPrefix() string { return fmt.Sprintf("t%d:", prefixes.Add(1)) }

// waitSubscribed waits until the store listens for invalidations, so that
// tests of its cache start from a known state.
func waitSubscribed(t testing.TB, s *redis.Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !s.Subscribed() {
		if time.Now().After(deadline) {
			t.Fatal("the store did not subscribe to its invalidation channel within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStore(t *testing.T) {
	srv := redistest.Start(t, nil)
	storetest.Run(t, func(t *testing.T, now func() time.Time) authserver.Store {
		return newStore(t, srv, now, nextPrefix())
	})
}

// TestShared: two stores on one Redis, as two replicas: each sees what
// the other changes, their local copies included.
func TestShared(t *testing.T) {
	srv := redistest.Start(t, nil)
	storetest.RunShared(t, func(t *testing.T, now func() time.Time) (authserver.Store, authserver.Store) {
		p := nextPrefix()
		return newStore(t, srv, now, p), newStore(t, srv, now, p)
	})
}

// rawDump returns every key and value under the server, as redis-cli
// would show them (DUMP payloads hold the stored bytes as they are).
func rawDump(t *testing.T, addr string) string {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	var b strings.Builder
	iter := c.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		v, err := c.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(k + "\n" + v + "\n")
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestNothingReadable: nothing that grants access can be read with
// redis-cli: every key and value on the server is searched for the
// secret values the suite stored.
func TestNothingReadable(t *testing.T) {
	srv := redistest.Start(t, nil)
	s := newStore(t, srv, nil, "vmcp:")
	secrets := storetest.Fill(t, s)
	dump := rawDump(t, srv.Addr)
	if !strings.Contains(dump, "vmcp:grant:grant-1") {
		t.Fatalf("the dump misses the stored grant; keys:\n%s", dump)
	}
	for _, v := range secrets {
		if strings.Contains(dump, v) {
			t.Errorf("redis holds %q in the clear", v)
		}
	}
}

// TestDown: with Redis down every call fails fast with ErrUnavailable, and
// the store works again once Redis is back.
func TestDown(t *testing.T) {
	srv := redistest.Start(t, nil)
	s := newStore(t, srv, nil, "down:")
	ctx := context.Background()
	if err := s.PutGrant(ctx, &authserver.Grant{ID: "g", RefreshToken: "rt"}); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	calls := map[string]func() error{
		"GetGrant":     func() error { _, err := s.GetGrant(ctx, "g"); return err },
		"GrantRevoked": func() error { _, err := s.GrantRevoked(ctx, "g"); return err },
		"TokenActive":  func() error { _, err := s.TokenActive(ctx, authserver.KindAccess, "x"); return err },
		"CreateToken": func() error {
			return s.CreateToken(ctx, authserver.KindAccess, &authserver.TokenRecord{Signature: "x", RequestID: "r", Active: true})
		},
		"TakePending": func() error { _, err := s.TakePending(ctx, "st"); return err },
		"Ping":        func() error { return s.Ping(ctx) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, authserver.ErrUnavailable) {
			t.Errorf("%s with Redis down: %v, want ErrUnavailable", name, err)
		}
	}
	srv.Restart() // no persistence: empty again
	deadline := time.Now().Add(20 * time.Second)
	for s.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the store did not reach Redis again within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := s.GetGrant(ctx, "g"); !errors.Is(err, authserver.ErrNotFound) {
		t.Errorf("GetGrant after Redis came back empty: %v, want ErrNotFound", err)
	}
	waitSubscribed(t, s)
}

// TestSlow: a Redis that accepts connections and never answers makes each
// call fail within the store's timeout, not hang.
func TestSlow(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = bufio.NewReader(c).ReadString(0) }() // reads, never answers
		}
	}()
	c, err := redis.NewClient(redis.Config{Addr: ln.Addr().String(), Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s, err := redis.New(redis.Options{Client: c, Keys: keys(t), Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan error, 1)
	go func() { _, err := s.TokenActive(context.Background(), authserver.KindAccess, "x"); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, authserver.ErrUnavailable) {
			t.Errorf("TokenActive against a Redis that never answers: %v, want ErrUnavailable", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("TokenActive against a Redis that never answers did not return within 30s (timeout 100ms)")
	}
}

// TestPerRequestChecksStayLocal: the checks every MCP request makes (the
// access token is active, its grant is not revoked) do not go to Redis
// once answered, until something changes.
func TestPerRequestChecksStayLocal(t *testing.T) {
	srv := redistest.Start(t, nil)
	s := newStore(t, srv, nil, "local:")
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	if err := s.CreateToken(ctx, authserver.KindAccess, &authserver.TokenRecord{Signature: "sig", RequestID: "r", Active: true, ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutGrant(ctx, &authserver.Grant{ID: "g", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		if active, err := s.TokenActive(ctx, authserver.KindAccess, "sig"); err != nil || !active {
			t.Fatalf("TokenActive = %v, %v", active, err)
		}
		if revoked, err := s.GrantRevoked(ctx, "g"); err != nil || revoked {
			t.Fatalf("GrantRevoked = %v, %v", revoked, err)
		}
	}
	check()
	before := srv.CommandsProcessed(t)
	for range 1000 {
		check()
	}
	if n := srv.CommandsProcessed(t) - before; n > 10 {
		t.Errorf("1000 per-request checks sent %d commands to Redis, want none (the INFO calls aside)", n)
	}
	// A change goes to Redis, and the next check sees it.
	if err := s.DeactivateFamily(ctx, authserver.KindAccess, "r"); err != nil {
		t.Fatal(err)
	}
	if active, err := s.TokenActive(ctx, authserver.KindAccess, "sig"); err != nil || active {
		t.Errorf("TokenActive right after this store deactivated it = %v, %v; want false", active, err)
	}
}

// BenchmarkStore: with the local cache (the per-request check answered in
// process) and without it (every call a round trip to Redis on loopback).
func BenchmarkStore(b *testing.B) {
	srv := redistest.Start(b, nil)
	b.Run("cached", func(b *testing.B) { storetest.Bench(b, newStore(b, srv, nil, "bench-cached:")) })
	b.Run("uncached", func(b *testing.B) {
		c, err := redis.NewClient(redis.Config{Addr: srv.Addr})
		if err != nil {
			b.Fatal(err)
		}
		s, err := redis.New(redis.Options{Client: c, Keys: keys(b), Prefix: "bench-uncached:", CacheAge: -1})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		storetest.Bench(b, s)
	})
}

// TestSentinel: the store finds the primary through Redis Sentinel, and
// after the primary dies and Sentinel promotes its replica, the store
// reaches the new primary with what was stored before.
func TestSentinel(t *testing.T) {
	primary := redistest.Start(t, nil)
	replica := redistest.StartReplica(t, primary)
	sentinel := redistest.StartSentinel(t, primary, "vmcp")
	ctx := context.Background()
	raw := goredis.NewClient(&goredis.Options{Addr: sentinel.Addr})
	defer raw.Close()
	waitUntil(t, "the sentinel does not know the replica", func() bool {
		r, err := raw.Do(ctx, "SENTINEL", "replicas", "vmcp").Slice()
		return err == nil && len(r) == 1
	})

	c, err := redis.NewClient(redis.Config{SentinelAddrs: []string{sentinel.Addr}, MasterName: "vmcp"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := redis.New(redis.Options{Client: c, Keys: keys(t), Prefix: "sentinel:"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := &authserver.Grant{ID: "g", RefreshToken: "rt-before-failover"}
	if err := s.PutGrant(ctx, g); err != nil {
		t.Fatalf("PutGrant through the sentinel: %v", err)
	}
	p := goredis.NewClient(&goredis.Options{Addr: primary.Addr})
	if n, err := p.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("the replica did not acknowledge the write: %v, %v", n, err)
	}
	p.Close()

	primary.Kill()
	waitUntil(t, "the store did not reach the promoted replica", func() bool {
		got, err := s.GetGrant(ctx, "g")
		if err != nil {
			return false
		}
		g2 := *got
		g2.RefreshToken = "rt-after-failover"
		return got.RefreshToken == "rt-before-failover" && s.PutGrant(ctx, &g2) == nil
	})
	rc := goredis.NewClient(&goredis.Options{Addr: replica.Addr})
	defer rc.Close()
	if role, err := rc.Do(ctx, "ROLE").Slice(); err != nil || role[0] != "master" {
		t.Errorf("the replica's role after failover: %v, %v", role, err)
	}
}

// waitUntil polls cond every 50ms for at most 60s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
