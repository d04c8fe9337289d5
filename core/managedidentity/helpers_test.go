package managedidentity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/pop"
	"github.com/mtlspop/mtlspop/core/token"
)

// waits records the retry waits a client asked for and skips them.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) wait(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

func (w *waits) take() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.d
	w.d = nil
	return out
}

func startEmulator(t testing.TB, cfg emulator.Config) *emulator.Emulator {
	t.Helper()
	emu, err := emulator.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	return emu
}

// clientFor returns a client wired to emu: its environment (not the process's), its CA, and
// recorded retry waits.
func clientFor(t testing.TB, emu *emulator.Emulator, id managedidentity.ID, w *waits, opts ...managedidentity.Option) *managedidentity.Client {
	t.Helper()
	env := emu.Env()
	if w == nil {
		w = &waits{}
	}
	base := []managedidentity.Option{
		managedidentity.WithEnv(func(k string) string { return env[k] }),
		managedidentity.WithRootCAs(emu.RootCAs()),
		managedidentity.WithRetryWait(w.wait),
	}
	c, err := managedidentity.New(id, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func wantCode(t testing.TB, err error, code token.Code) *token.Error {
	t.Helper()
	var te *token.Error
	if !errors.As(err, &te) {
		t.Fatalf("err = %v (%T), want *token.Error %s", err, err, code)
	}
	if te.Code != code || !errors.Is(err, code) {
		t.Fatalf("code = %s (%v), want %s", te.Code, err, code)
	}
	return te
}

// verify checks a token the way a resource does, against the emulator's signing keys.
func verify(t testing.TB, emu *emulator.Emulator, res token.Result, aud string) *pop.Claims {
	t.Helper()
	v := &pop.Verifier{Keys: emu.Keys(), Issuer: emu.Issuer(), Audiences: []string{aud}, AllowUnbound: !res.IsPoP()}
	claims, err := v.Verify(context.Background(), res.AuthorizationHeader(), res.BindingCertificate)
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	return claims
}

func callResource(t testing.TB, c *managedidentity.Client, url string, res token.Result) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(context.Background(), req, res)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// selfSigned makes a client certificate that the emulator never issued.
func selfSigned(t testing.TB, notBefore, notAfter time.Time) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "someone else"},
		NotBefore: notBefore, NotAfter: notAfter, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func ptr[T any](v T) *T { return &v }
