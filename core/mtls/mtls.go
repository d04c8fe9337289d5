// Package mtls makes HTTPS calls that present a binding certificate: the token leg of the
// IMDSv2 flow, the confidential client's mtlsauth calls, and calls to the resource.
//
// A Pool keeps one *http.Client per certificate, so connections are reused and the binding key
// signs once per new TLS connection, not once per request (this matters when the key is in a
// TPM). The key reaches the handshake as a crypto.Signer; it is never copied.
package mtls

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mtlspop/mtlspop/core/token"
)

// ClientConfig returns a new tls.Config that presents cert and trusts roots.
func ClientConfig(cert *tls.Certificate, roots *x509.CertPool) *tls.Config {
	cfg := &tls.Config{RootCAs: roots}
	HookClientConfig(cfg, cert)
	return cfg
}

// HookClientConfig adjusts an existing config to present cert: it clears the client-auth fields
// first (so a stale certificate cannot linger), raises MinVersion to TLS 1.2, and installs
// GetClientCertificate. A nil cert presents no certificate.
func HookClientConfig(cfg *tls.Config, cert *tls.Certificate) {
	cfg.Certificates = nil
	cfg.GetClientCertificate = nil
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		if needsTLS12(cert) {
			cfg.MaxVersion = tls.VersionTLS12
		}
	}
}

// needsTLS12 reports whether cert's key is RSA and cannot sign RSA-PSS (a TPM that uses the
// maximum PSS salt restricts itself to PKCS#1 v1.5): TLS 1.3 allows only PSS for RSA client
// signatures, so such a certificate can authenticate only over TLS 1.2.
func needsTLS12(cert *tls.Certificate) bool {
	if cert.SupportedSignatureAlgorithms == nil || cert.Leaf == nil {
		return false
	}
	if _, ok := cert.Leaf.PublicKey.(*rsa.PublicKey); !ok {
		return false
	}
	for _, s := range cert.SupportedSignatureAlgorithms {
		switch s {
		case tls.PSSWithSHA256, tls.PSSWithSHA384, tls.PSSWithSHA512:
			return false
		}
	}
	return true
}

// maxPooled bounds the pool: certificates rotate every few days and are evicted when replaced,
// so this only guards against a caller minting certificates in a loop.
const maxPooled = 64

// Pool hands out HTTP clients per binding certificate. It is safe for concurrent use.
type Pool struct {
	roots *x509.CertPool

	mu      sync.Mutex
	clients map[*tls.Certificate]*pooled
	plain   *http.Client
	closed  bool
	conns   map[*trackedConn]struct{} // every open connection, so Close can release them all
}

// trackedConn removes itself from its pool's set when closed.
type trackedConn struct {
	net.Conn
	pool *Pool
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.pool.mu.Lock()
		delete(c.pool.conns, c)
		c.pool.mu.Unlock()
	})
	return c.Conn.Close()
}

// dial opens a connection the pool can close on Close, even one whose request is still being
// torn down (CloseIdleConnections skips those, and an HTTP/2 connection would linger).
func (p *Pool) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, pool: p}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	p.conns[tc] = struct{}{}
	return tc, nil
}

type pooled struct {
	client *http.Client
	used   time.Time
}

// NewPool returns a pool whose clients trust roots (nil: the system roots).
func NewPool(roots *x509.CertPool) *Pool {
	return &Pool{roots: roots, clients: make(map[*tls.Certificate]*pooled), conns: make(map[*trackedConn]struct{})}
}

func (p *Pool) newClient(cert *tls.Certificate) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           p.dial,
		TLSClientConfig:       ClientConfig(cert, p.roots),
		TLSHandshakeTimeout:   10 * time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	// Session resumption lets a reconnect skip the client-certificate signature.
	tr.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(32)
	return &http.Client{Transport: tr, CheckRedirect: noRedirects}
}

// noRedirects keeps a token, and the certificate-bound connection, from following a redirect to
// a host the caller did not name.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Client returns the pooled client presenting cert; nil cert gives a client with server
// authentication only. Clients are keyed by the certificate pointer: a renewed certificate is a
// new pointer, so it never shares connections with its predecessor.
func (p *Pool) Client(cert *tls.Certificate) *http.Client {
	p.mu.Lock()
	if cert == nil {
		if p.plain == nil {
			p.plain = p.newClient(nil)
		}
		c := p.plain
		p.mu.Unlock()
		return c
	}
	if c, ok := p.clients[cert]; ok {
		c.used = time.Now()
		p.mu.Unlock()
		return c.client
	}
	var evicted *http.Client
	if len(p.clients) >= maxPooled {
		evicted = p.removeOldestLocked()
	}
	c := &pooled{client: p.newClient(cert), used: time.Now()}
	if !p.closed {
		p.clients[cert] = c
	}
	p.mu.Unlock()
	if evicted != nil {
		evicted.CloseIdleConnections() // outside p.mu: closing a connection untracks it
	}
	return c.client
}

func (p *Pool) removeOldestLocked() *http.Client {
	var oldest *tls.Certificate
	for k, c := range p.clients {
		if oldest == nil || c.used.Before(p.clients[oldest].used) {
			oldest = k
		}
	}
	if oldest == nil {
		return nil
	}
	c := p.clients[oldest].client
	delete(p.clients, oldest)
	return c
}

// Evict drops the client of a certificate that was replaced or refused, closing its idle
// connections.
func (p *Pool) Evict(cert *tls.Certificate) {
	p.mu.Lock()
	c, ok := p.clients[cert]
	delete(p.clients, cert)
	p.mu.Unlock()
	if ok {
		c.client.CloseIdleConnections()
	}
}

// Close closes every connection the pool opened, busy or idle. Clients handed out before fail
// from then on; the pool dials no more connections.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	clients := make([]*http.Client, 0, len(p.clients)+1)
	for k, c := range p.clients {
		clients = append(clients, c.client)
		delete(p.clients, k)
	}
	if p.plain != nil {
		clients = append(clients, p.plain)
	}
	conns := make([]*trackedConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	for _, c := range conns {
		_ = c.Close() // takes p.mu to untrack itself
	}
}

// Do calls a resource with the token in res: it clones req, sets
// "Authorization: <token_type> <token>", and for a PoP token presents the binding certificate.
// Tokens are only ever sent over HTTPS, and redirects are not followed. The caller closes the
// response body.
func (p *Pool) Do(ctx context.Context, req *http.Request, res token.Result) (*http.Response, error) {
	if req == nil || req.URL == nil {
		return nil, token.Errorf(token.CodeInvalidArgument, "mtls: nil request")
	}
	if !strings.EqualFold(req.URL.Scheme, "https") {
		return nil, token.Errorf(token.CodeInvalidArgument, "mtls: refusing to send a token over %q; use https", req.URL.Scheme)
	}
	if res.AccessToken == "" {
		return nil, token.Errorf(token.CodeInvalidArgument, "mtls: the result holds no access token")
	}
	cert := res.TLSCertificatePtr()
	if res.IsPoP() && cert == nil {
		return nil, token.Errorf(token.CodeMtlsCertificateNotProvided, "mtls: an mtls_pop token needs its binding certificate")
	}
	out := req.Clone(ctx)
	out.Header.Set("Authorization", res.AuthorizationHeader())
	resp, err := p.Client(cert).Do(out)
	if err != nil {
		if ctx.Err() != nil {
			return nil, token.Wrap(token.CodeCanceled, ctx.Err(), "mtls: calling the resource")
		}
		return nil, &token.Error{Code: token.CodeNetwork, Message: "mtls: calling the resource", Err: err, Retryable: true}
	}
	return resp, nil
}

// IsHandshakeRefusal reports whether err shows the server refusing the TLS session or our
// certificate: a TLS alert from the peer, or the connection reset or closed without an answer
// (how a server that revokes a certificate cuts the connections that presented it). These are
// the failures for which a fresh binding certificate may help; MSAL.NET re-mints on the same
// ones (a TLS failure or a connection reset). A failure to verify the server's certificate is
// not one of them.
func IsHandshakeRefusal(err error) bool {
	var verr *tls.CertificateVerificationError
	if errors.As(err, &verr) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return true
	}
	var alert tls.AlertError
	if errors.As(err, &alert) {
		return true
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// Roots builds a trust pool from the system roots plus the PEM files named by SSL_CERT_FILE and
// SSL_CERT_DIR as getenv reports them now, plus caFile. crypto/x509 reads those variables once
// per process; reading them per client lets a host that sets them after start (or a C program
// that changed its environment after loading the library) be honoured.
func Roots(getenv func(string) string, caFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	var files []string
	if f := getenv("SSL_CERT_FILE"); f != "" {
		files = append(files, f)
	}
	for _, dir := range filepath.SplitList(getenv("SSL_CERT_DIR")) {
		if dir == "" {
			continue
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue // as crypto/x509 does: a missing directory is not an error
		}
		for _, e := range entries {
			if !e.IsDir() {
				files = append(files, filepath.Join(dir, e.Name()))
			}
		}
	}
	for _, f := range files {
		if pem, err := os.ReadFile(f); err == nil {
			pool.AppendCertsFromPEM(pem)
		}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, token.Wrap(token.CodeInvalidArgument, err, "reading ca_file")
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, token.Errorf(token.CodeInvalidArgument, "ca_file %q holds no PEM certificate", filepath.Base(caFile))
		}
	}
	return pool, nil
}
