package authserver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v3"
)

// keys are the access-token signing keys: the first signs, every one is
// published, so tokens signed before a rotation stay valid until they
// expire.
type keys struct {
	signing *jose.JSONWebKey // private
	public  jose.JSONWebKeySet
}

// newKeys parses PEM private keys (PKCS#8, PKCS#1 RSA or SEC 1 EC), or
// generates an RSA key when there are none.
func newKeys(pems [][]byte) (*keys, error) {
	var privs []crypto.Signer
	for i, p := range pems {
		k, err := parsePrivateKey(p)
		if err != nil {
			return nil, fmt.Errorf("signing key %d: %w", i, err)
		}
		privs = append(privs, k)
	}
	if len(privs) == 0 {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		privs = append(privs, k)
	}
	ks := &keys{}
	for i, p := range privs {
		jwk, err := toJWK(p)
		if err != nil {
			return nil, fmt.Errorf("signing key %d: %w", i, err)
		}
		if i == 0 {
			ks.signing = jwk
		}
		ks.public.Keys = append(ks.public.Keys, jwk.Public())
	}
	return ks, nil
}

// verify checks a compact JWS access token against the published keys,
// its issuer and expiry, and returns its claims.
func (k *keys) verify(raw, issuer string, now time.Time) (map[string]any, error) {
	jws, err := jose.ParseSigned(raw)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, errors.New("not a signed JWT")
	}
	h := jws.Signatures[0].Header
	keys := k.public.Key(h.KeyID)
	if len(keys) != 1 || keys[0].Algorithm != h.Algorithm {
		return nil, errors.New("unknown signing key")
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		return nil, errors.New("bad signature")
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, errors.New("payload is not a JSON object")
	}
	if claims["iss"] != issuer {
		return nil, errors.New("another issuer")
	}
	exp, ok := claims["exp"].(float64)
	if !ok || now.After(time.Unix(int64(exp), 0)) {
		return nil, errors.New("expired")
	}
	return claims, nil
}

func parsePrivateKey(p []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(p)
	if block == nil {
		return nil, errors.New("not PEM")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, errors.New("not a PKCS#8, PKCS#1 or SEC 1 private key")
}

func toJWK(k crypto.Signer) (*jose.JSONWebKey, error) {
	jwk := &jose.JSONWebKey{Key: k, Use: "sig"}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, errors.New("RSA keys must have at least 2048 bits")
		}
		jwk.Algorithm = string(jose.RS256)
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("EC keys must use P-256")
		}
		jwk.Algorithm = string(jose.ES256)
	default:
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	pub := jwk.Public()
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	return jwk, nil
}
