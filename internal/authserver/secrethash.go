package authserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"

	"github.com/ory/fosite"
)

// secretHasher hashes client secrets with SHA-256 and compares them in
// constant time. Every client secret vmcp checks is a high-entropy key, not
// a password: registration generates 256 random bits, and static clients'
// secrets are configured and never stored (they are hashed at start-up).
// A slow password hash (bcrypt) adds nothing against guessing such a key,
// and costs ~50 ms of CPU per check at cost 10 — on an endpoint anyone can
// reach without credentials (a token request with a registered client_id
// and any secret), which made a few requests a second a CPU exhaustion
// attack (BenchmarkClientSecretCheck).
type secretHasher struct{}

var _ fosite.Hasher = secretHasher{}

// errSecretMismatch is the error of a wrong client secret.
var errSecretMismatch = errors.New("client secret does not match")

func (secretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	return hashSecret(data), nil
}

func (secretHasher) Compare(_ context.Context, hash, data []byte) error {
	h := hashSecret(data)
	if subtle.ConstantTimeCompare(hash, h) != 1 {
		return errSecretMismatch
	}
	return nil
}

// hashSecret is the stored form of a client secret.
func hashSecret(secret []byte) []byte {
	sum := sha256.Sum256(secret)
	return sum[:]
}
