package token

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"
)

const secret = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJl"

func testCert(t *testing.T) *tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "c"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func TestResultNeverPrintsTheToken(t *testing.T) {
	r := Result{AccessToken: secret, TokenType: TypeMtlsPoP, ExpiresOn: time.Now().Add(time.Hour), RefreshOn: time.Now()}.Bind(testCert(t))
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("got", "result", r)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("got", "result", r)
	out := fmt.Sprintf("%v|%+v|%#v|%s|%q|%x|%d|%v|%v", r, r, r, r, r, r, r, &r, []Result{r}) + logs.String()
	if strings.Contains(out, "c2lnbmF0dXJl") || strings.Contains(out, "eyJzdWIi") {
		t.Fatalf("token printed: %s", out)
	}
	if !strings.Contains(out, "<redacted 56 bytes>") || !strings.Contains(out, r.Thumbprint()) {
		t.Fatalf("expected a redaction marker and the thumbprint: %s", out)
	}
	if r.AuthorizationHeader() != "mtls_pop "+secret {
		t.Fatal(r.AuthorizationHeader())
	}
}

func TestBindAndThumbprint(t *testing.T) {
	c := testCert(t)
	sum := sha256.Sum256(c.Certificate[0])
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	r := Result{TokenType: TypeMtlsPoP}.Bind(c)
	if r.Thumbprint() != want || Thumbprint(c.Leaf) != want || r.BindingCertificate != c.Leaf || r.TLSCertificatePtr() != c || !r.IsPoP() {
		t.Fatalf("thumbprint %q want %q", r.Thumbprint(), want)
	}
	if got := r.TLSCertificate(); got.PrivateKey != c.PrivateKey {
		t.Fatal("TLSCertificate lost the signer")
	}
	if u := r.Bind(nil); u.BindingCertificate != nil || u.Thumbprint() != "" || u.TLSCertificate().PrivateKey != nil {
		t.Fatal("Bind(nil) kept the certificate")
	}
	if Thumbprint(nil) != "" || (Result{TokenType: "Bearer"}).IsPoP() {
		t.Fatal("nil/bearer")
	}
}

func TestErrorMatching(t *testing.T) {
	cause := errors.New("dial tcp: refused")
	err := fmt.Errorf("outer: %w", &Error{Code: CodeInvalidClient, Message: "refused", Status: 401, Err: cause})
	var te *Error
	if !errors.As(err, &te) || te.Status != 401 {
		t.Fatal("errors.As")
	}
	if !errors.Is(err, CodeInvalidClient) || errors.Is(err, CodeTokenTypeMismatch) || !errors.Is(err, &Error{Code: CodeInvalidClient}) || !errors.Is(err, cause) {
		t.Fatal("errors.Is")
	}
	if CodeOf(err) != CodeInvalidClient || CodeOf(cause) != "" || CodeOf(nil) != "" {
		t.Fatal("CodeOf")
	}
	if got := te.Error(); got != "mtlspop: invalid_client: refused: dial tcp: refused (status 401)" {
		t.Fatal(got)
	}
	if got := Errorf(CodeCanceled, "x %d", 1).Error(); got != "mtlspop: canceled: x 1" {
		t.Fatal(got)
	}
	if CodeClosed.Error() != "mtlspop: client_closed" {
		t.Fatal(CodeClosed.Error())
	}
}

func TestTokenSourceNames(t *testing.T) {
	if SourceCache.String() != "cache" || SourceIdentityProvider.String() != "identity_provider" {
		t.Fatal("source names are part of every surface's API")
	}
}
