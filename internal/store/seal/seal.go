// Package seal encrypts what the persistent stores keep (bolt, redis), so
// that nothing that grants access can be read from the database file or
// with redis-cli: values are sealed with AES-256-GCM under keys from
// secret references, each ciphertext naming its key, and lookup keys
// derived from token values are SHA-256 hashes, never the values. It
// knows nothing about what the values are.
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// MinSecretBytes is the least a key's secret may have.
const MinSecretBytes = 32

// version is the first byte of every sealed value.
const version = 1

// idLen is the length of a key ID in a sealed value.
const idLen = 8

// Keys seal with the first key and open with any of them, so that a key
// can be rotated: put the new one first and keep the old ones until every
// value sealed with them is gone or rewritten.
type Keys struct {
	first *key
	byID  map[[idLen]byte]*key
}

type key struct {
	id   [idLen]byte
	aead cipher.AEAD
}

// New derives keys from secrets (each at least [MinSecretBytes] long;
// any bytes, such as a random string). The first seals.
func New(secrets [][]byte) (*Keys, error) {
	if len(secrets) == 0 {
		return nil, errors.New("no encryption key")
	}
	ks := &Keys{byID: map[[idLen]byte]*key{}}
	for i, s := range secrets {
		if len(s) < MinSecretBytes {
			return nil, fmt.Errorf("encryption key %d has %d bytes; at least %d are needed", i, len(s), MinSecretBytes)
		}
		k, err := derive(s)
		if err != nil {
			return nil, fmt.Errorf("encryption key %d: %w", i, err)
		}
		if _, dup := ks.byID[k.id]; dup {
			return nil, fmt.Errorf("encryption key %d is listed twice", i)
		}
		ks.byID[k.id] = k
		if i == 0 {
			ks.first = k
		}
	}
	return ks, nil
}

// derive makes an AES-256 key and its ID from a secret with HKDF-SHA256:
// the ID reveals nothing about the key.
func derive(secret []byte) (*key, error) {
	raw, err := hkdf.Key(sha256.New, secret, nil, "vmcp store encryption key v1", 32)
	if err != nil {
		return nil, err
	}
	id, err := hkdf.Key(sha256.New, secret, nil, "vmcp store encryption key id v1", idLen)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k := &key{aead: aead}
	copy(k.id[:], id)
	return k, nil
}

// SealingKeyID is the ID of the key that seals, in hex (for logs).
func (ks *Keys) SealingKeyID() string { return hex.EncodeToString(ks.first.id[:]) }

// Seal encrypts plain, bound to context (the record's kind and key, so
// that a sealed value moved to another record does not open). The result
// is: version, key ID, nonce, ciphertext with tag.
func (ks *Keys) Seal(plain []byte, context string) []byte {
	k := ks.first
	n := k.aead.NonceSize()
	out := make([]byte, 1+idLen+n, 1+idLen+n+len(plain)+k.aead.Overhead())
	out[0] = version
	copy(out[1:], k.id[:])
	nonce := out[1+idLen:]
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return k.aead.Seal(out, nonce, plain, []byte(context))
}

// ErrUnknownKey means a value was sealed with a key that is not configured
// (any more).
var ErrUnknownKey = errors.New("sealed with an encryption key that is not configured")

// Open decrypts a value sealed by Seal with any of the keys and the same
// context.
func (ks *Keys) Open(sealed []byte, context string) ([]byte, error) {
	if len(sealed) < 1+idLen || sealed[0] != version {
		return nil, errors.New("not a sealed value")
	}
	var id [idLen]byte
	copy(id[:], sealed[1:])
	k := ks.byID[id]
	if k == nil {
		return nil, fmt.Errorf("%w (key id %x)", ErrUnknownKey, id)
	}
	rest := sealed[1+idLen:]
	n := k.aead.NonceSize()
	if len(rest) < n+k.aead.Overhead() {
		return nil, errors.New("sealed value too short")
	}
	plain, err := k.aead.Open(nil, rest[:n], rest[n:], []byte(context))
	if err != nil {
		return nil, errors.New("sealed value does not open: altered, or sealed for another record")
	}
	return plain, nil
}

// SealedWithCurrent reports whether sealed was made with the sealing key
// (a value sealed with an older key is rewritten when next stored).
func (ks *Keys) SealedWithCurrent(sealed []byte) bool {
	return len(sealed) >= 1+idLen && bytes.Equal(sealed[1:1+idLen], ks.first.id[:])
}

// Hash is the lookup key for a secret value (a token signature, an OAuth
// state): SHA-256, base64url without padding. Such values are random and
// long, so their hash cannot be reversed or guessed.
func Hash(value string) string {
	sum := sha256.Sum256([]byte(value))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
