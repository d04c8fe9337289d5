// Package emulator is a local emulator of the Azure identity platform as a managed-identity
// client sees it: IMDS (v1 Bearer tokens, and the IMDSv2 calls that issue binding certificates),
// the mTLS token endpoint that issues certificate-bound ("mtls_pop") tokens, the login host with
// OpenID configuration and JWKS, and a sample resource that verifies the binding.
//
// It issues real RS256 JWTs signed by a key of its own, and real X.509 certificates from CAs of
// its own. Every server listens on 127.0.0.1 on its own port, so TLS policy is set per host as in
// production: IMDS is plain HTTP, the token endpoint requires a client certificate issued by the
// binding-certificate CA, the login host needs none, and the resource asks for any.
//
// Tests import it and drive it through Start, the URL methods, InjectFault and the request
// records; `mtlspop emulator` runs it as a process. An Emulator is safe for concurrent use.
package emulator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/pop"
)

// The default identities. They are fixed so that documentation, examples and tests can name them.
const (
	DefaultTenantID = "0feaedca-f156-485e-8c22-b5d5caeb454a"

	DefaultSubscriptionID = "75fab8c2-7fb0-46d3-953c-787bbde2c31f"
	DefaultVMID           = "a5c78023-e4e8-431f-a555-8c7a360fd705"

	// The system-assigned identity; its resource id is the virtual machine's.
	DefaultSystemAssignedClientID   = "3e40b486-f80e-4060-9c9a-aab1845fe918"
	DefaultSystemAssignedObjectID   = "0a9196d4-330a-40a1-80ae-50bb716abcc5"
	DefaultSystemAssignedResourceID = "/subscriptions/" + DefaultSubscriptionID +
		"/resourceGroups/mtlspop-emulator/providers/Microsoft.Compute/virtualMachines/mtlspop-emulator-vm"

	// The one user-assigned identity configured by default.
	DefaultUserAssignedClientID   = "a9dfc9af-8234-435d-b10c-116194b4d778"
	DefaultUserAssignedObjectID   = "c185b83c-73de-48fe-ac17-06d1f63f0644"
	DefaultUserAssignedResourceID = "/subscriptions/" + DefaultSubscriptionID +
		"/resourceGroups/mtlspop-emulator/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mtlspop-emulator-uami"

	// DefaultResourceID is the audience the sample resource accepts by default.
	DefaultResourceID = "api://mtlspop-emulator"

	// DefaultCertLifetime and DefaultTokenLifetime are the lifetimes of binding certificates and
	// access tokens when Config leaves them zero.
	DefaultCertLifetime  = 7 * 24 * time.Hour
	DefaultTokenLifetime = 24 * time.Hour

	// IMDSServerHeader is the Server header IMDS sends, which IMDSv2 clients check for "IMDS".
	IMDSServerHeader = "IMDS/150.870.65.1854"
)

// Identity is a managed identity the emulator knows.
type Identity struct {
	ClientID   string // application (client) id: the token's appid/azp, the binding certificate's CN
	ObjectID   string // service principal object id: the token's sub and oid
	ResourceID string // ARM resource id: the token's xms_mirid; selects the identity by resource id
}

// Config configures an Emulator. The zero value is a working emulator with the default identities.
type Config struct {
	// Addr is the IMDS listen address (plain HTTP). Default "127.0.0.1:0". The other servers
	// always listen on 127.0.0.1 with a port of the system's choosing.
	Addr string
	// TenantID defaults to DefaultTenantID.
	TenantID string
	// SystemAssigned is the identity IMDS answers for when no selector is sent. When its ClientID
	// is empty the default system-assigned identity is used.
	SystemAssigned Identity
	// UserAssigned are the identities a selector (client id, resource id, object id) can name.
	// nil means the one default user-assigned identity; an empty non-nil slice means none.
	UserAssigned []Identity
	// CUID is the compute unit's id in getplatformmetadata and the CSR check. Default
	// {VMID: DefaultVMID}.
	CUID keys.CUID
	// CertLifetime is the lifetime of binding certificates; 0 means DefaultCertLifetime. A
	// negative value issues certificates that have already expired (for tests of renewal).
	CertLifetime time.Duration
	// TokenLifetime is the lifetime of access tokens; 0 means DefaultTokenLifetime.
	TokenLifetime time.Duration
	// RefreshIn: if > 0 the token endpoint sends it as refresh_in (whole seconds, at least 1); if
	// 0 and the token lifetime exceeds 2h it sends half the lifetime, as ESTS does; if < 0 it
	// never sends refresh_in.
	RefreshIn time.Duration
	// DisableIMDSv2 makes IMDS behave as an IMDSv1-only host: getplatformmetadata and
	// issuecredential answer 404.
	DisableIMDSv2 bool
	// ResourceID is the audience the sample resource accepts besides its own URL. Default
	// DefaultResourceID.
	ResourceID string
	// ResourceRequirePoP makes the sample resource refuse tokens that are not bound to the
	// caller's TLS client certificate.
	ResourceRequirePoP bool
	// Apps are the confidential-client registrations (confidential.go). nil means one default
	// app (DefaultAppClientID) with a fresh certificate and secret, trusting this emulator's
	// managed identities as federated credentials; an empty non-nil slice means none.
	Apps []App
	// Logger receives structured logs of every request (never tokens, CSRs, keys or assertions).
	// nil discards them.
	Logger *slog.Logger

	// Managed-identity sources other than IMDS (source.go and one file per source).

	// Source is the managed-identity source to stand in for: "" or SourceIMDS for IMDS alone;
	// any other adds that source's endpoint on a listener of its own, and Env announces it
	// instead of IMDS. IMDS, the token host, the login host and the resource run in every case.
	Source Source
	// SourceAddr is the listen address of the source's endpoint. Default "127.0.0.1:0".
	SourceAddr string
	// ArcKeyDirectory is where the Azure Arc agent writes the key files its challenges name.
	// Default: a temporary directory, removed by Close. Clients accept only the platform's
	// directory (/var/opt/azcmagent/tokens on Linux) unless a Go option tells them otherwise, so
	// unmodified clients need this set to that directory (which needs root).
	ArcKeyDirectory string
	// ArcIgnoreUserAssigned makes the Azure Arc agent an old one: it ignores identity selectors
	// and answers for the system-assigned identity, echoing none.
	ArcIgnoreUserAssigned bool

	// Key attestation (attest.go). The attestation service always runs; these settings decide
	// which attestation keys it trusts and whether issuecredential insists on its tokens.

	// RequireAttestation makes issuecredential refuse a request without a valid attestation
	// token from this emulator whose attested key is the CSR's key. It needs one of the three
	// trust settings below.
	RequireAttestation bool
	// AttestationTrustedAKs is an allow-list of attestation keys' public areas (TPMT_PUBLIC).
	AttestationTrustedAKs [][]byte
	// AttestationEKRoots trusts attestation keys that prove, by credential activation, to live
	// in a TPM whose EK certificate chains to one of these roots.
	AttestationEKRoots *x509.CertPool
	// AttestationTrustAnyAK trusts any attestation key that passes every other check: it
	// proves only that the key is in some TPM. For demos and labs.
	AttestationTrustAnyAK bool
	// AttestationTokenLifetime is the lifetime of attestation tokens; 0 means
	// DefaultAttestationTokenLifetime.
	AttestationTokenLifetime time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.TenantID == "" {
		c.TenantID = DefaultTenantID
	}
	if c.SystemAssigned.ClientID == "" {
		c.SystemAssigned = Identity{
			ClientID:   DefaultSystemAssignedClientID,
			ObjectID:   DefaultSystemAssignedObjectID,
			ResourceID: DefaultSystemAssignedResourceID,
		}
	}
	if c.UserAssigned == nil {
		c.UserAssigned = []Identity{{
			ClientID:   DefaultUserAssignedClientID,
			ObjectID:   DefaultUserAssignedObjectID,
			ResourceID: DefaultUserAssignedResourceID,
		}}
	} else {
		c.UserAssigned = append([]Identity(nil), c.UserAssigned...)
	}
	if !c.CUID.Valid() {
		c.CUID = keys.CUID{VMID: DefaultVMID}
	}
	if c.CertLifetime == 0 {
		c.CertLifetime = DefaultCertLifetime
	}
	if c.TokenLifetime == 0 {
		c.TokenLifetime = DefaultTokenLifetime
	}
	if c.ResourceID == "" {
		c.ResourceID = DefaultResourceID
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if err := c.checkSource(); err != nil { // source.go
		return c, err
	}

	if c.TokenLifetime < 0 {
		return c, errors.New("emulator: TokenLifetime must not be negative")
	}
	c, err := c.attestationDefaults() // attest.go
	if err != nil {
		return c, err
	}
	if !isASCII(c.TenantID) || strings.ContainsAny(c.TenantID, "/?#") {
		return c, fmt.Errorf("emulator: tenant id %q must be ASCII without '/', '?' or '#'", c.TenantID)
	}
	all := append([]Identity{c.SystemAssigned}, c.UserAssigned...)
	seen := make(map[string]bool, len(all))
	for i, id := range all {
		if id.ClientID == "" || id.ObjectID == "" {
			return c, fmt.Errorf("emulator: identity %d needs a ClientID and an ObjectID", i)
		}
		if k := strings.ToLower(id.ClientID); seen[k] {
			return c, fmt.Errorf("emulator: client id %s is configured twice", id.ClientID)
		} else {
			seen[k] = true
		}
	}
	return c, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Emulator is a running identity-platform emulator. Close it when done.
type Emulator struct {
	cfg Config
	log *slog.Logger
	ca  *authority

	imds, mtlsauth, login, resource *server
	verifier                        *pop.Verifier
	keySet                          pop.KeySet
	att                             attestations // attest.go
	defaultCert                     defaultApp   // confidential.go: the default app's secrets
	src                             sourceState  // source.go

	done     chan struct{} // closed by Close: ends injected delays
	serving  sync.WaitGroup
	inflight sync.WaitGroup

	mu     sync.Mutex
	closed bool
	faults map[Endpoint]*faultState
	counts map[Endpoint]int
	last   map[Endpoint]*Recorded
	envDir string

	closeOnce sync.Once
	closeErr  error
}

type server struct {
	srv  *http.Server
	ln   net.Listener
	base string // scheme://host:port, no trailing slash
	tls  bool

	connMu sync.Mutex
	conns  map[net.Conn]struct{} // open connections, so revocation can cut the ones it covers
}

// track records open connections through http.Server.ConnState.
func (s *server) track(c net.Conn, state http.ConnState) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	switch state {
	case http.StateNew:
		if s.conns == nil {
			s.conns = make(map[net.Conn]struct{})
		}
		s.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(s.conns, c)
	}
}

// closeConns closes every open TLS connection whose client certificate matches.
func (s *server) closeConns(match func(*x509.Certificate) bool) int {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	n := 0
	for c := range s.conns {
		tc, ok := c.(*tls.Conn)
		if !ok {
			continue
		}
		if st := tc.ConnectionState(); st.HandshakeComplete && len(st.PeerCertificates) > 0 && match(st.PeerCertificates[0]) {
			_ = c.Close()
			n++
		}
	}
	return n
}

// Start starts every server and returns once they accept connections. On error nothing is left
// running.
func Start(cfg Config) (_ *Emulator, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Emulator{
		cfg:    cfg,
		log:    cfg.Logger.With(slog.String("component", "emulator")),
		done:   make(chan struct{}),
		faults: make(map[Endpoint]*faultState),
		counts: make(map[Endpoint]int),
		last:   make(map[Endpoint]*Recorded),
	}
	if e.ca, err = newAuthority(cfg.CertLifetime); err != nil {
		return nil, err
	}
	e.keySet = pop.StaticKeys(e.ca.publicKeys())

	// Listen first, so every URL is known before any handler runs.
	var started []*server
	defer func() {
		if err != nil {
			for _, s := range started {
				_ = s.ln.Close()
			}
		}
	}()
	listen := func(addr string, useTLS bool) (*server, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("emulator: listening on %s: %w", addr, err)
		}
		scheme := "http"
		if useTLS {
			scheme = "https"
		}
		s := &server{ln: ln, base: scheme + "://" + ln.Addr().String(), tls: useTLS}
		started = append(started, s)
		return s, nil
	}
	if e.imds, err = listen(cfg.Addr, false); err != nil {
		return nil, err
	}
	if e.mtlsauth, err = listen("127.0.0.1:0", true); err != nil {
		return nil, err
	}
	if e.login, err = listen("127.0.0.1:0", true); err != nil {
		return nil, err
	}
	if e.resource, err = listen("127.0.0.1:0", true); err != nil {
		return nil, err
	}
	if e.src.srv, err = e.listenSource(listen); err != nil { // source.go
		return nil, err
	}

	if err = e.setupApps(); err != nil { // confidential.go; needs the login URL for FIC issuers
		return nil, err
	}

	e.verifier = &pop.Verifier{
		Keys:         e.keySet,
		Issuer:       e.Issuer(),
		Audiences:    []string{cfg.ResourceID, e.ResourceURL(), strings.TrimSuffix(e.ResourceURL(), "/")},
		AllowUnbound: !cfg.ResourceRequirePoP,
	}

	errorLog := log.New(io.Discard, "", 0)
	if cfg.Logger.Enabled(context.Background(), slog.LevelDebug) {
		errorLog = slog.NewLogLogger(e.log.Handler(), slog.LevelDebug)
	}
	newServer := func(s *server, h http.Handler, tc *tlsPolicy) {
		s.srv = &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          errorLog,
			ConnState:         s.track,
		}
		if tc != nil {
			s.srv.TLSConfig = e.ca.serverTLSConfig(*tc)
		}
	}
	newServer(e.imds, trailingSlash(e.imdsHandler()), nil) // source.go: as IMDS, accept msal-node's URLs
	newServer(e.mtlsauth, e.stsHandler(), &tlsPolicy{clientAuth: clientCertBinding, alsoAccept: e.appCertificate})
	newServer(e.login, e.withAttestation(e.loginHandler()), &tlsPolicy{clientAuth: clientCertNone}) // attest.go
	newServer(e.resource, e.resourceHandler(), &tlsPolicy{clientAuth: clientCertAny})
	e.serveSource(newServer) // source.go

	for _, s := range started {
		e.serving.Add(1)
		go func(s *server) {
			defer e.serving.Done()
			var err error
			if s.tls {
				err = s.srv.ServeTLS(s.ln, "", "")
			} else {
				err = s.srv.Serve(s.ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				e.log.Error("server stopped", slog.String("addr", s.base), slog.String("error", err.Error()))
			}
		}(s)
	}
	e.log.Info("emulator started",
		slog.String("imds", e.IMDSURL()),
		slog.String("mtlsauth", e.MTLSAuthURL()),
		slog.String("authority", e.AuthorityURL()),
		slog.String("resource", e.ResourceURL()))
	return e, nil
}

// Close stops every server, waits for them and for requests in flight to finish, and removes
// the files Env wrote. It is idempotent and safe to call concurrently; every call returns the
// first call's result.
func (e *Emulator) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed = true
		dir := e.envDir
		e.mu.Unlock()
		close(e.done)

		var errs []error
		for _, s := range append([]*server{e.imds, e.mtlsauth, e.login, e.resource}, e.sourceServers()...) {
			if err := s.srv.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		e.serving.Wait()
		e.inflight.Wait()
		errs = append(errs, e.closeSource()) // source.go: Arc key files
		if dir != "" {
			if err := os.RemoveAll(dir); err != nil {
				errs = append(errs, err)
			}
		}
		e.closeErr = errors.Join(errs...)
		e.log.Info("emulator stopped")
	})
	return e.closeErr
}

// IMDSURL is the IMDS base URL, "http://127.0.0.1:port": the value for
// AZURE_POD_IDENTITY_AUTHORITY_HOST.
func (e *Emulator) IMDSURL() string { return e.imds.base }

// MTLSAuthURL is the base URL of the mTLS token host, "https://127.0.0.1:port", as
// issuecredential returns it in mtls_authentication_endpoint.
func (e *Emulator) MTLSAuthURL() string { return e.mtlsauth.base }

// AuthorityURL is the tenant's authority on the login host, "https://127.0.0.1:port/<tenant>".
func (e *Emulator) AuthorityURL() string { return e.login.base + "/" + e.cfg.TenantID }

// ResourceURL is the sample resource's URL, "https://127.0.0.1:port/".
func (e *Emulator) ResourceURL() string { return e.resource.base + "/" }

// JWKSURL is the URL of the token-signing keys.
func (e *Emulator) JWKSURL() string { return e.AuthorityURL() + "/discovery/v2.0/keys" }

// OpenIDConfigurationURL is the URL of the tenant's OpenID configuration document.
func (e *Emulator) OpenIDConfigurationURL() string {
	return e.AuthorityURL() + "/v2.0/.well-known/openid-configuration"
}

// Issuer is the iss claim of every token the emulator issues.
func (e *Emulator) Issuer() string { return e.AuthorityURL() + "/v2.0" }

// TenantID is the emulated tenant.
func (e *Emulator) TenantID() string { return e.cfg.TenantID }

// Config returns the configuration with defaults filled in.
func (e *Emulator) Config() Config {
	c := e.cfg
	c.UserAssigned = append([]Identity(nil), e.cfg.UserAssigned...)
	return c
}

// RootCAs returns a new pool holding the CA of the emulator's HTTPS servers, for in-process
// clients.
func (e *Emulator) RootCAs() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(e.ca.serverCA)
	return p
}

// CACertPEM is the PEM of the CA of the emulator's HTTPS servers.
func (e *Emulator) CACertPEM() []byte { return e.ca.serverCAPEM() }

// BindingCACertificate is the CA that issues binding certificates (its subject contains
// "managedidentitysnissuer"); the mTLS token endpoint trusts only it.
func (e *Emulator) BindingCACertificate() *x509.Certificate { return e.ca.bindingCA }

// Keys returns the emulator's token-signing public keys, for a pop.Verifier.
func (e *Emulator) Keys() pop.KeySet { return e.keySet }

// Env returns what a client process needs to use the emulator: the variables that announce its
// source (for IMDS, AZURE_POD_IDENTITY_AUTHORITY_HOST, the IMDS URL; for the others, see Source)
// and SSL_CERT_FILE (the server CA, written to a temporary directory on the first
// call and removed by Close). If the file cannot be written, or the emulator is closed,
// SSL_CERT_FILE is left out and the failure is logged.
func (e *Emulator) Env() map[string]string {
	env := e.sourceEnv() // source.go: the variables that announce the emulated source
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return env
	}
	if e.envDir == "" {
		dir, err := os.MkdirTemp("", "mtlspop-emulator-")
		if err != nil {
			e.log.Error("writing CA file", slog.String("error", err.Error()))
			return env
		}
		if err := os.WriteFile(filepath.Join(dir, "ca.pem"), e.CACertPEM(), 0o644); err != nil {
			_ = os.RemoveAll(dir)
			e.log.Error("writing CA file", slog.String("error", err.Error()))
			return env
		}
		e.envDir = dir
	}
	env["SSL_CERT_FILE"] = filepath.Join(e.envDir, "ca.pem")
	return env
}

// identityByClientID finds a configured identity, system- or user-assigned, by client id.
func (e *Emulator) identityByClientID(clientID string) (Identity, bool) {
	if strings.EqualFold(e.cfg.SystemAssigned.ClientID, clientID) {
		return e.cfg.SystemAssigned, true
	}
	for _, id := range e.cfg.UserAssigned {
		if strings.EqualFold(id.ClientID, clientID) {
			return id, true
		}
	}
	return Identity{}, false
}
