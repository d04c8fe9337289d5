package tpm_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/mtlspop/mtlspop/core/tpm"
)

// The TPM key signs real TLS 1.3 and TLS 1.2 handshakes against a Go server that requires and
// verifies client certificates. A new connection costs exactly one TPM2_Sign; a request on a
// kept-alive connection and a resumed session cost no TPM command at all.
func TestTLSHandshakes(t *testing.T) {
	sim := openSimulator(t)
	for _, alg := range []tpm.Algorithm{tpm.RSA2048, tpm.ECCP256} {
		p := openProvider(t, sim, tpm.Config{Algorithm: alg})
		k, err := p.TPMKey(ctx, "tls")
		if err != nil {
			t.Fatal(err)
		}
		ca := newTestCA(t)
		cert := ca.issue(t, k)
		for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
			t.Run(fmt.Sprintf("%s/%s", alg, tls.VersionName(version)), func(t *testing.T) {
				handshakes(t, p.Commands, ca, cert, version)
			})
		}
		// The algorithms the key advertises are enough for a handshake on their own.
		t.Run(fmt.Sprintf("%s/restricted-algorithms", alg), func(t *testing.T) {
			c := cert
			c.SupportedSignatureAlgorithms = k.SupportedSignatureAlgorithms()
			handshakes(t, p.Commands, ca, c, tls.VersionTLS13)
		})
		p.Close()
	}
}

// delta returns what was sent since the last call: a counter that resets itself.
func delta(counts func() map[tpm2.TPMCC]uint64) func() map[tpm2.TPMCC]uint64 {
	last := counts()
	return func() map[tpm2.TPMCC]uint64 {
		now := counts()
		d := map[tpm2.TPMCC]uint64{}
		for k, v := range now {
			if v != last[k] {
				d[k] = v - last[k]
			}
		}
		last = now
		return d
	}
}

func total(m map[tpm2.TPMCC]uint64) (n uint64) {
	for _, v := range m {
		n += v
	}
	return n
}

func handshakes(t *testing.T, counts func() map[tpm2.TPMCC]uint64, ca *testCA, cert tls.Certificate, version uint16) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 || !r.TLS.PeerCertificates[0].Equal(cert.Leaf) {
			http.Error(w, "wrong client certificate", http.StatusForbidden)
			return
		}
		fmt.Fprint(w, tls.VersionName(r.TLS.Version))
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool, MinVersion: version, MaxVersion: version}
	srv.StartTLS()
	defer srv.Close()

	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs:            roots,
		Certificates:       []tls.Certificate{cert},
		ClientSessionCache: tls.NewLRUClientSessionCache(8),
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	get := func(wantResumed bool) {
		t.Helper()
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(body) != tls.VersionName(version) {
			t.Fatalf("server answered %d %q", resp.StatusCode, body)
		}
		if resp.TLS.DidResume != wantResumed {
			t.Fatalf("DidResume = %v, want %v", resp.TLS.DidResume, wantResumed)
		}
	}

	sent := delta(counts)
	get(false)
	if d := sent(); d[tpm2.TPMCCSign] != 1 || total(d) != 1 {
		t.Errorf("new connection: %v, want exactly one TPM2_Sign", named(d))
	}
	get(false)
	if d := sent(); total(d) != 0 {
		t.Errorf("request on a kept-alive connection: %v, want no TPM command", named(d))
	}
	tr.CloseIdleConnections()
	get(true)
	if d := sent(); total(d) != 0 {
		t.Errorf("resumed handshake: %v, want no TPM command", named(d))
	}
}
