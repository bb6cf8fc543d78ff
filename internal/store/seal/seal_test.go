package seal_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/vmcp-dev/vmcp/internal/store/seal"
)

func secret(c byte) []byte { return bytes.Repeat([]byte{c}, 32) }

func TestSealOpen(t *testing.T) {
	ks, err := seal.New([][]byte{secret('a')})
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("refresh-token-value")
	sealed := ks.Seal(plain, "grant:g1")
	if bytes.Contains(sealed, plain) {
		t.Fatal("the sealed value contains the plain text")
	}
	if again := ks.Seal(plain, "grant:g1"); bytes.Equal(again, sealed) {
		t.Error("sealing twice gave the same bytes (nonce reused)")
	}
	got, err := ks.Open(sealed, "grant:g1")
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := ks.Open(sealed, "grant:g2"); err == nil {
		t.Error("a value sealed for one record opened for another")
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := ks.Open(tampered, "grant:g1"); err == nil {
		t.Error("an altered value opened")
	}
	for _, bad := range [][]byte{nil, {1}, {2, 0, 0, 0, 0, 0, 0, 0, 0}, sealed[:20]} {
		if _, err := ks.Open(bad, "grant:g1"); err == nil {
			t.Errorf("Open(%x) succeeded", bad)
		}
	}
}

// TestRotation: a new first key seals; values sealed with the old key
// open while it is listed, and fail clearly once it is not.
func TestRotation(t *testing.T) {
	old, _ := seal.New([][]byte{secret('a')})
	sealedOld := old.Seal([]byte("v"), "c")
	rotated, err := seal.New([][]byte{secret('b'), secret('a')})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open(sealedOld, "c"); err != nil || string(got) != "v" {
		t.Fatalf("old value after rotation: %q, %v", got, err)
	}
	if rotated.SealedWithCurrent(sealedOld) {
		t.Error("a value sealed with the old key counts as sealed with the current one")
	}
	sealedNew := rotated.Seal([]byte("w"), "c")
	if !rotated.SealedWithCurrent(sealedNew) {
		t.Error("a new value does not count as sealed with the current key")
	}
	if _, err := old.Open(sealedNew, "c"); !errors.Is(err, seal.ErrUnknownKey) {
		t.Errorf("opening with only the old key: %v, want ErrUnknownKey", err)
	}
	if rotated.SealingKeyID() == old.SealingKeyID() {
		t.Error("the sealing key ID did not change with the key")
	}
}

func TestNewRefuses(t *testing.T) {
	for name, secrets := range map[string][][]byte{
		"none":      nil,
		"short":     {[]byte("short")},
		"duplicate": {secret('a'), secret('a')},
	} {
		if _, err := seal.New(secrets); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestHash(t *testing.T) {
	h := seal.Hash("token-signature")
	if h == seal.Hash("token-signaturf") || h != seal.Hash("token-signature") || strings.Contains(h, "token") || len(h) != 43 {
		t.Errorf("Hash = %q", h)
	}
}
