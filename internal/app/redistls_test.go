package app_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
	"github.com/vmcp-dev/vmcp/internal/testsupport/redistest"
	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// testCA makes a certificate authority and, in dir, a certificate it
// signs for 127.0.0.1 with its key (PEM files). It returns the authority's
// certificate (PEM) and the two files.
func testCA(t *testing.T, dir string) (caPEM []byte, certFile, keyFile string) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vmcp test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey := key()
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redis"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "redis.crt"), filepath.Join(dir, "redis.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), certFile, keyFile
}

// TestRedisTLSCARef: a Redis that speaks TLS only, with a certificate of
// the test's own CA. vmcp trusts the CA given by storage.redis.tls.caRef
// (a secret reference, as the operator mounts it), becomes ready and
// keeps a login there; with another CA there it refuses the server, and
// /readyz says why.
func TestRedisTLSCARef(t *testing.T) {
	dir := t.TempDir()
	caPEM, certFile, keyFile := testCA(t, dir)
	otherCA, _, _ := testCA(t, t.TempDir())
	srv := redistest.Start(t, &redistest.Options{TLSCertFile: certFile, TLSKeyFile: keyFile})
	idp := fakeidp.Start(t, fakeidp.Options{})
	t.Setenv("VMCP_SECRET_STORE_KEY", "redis-tls-0123456789abcdef0123456789")
	t.Setenv("VMCP_SECRET_REDIS_TLS_CA_CRT", string(caPEM))
	t.Setenv("VMCP_SECRET_OTHER_CA_CA_CRT", string(otherCA))
	storage := func(caSecret string) string {
		return fmt.Sprintf(`  type: redis
  encryptionKeyRefs: [{name: store, key: key}]
  redis:
    addr: %s
    tls: {caRef: {name: %s, key: ca.crt}}`, srv.Addr, caSecret)
	}

	addr := vmcptest.FreeAddr(t)
	base := "http://" + addr
	vmcptest.Start(t, storageDoc(t, idp, addr, storage("redis-tls")), nil)
	tok := vmcptest.Login(t, base)
	if status, body := mcpPing(t, base, tok.Access); status != http.StatusOK {
		t.Fatalf("a request with a token kept in Redis over TLS: %d %s", status, body)
	}

	other := vmcptest.FreeAddr(t)
	a, _ := vmcptest.New(t, storageDoc(t, idp, other, storage("other-ca")), nil)
	a.Start()
	t.Cleanup(func() { shutdown(t, a) })
	waitFor(t, "a gateway that does not trust Redis's certificate did not say so in /readyz", func() bool {
		status, h := readiness(t, "http://"+other)
		return status == http.StatusServiceUnavailable && strings.Contains(fmt.Sprint(h["dependencies"]), "certificate")
	})
}
