package tpm_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/simulator"

	"github.com/mtlspop/mtlspop/core/tpm"
)

// openSimulator starts the in-process TPM simulator (cgo; test files only). It is a process
// singleton: a second call blocks until the first is closed, which Cleanup does.
func openSimulator(t testing.TB) transport.TPMCloser {
	t.Helper()
	sim, err := simulator.OpenSimulator()
	if err != nil {
		t.Fatalf("opening the TPM simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

// openProvider opens a Provider on tr with a fresh state directory unless cfg names one.
func openProvider(t testing.TB, tr transport.TPM, cfg tpm.Config) *tpm.Provider {
	t.Helper()
	cfg.Transport = tr
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	p, err := tpm.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("tpm.Open: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// swtpmDevice returns MTLSPOP_SWTPM ("tcp://127.0.0.1:2321"), skipping the test with the reason
// when it is unset (ci/tpm.sh starts swtpm and sets it).
func swtpmDevice(t testing.TB) string {
	t.Helper()
	d := os.Getenv("MTLSPOP_SWTPM")
	if d == "" {
		t.Skip("MTLSPOP_SWTPM is not set: swtpm integration tests run from ci/tpm.sh test, which starts swtpm")
	}
	return d
}

// testCA issues client certificates for keys under test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tpm test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a client certificate for signer's key, with the signer as its private key.
func (ca *testCA) issue(t testing.TB, signer crypto.Signer) tls.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "tpm client"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca.cert, signer.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: signer, Leaf: leaf}
}
