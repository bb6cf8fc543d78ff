package bolt_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/store/bolt"
	"github.com/vmcp-dev/vmcp/internal/store/seal"
	"github.com/vmcp-dev/vmcp/internal/store/storetest"
)

func keys(t testing.TB, secrets ...string) *seal.Keys {
	t.Helper()
	var b [][]byte
	for _, s := range secrets {
		b = append(b, []byte(s))
	}
	if len(b) == 0 {
		b = [][]byte{[]byte("0123456789abcdef0123456789abcdef")}
	}
	k, err := seal.New(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func open(t testing.TB, dir string, now func() time.Time, k *seal.Keys) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(bolt.Options{Dir: dir, Keys: k, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) authserver.Store {
		return open(t, t.TempDir(), now, keys(t))
	})
}

func TestShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T, now func() time.Time) (authserver.Store, authserver.Store) {
		s := open(t, t.TempDir(), now, keys(t))
		return s, s // one process holds the file
	})
}

// TestSurvivesReopen: what was stored is there after the process closes
// the database and opens it again.
func TestSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	k := keys(t)
	s, err := bolt.Open(bolt.Options{Dir: dir, Keys: k})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	must(t, s.CreateClient(ctx, &authserver.Client{ID: "c1", RedirectURIs: []string{"http://127.0.0.1/cb"}}, 0))
	must(t, s.CreateToken(ctx, authserver.KindRefresh, &authserver.TokenRecord{Signature: "sig", RequestID: "r", Active: true, ExpiresAt: exp, Request: []byte("{}")}))
	g := &authserver.Grant{ID: "g", RefreshToken: "rt", ExpiresAt: exp}
	must(t, s.PutGrant(ctx, g))
	if _, err := s.InitSecret(ctx, "keys", []byte("generated")); err != nil {
		t.Fatal(err)
	}
	must(t, s.Close())

	s = open(t, dir, nil, k)
	if _, err := s.GetClient(ctx, "c1"); err != nil {
		t.Errorf("client after reopen: %v", err)
	}
	if active, err := s.TokenActive(ctx, authserver.KindRefresh, "sig"); err != nil || !active {
		t.Errorf("refresh token after reopen: %v, %v", active, err)
	}
	if got, err := s.GetGrant(ctx, "g"); err != nil || got.RefreshToken != "rt" || got.Version != g.Version {
		t.Errorf("grant after reopen: %+v, %v", got, err)
	}
	if v, err := s.GetSecret(ctx, "keys"); err != nil || string(v) != "generated" {
		t.Errorf("secret after reopen: %q, %v", v, err)
	}
}

// TestOneProcess: a second open of the same state directory is refused
// with a clear error instead of waiting forever or sharing the file.
func TestOneProcess(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, nil, keys(t))
	_, err := bolt.Open(bolt.Options{Dir: dir, Keys: keys(t), LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, bolt.ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
}

// TestNothingReadable: the database file holds no token, secret or claim
// in the clear, and no signature or state a request could be matched by.
func TestNothingReadable(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, nil, keys(t))
	secrets := storetest.Fill(t, s)
	must(t, s.Close())
	raw, err := os.ReadFile(filepath.Join(dir, bolt.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range secrets {
		if bytes.Contains(raw, []byte(v)) {
			t.Errorf("the database file contains %q in the clear", v)
		}
	}
}

// TestRotatedKey: values sealed under an old key open after a rotation
// that keeps it; without it they fail with a clear error, and nothing is
// served as if it were absent.
func TestRotatedKey(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	old := "old-key-0123456789abcdef01234567"
	s, err := bolt.Open(bolt.Options{Dir: dir, Keys: keys(t, old)})
	if err != nil {
		t.Fatal(err)
	}
	must(t, s.PutGrant(ctx, &authserver.Grant{ID: "g", RefreshToken: "rt"}))
	must(t, s.Close())

	s, err = bolt.Open(bolt.Options{Dir: dir, Keys: keys(t, "new-key-0123456789abcdef01234567", old)})
	if err != nil {
		t.Fatal(err)
	}
	g, err := s.GetGrant(ctx, "g")
	if err != nil || g.RefreshToken != "rt" {
		t.Fatalf("grant sealed with the old key, after rotation: %+v, %v", g, err)
	}
	must(t, s.PutGrant(ctx, g)) // rewritten under the new key
	must(t, s.Close())

	s = open(t, dir, nil, keys(t, "new-key-0123456789abcdef01234567"))
	if g, err := s.GetGrant(ctx, "g"); err != nil || g.RefreshToken != "rt" {
		t.Errorf("rewritten grant with only the new key: %+v, %v", g, err)
	}
	must(t, s.Close())
	s = open(t, dir, nil, keys(t, "yet-another-key-0123456789abcdef"))
	if _, err := s.GetGrant(ctx, "g"); !errors.Is(err, seal.ErrUnknownKey) {
		t.Errorf("grant with none of its keys: %v, want ErrUnknownKey", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func BenchmarkStore(b *testing.B) { storetest.Bench(b, open(b, b.TempDir(), nil, keys(b))) }
