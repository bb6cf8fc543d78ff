package authserver

import (
	"context"
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestSecretHasher(t *testing.T) {
	ctx := context.Background()
	secret := []byte(rand.Text() + rand.Text())
	h, err := secretHasher{}.Hash(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := (secretHasher{}).Compare(ctx, h, secret); err != nil {
		t.Errorf("the right secret: %v", err)
	}
	for name, wrong := range map[string][]byte{
		"another secret":   []byte(rand.Text() + rand.Text()),
		"a prefix":         secret[:len(secret)-1],
		"empty":            nil,
		"the hash itself":  h,
		"one byte changed": append(append([]byte{}, secret[:len(secret)-1]...), secret[len(secret)-1]^1),
	} {
		if err := (secretHasher{}).Compare(ctx, h, wrong); err == nil {
			t.Errorf("%s is accepted", name)
		}
	}
	if err := (secretHasher{}).Compare(ctx, nil, secret); err == nil {
		t.Error("a secret is accepted against an empty hash (a public client)")
	}
}

// BenchmarkClientSecretCheck: what one client authentication at the token
// endpoint costs. Anyone can make the server pay it (a registered client's
// id and any secret), so it must be cheap: SHA-256 here, against bcrypt at
// cost 10 before (about 50 ms of CPU).
func BenchmarkClientSecretCheck(b *testing.B) {
	ctx := context.Background()
	secret := []byte(rand.Text() + rand.Text())
	b.Run("sha256", func(b *testing.B) {
		h, _ := secretHasher{}.Hash(ctx, secret)
		for b.Loop() {
			_ = secretHasher{}.Compare(ctx, h, []byte("wrong"))
		}
	})
	b.Run("bcrypt-10", func(b *testing.B) {
		h, _ := bcrypt.GenerateFromPassword(secret, 10)
		for b.Loop() {
			_ = bcrypt.CompareHashAndPassword(h, []byte("wrong"))
		}
	})
}
