package mtls

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/token"
)

type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T) *ca {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &ca{cert, key}
}

func (c *ca) issue(t *testing.T, cn string, server bool) *tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func (c *ca) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.cert)
	return p
}

// server starts an HTTPS server with a certificate from serverCA that requires client
// certificates from clientCA and echoes the Authorization header and the client's CN.
func server(t *testing.T, serverCA, clientCA *ca, h http.HandlerFunc) *httptest.Server {
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.Header.Get("Authorization")+"|"+r.TLS.PeerCertificates[0].Subject.CommonName)
		}
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{*serverCA.issue(t, "server", true)},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCA.pool()}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestDoPresentsTheBindingCertificate(t *testing.T) {
	serverCA, clientCA := newCA(t), newCA(t)
	srv := server(t, serverCA, clientCA, nil)
	p := NewPool(serverCA.pool())
	defer p.Close()
	cert := clientCA.issue(t, "binding", false)
	res := token.Result{AccessToken: "tok", TokenType: token.TypeMtlsPoP}.Bind(cert)
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Authorization", "stale")
	resp, err := p.Do(context.Background(), req, res)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "mtls_pop tok|binding" || req.Header.Get("Authorization") != "stale" {
		t.Fatalf("server saw %q; caller's request modified: %v", body, req.Header.Get("Authorization") != "stale")
	}
	if p.Client(cert) != p.Client(cert) {
		t.Fatal("the pool built a second client for the same certificate")
	}
	first := p.Client(cert)
	p.Evict(cert)
	if p.Client(cert) == first {
		t.Fatal("Evict kept the client")
	}
	if p.Client(clientCA.issue(t, "other", false)) == first || p.Client(nil) != p.Client(nil) {
		t.Fatal("clients shared across certificates, or plain client not reused")
	}
}

func TestDoRefuses(t *testing.T) {
	serverCA, clientCA := newCA(t), newCA(t)
	p := NewPool(serverCA.pool())
	cert := clientCA.issue(t, "binding", false)
	pop := token.Result{AccessToken: "tok", TokenType: token.TypeMtlsPoP}.Bind(cert)
	httpReq, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/", nil)
	httpsReq, _ := http.NewRequest(http.MethodGet, "https://127.0.0.1:1/", nil)
	cases := map[string]struct {
		req  *http.Request
		res  token.Result
		code token.Code
	}{
		"cleartext":     {httpReq, pop, token.CodeInvalidArgument},
		"nil request":   {nil, pop, token.CodeInvalidArgument},
		"no token":      {httpsReq, token.Result{}, token.CodeInvalidArgument},
		"pop, no cert":  {httpsReq, pop.Bind(nil), token.CodeMtlsCertificateNotProvided},
		"nobody listen": {httpsReq, pop, token.CodeNetwork},
	}
	for name, tc := range cases {
		if _, err := p.Do(context.Background(), tc.req, tc.res); token.CodeOf(err) != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Do(ctx, httpsReq, pop); token.CodeOf(err) != token.CodeCanceled {
		t.Errorf("canceled: %v", err)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	serverCA, clientCA := newCA(t), newCA(t)
	srv := server(t, serverCA, clientCA, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://evil.example/steal", http.StatusFound)
	})
	p := NewPool(serverCA.pool())
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	resp, err := p.Do(context.Background(), req, token.Result{AccessToken: "tok", TokenType: "mtls_pop"}.Bind(clientCA.issue(t, "c", false)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d: the redirect was followed", resp.StatusCode)
	}
}

func TestIsHandshakeRefusal(t *testing.T) {
	serverCA, clientCA := newCA(t), newCA(t)
	srv := server(t, serverCA, clientCA, nil)
	get := func(roots *x509.CertPool, cert *tls.Certificate) error {
		resp, err := NewPool(roots).Client(cert).Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(serverCA.pool(), newCA(t).issue(t, "foreign", false)); err == nil || !IsHandshakeRefusal(err) {
		t.Fatalf("a refused client certificate: %v (refusal %v)", err, IsHandshakeRefusal(err))
	}
	if err := get(serverCA.pool(), nil); err == nil || !IsHandshakeRefusal(err) {
		t.Fatalf("no client certificate: %v", err)
	}
	err := get(newCA(t).pool(), clientCA.issue(t, "ok", false))
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) || IsHandshakeRefusal(err) {
		t.Fatalf("an untrusted server is not a refusal of our certificate: %v", err)
	}
	if !IsHandshakeRefusal(fmt.Errorf("post: %w", io.ErrUnexpectedEOF)) {
		t.Fatal("a connection closed without an answer is a refusal")
	}
	if IsHandshakeRefusal(errors.New("other")) || IsHandshakeRefusal(nil) {
		t.Fatal("plain errors are not refusals")
	}
}

func TestHookClientConfig(t *testing.T) {
	stale := tls.Certificate{}
	cfg := &tls.Config{Certificates: []tls.Certificate{stale}, MinVersion: tls.VersionTLS10}
	HookClientConfig(cfg, nil)
	if cfg.Certificates != nil || cfg.GetClientCertificate != nil || cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("%+v", cfg)
	}
	cert := &tls.Certificate{}
	cfg = ClientConfig(cert, nil)
	if got, _ := cfg.GetClientCertificate(nil); got != cert || cfg.MinVersion != tls.VersionTLS12 {
		t.Fatal("ClientConfig does not present the certificate")
	}
	cfg = &tls.Config{MinVersion: tls.VersionTLS13}
	HookClientConfig(cfg, cert)
	if cfg.MinVersion != tls.VersionTLS13 {
		t.Fatal("HookClientConfig lowered MinVersion")
	}
}

func TestRSAKeyWithoutPSSStaysOnTLS12(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	leaf, _ := x509.ParseCertificate(der)
	cert := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf,
		SupportedSignatureAlgorithms: []tls.SignatureScheme{tls.PKCS1WithSHA256}}
	if ClientConfig(cert, nil).MaxVersion != tls.VersionTLS12 {
		t.Fatal("an RSA key that cannot sign PSS must stay on TLS 1.2")
	}
	cert.SupportedSignatureAlgorithms = append(cert.SupportedSignatureAlgorithms, tls.PSSWithSHA256)
	if ClientConfig(cert, nil).MaxVersion != 0 {
		t.Fatal("a key that signs PSS was held back from TLS 1.3")
	}
	cert.SupportedSignatureAlgorithms = nil
	if ClientConfig(cert, nil).MaxVersion != 0 {
		t.Fatal("an unrestricted key was held back from TLS 1.3")
	}
}

func TestRootsFromTheLiveEnvironment(t *testing.T) {
	serverCA, clientCA := newCA(t), newCA(t)
	srv := server(t, serverCA, clientCA, nil)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serverCA.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(certDir, "x.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serverCA.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	works := func(getenv func(string) string, file string) bool {
		roots, err := Roots(getenv, file)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := NewPool(roots).Client(clientCA.issue(t, "c", false)).Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}
	none := func(string) string { return "" }
	if works(none, "") {
		t.Fatal("trusted a private CA with no configuration")
	}
	if !works(func(k string) string { return map[string]string{"SSL_CERT_FILE": caFile}[k] }, "") {
		t.Fatal("SSL_CERT_FILE not honoured")
	}
	if !works(func(k string) string { return map[string]string{"SSL_CERT_DIR": "/nonexistent:" + certDir}[k] }, "") {
		t.Fatal("SSL_CERT_DIR not honoured")
	}
	if !works(none, caFile) {
		t.Fatal("ca_file not honoured")
	}
	if _, err := Roots(none, filepath.Join(dir, "missing.pem")); token.CodeOf(err) != token.CodeInvalidArgument {
		t.Fatalf("missing ca_file: %v", err)
	}
	junk := filepath.Join(dir, "junk.pem")
	_ = os.WriteFile(junk, []byte("not pem"), 0o600)
	if _, err := Roots(none, junk); token.CodeOf(err) != token.CodeInvalidArgument {
		t.Fatalf("ca_file without PEM: %v", err)
	}
}

// Close releases every connection, including one whose request is still in flight (which
// CloseIdleConnections would leave open).
func TestCloseReleasesBusyConnections(t *testing.T) {
	serverCA, clientCA := newCA(t), newCA(t)
	release := make(chan struct{})
	defer close(release)
	arrived := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{*serverCA.issue(t, "server", true)},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCA.pool()}
	var open atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	p := NewPool(serverCA.pool())
	cert := clientCA.issue(t, "c", false)
	done := make(chan error, 1)
	go func() {
		resp, err := p.Client(cert).Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-arrived
	p.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a request in flight survived Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not cut the busy connection")
	}
	deadline := time.Now().Add(5 * time.Second)
	for open.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if open.Load() != 0 {
		t.Fatalf("%d server connections still open after Close", open.Load())
	}
	if _, err := p.Client(cert).Get(srv.URL); err == nil {
		t.Fatal("a closed pool dialled a new connection")
	}
}
