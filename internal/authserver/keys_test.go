package authserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

func pemOf(t *testing.T, typ string, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// TestKeyRotation: the first key signs; every configured key is published,
// so tokens signed before a rotation still verify.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	rsaPEM := pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey))

	old, err := newKeys([][]byte{rsaPEM})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := newKeys([][]byte{pemOf(t, "PRIVATE KEY", pkcs8), rsaPEM})
	if err != nil {
		t.Fatal(err)
	}
	if rotated.signing.Algorithm != "ES256" || len(rotated.public.Keys) != 2 {
		t.Fatalf("rotated: signs with %s, publishes %d keys", rotated.signing.Algorithm, len(rotated.public.Keys))
	}
	if len(rotated.public.Key(old.signing.KeyID)) != 1 {
		t.Error("the previous key is not published after rotation")
	}
	for _, k := range rotated.public.Keys {
		if !k.IsPublic() {
			t.Errorf("key %s published with its private part", k.KeyID)
		}
	}
	if k, err := newKeys([][]byte{pemOf(t, "EC PRIVATE KEY", sec1)}); err != nil || k.signing.KeyID != rotated.signing.KeyID {
		t.Errorf("SEC 1 form of the same key: %v, kid %v (want the same thumbprint)", err, k)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := newKeys([][]byte{pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small))}); err == nil {
		t.Error("a 1024-bit RSA key was accepted")
	}
	if _, err := newKeys([][]byte{[]byte("not pem")}); err == nil {
		t.Error("garbage was accepted as a key")
	}
	if k, err := newKeys(nil); err != nil || k.signing == nil {
		t.Errorf("generated key: %v", err)
	}
}
