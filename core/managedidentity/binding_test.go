package managedidentity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/internal/wire"
	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/token"
)

// certFor issues a certificate for pub from a throwaway CA.
func certFor(t testing.TB, pub any, notBefore, notAfter time.Time) string {
	t.Helper()
	ca, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "c"}, NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, ca)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

func TestNewBinding(t *testing.T) {
	now := time.Now()
	key, _ := keys.NewSoftware().Key(context.Background(), "s")
	other, _ := keys.NewSoftware().Key(context.Background(), "s")
	good := certFor(t, key.Public(), now.Add(-time.Minute), now.Add(7*24*time.Hour))
	cred := func(cert, endpoint, tenant string) wire.IssuedCredential {
		return wire.IssuedCredential{ClientID: "c", TenantID: tenant, Certificate: cert, IdentityType: "SystemAssigned", MTLSAuthenticationEndpoint: endpoint}
	}
	b, err := newBinding(cred(good, "https://mtls.example/", "/tenant/"), key, now)
	if err != nil {
		t.Fatal(err)
	}
	if b.tokenURL != "https://mtls.example/tenant/oauth2/v2.0/token" || b.clientID != "c" || b.cert.PrivateKey != key {
		t.Fatalf("%+v", b)
	}
	if want := b.cert.Leaf.NotAfter.Add(-24 * time.Hour); b.renewAt != want.UnixNano() {
		t.Fatalf("renewAt %v, want %v", b.renewAt, want)
	}
	cases := map[string]struct {
		cred wire.IssuedCredential
		code token.Code
	}{
		"not base64":      {cred("***", "https://m", "t"), token.CodeInvalidCertificate},
		"not a cert":      {cred("AAAA", "https://m", "t"), token.CodeInvalidCertificate},
		"another key":     {cred(certFor(t, other.Public(), now.Add(-time.Minute), now.Add(time.Hour)), "https://m", "t"), token.CodeInvalidCertificate},
		"expired":         {cred(certFor(t, key.Public(), now.Add(-2*time.Hour), now.Add(-time.Hour)), "https://m", "t"), token.CodeInvalidCertificate},
		"not yet valid":   {cred(certFor(t, key.Public(), now.Add(time.Hour), now.Add(2*time.Hour)), "https://m", "t"), token.CodeInvalidCertificate},
		"http endpoint":   {cred(good, "http://mtls.example", "t"), token.CodeManagedIdentityRequestFailed},
		"no host":         {cred(good, "https://", "t"), token.CodeManagedIdentityRequestFailed},
		"tenant with a /": {cred(good, "https://m", "a/b"), token.CodeManagedIdentityRequestFailed},
		"tenant with a ?": {cred(good, "https://m", "a?b"), token.CodeManagedIdentityRequestFailed},
	}
	for name, tc := range cases {
		if _, err := newBinding(tc.cred, key, now); token.CodeOf(err) != tc.code {
			t.Errorf("%s: err = %v, want %s", name, err, tc.code)
		}
	}
}

func TestRenewPoint(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for lifetime, margin := range map[time.Duration]time.Duration{
		7 * 24 * time.Hour: 24 * time.Hour,
		48 * time.Hour:     24 * time.Hour,
		10 * time.Hour:     5 * time.Hour,
		time.Hour:          30 * time.Minute,
	} {
		if got := renewPoint(start, start.Add(lifetime)); !got.Equal(start.Add(lifetime - margin)) {
			t.Errorf("lifetime %v: renew at %v, want %v before expiry", lifetime, got, margin)
		}
	}
}

func FuzzNewBinding(f *testing.F) {
	key, _ := keys.NewSoftware().Key(context.Background(), "s")
	f.Add(certFor(f, key.Public(), time.Now().Add(-time.Minute), time.Now().Add(time.Hour)), "https://m", "t")
	f.Add("MIIB", "https://m", "t")
	f.Fuzz(func(t *testing.T, cert, endpoint, tenant string) {
		b, err := newBinding(wire.IssuedCredential{ClientID: "c", TenantID: tenant, Certificate: cert, IdentityType: "x",
			MTLSAuthenticationEndpoint: endpoint}, key, time.Now())
		if err == nil && (b.cert.Leaf == nil || b.thumbprint == "" || b.renewAt == 0) {
			t.Fatalf("incomplete binding %+v", b)
		}
	})
}
