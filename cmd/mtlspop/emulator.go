package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mtlspop/mtlspop/core/emulator"
)

// emulatorInfo is the one line of JSON `mtlspop emulator` prints once it is ready.
// appJSON is the default confidential-client registration, ready for `mtlspop token --tenant`.
type appJSON struct {
	TenantID     string `json:"tenant_id"`
	ClientID     string `json:"client_id"`
	CertFile     string `json:"cert_file"`
	KeyFile      string `json:"key_file"`
	Authority    string `json:"authority"`
	MTLSEndpoint string `json:"mtls_endpoint"`
}

type emulatorInfo struct {
	Source     string            `json:"source"`
	Env        map[string]string `json:"env"`
	URLs       map[string]string `json:"urls"`
	TenantID   string            `json:"tenant_id"`
	Identities identitiesJSON    `json:"identities"`
	App        appJSON           `json:"app"`
	// ServiceFabric: the endpoint's self-signed certificate, for clients that trust it instead
	// of pinning its thumbprint (msal-node: NODE_EXTRA_CA_CERTS).
	ServiceFabric *serviceFabricJSON `json:"service_fabric,omitempty"`
	// ArcKeyDirectory is where the emulated Azure Arc agent writes its key files.
	ArcKeyDirectory string `json:"arc_key_directory,omitempty"`
}

type serviceFabricJSON struct {
	Thumbprint     string `json:"thumbprint"`
	CertificatePEM string `json:"certificate_pem"`
}

type identityJSON struct {
	ClientID   string `json:"client_id"`
	ObjectID   string `json:"object_id"`
	ResourceID string `json:"resource_id"`
}

type identitiesJSON struct {
	SystemAssigned identityJSON   `json:"system_assigned"`
	UserAssigned   []identityJSON `json:"user_assigned"`
}

func describe(e *emulator.Emulator) emulatorInfo {
	cfg := e.Config()
	app := e.App()
	info := emulatorInfo{
		App: appJSON{TenantID: app.TenantID, ClientID: app.ClientID, CertFile: app.CertFile, KeyFile: app.KeyFile,
			Authority: e.AuthorityURL(), MTLSEndpoint: e.MTLSAuthURL()},
		Source: string(e.Source()),
		Env:    e.Env(),
		URLs: map[string]string{
			"imds":        e.IMDSURL(),
			"mtlsauth":    e.MTLSAuthURL(),
			"authority":   e.AuthorityURL(),
			"jwks":        e.JWKSURL(),
			"resource":    e.ResourceURL(),
			"resource_id": cfg.ResourceID,
			"issuer":      e.Issuer(),
		},
		TenantID: e.TenantID(),
		Identities: identitiesJSON{SystemAssigned: identityJSON{
			ClientID: cfg.SystemAssigned.ClientID, ObjectID: cfg.SystemAssigned.ObjectID, ResourceID: cfg.SystemAssigned.ResourceID,
		}},
	}
	if u := e.SourceURL(); u != "" {
		info.URLs["source"] = u
	}
	if tp := e.ServiceFabricThumbprint(); tp != "" {
		info.ServiceFabric = &serviceFabricJSON{Thumbprint: tp, CertificatePEM: string(e.ServiceFabricCertificatePEM())}
	}
	info.ArcKeyDirectory = e.ArcKeyDirectory()
	for _, u := range cfg.UserAssigned {
		info.Identities.UserAssigned = append(info.Identities.UserAssigned, identityJSON{ClientID: u.ClientID, ObjectID: u.ObjectID, ResourceID: u.ResourceID})
	}
	return info
}

func cmdEmulator(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "IMDS listen address")
	source := fs.String("source", "imds", "managed-identity source to emulate: "+sourceNames())
	sourceAddr := fs.String("source-addr", "127.0.0.1:0", "listen address of the source's endpoint (not imds; Arc's usual one is 127.0.0.1:40342)")
	arcKeyDir := fs.String("arc-key-dir", "", "directory the emulated Arc agent writes its key files to (default: a temporary one; clients accept only /var/opt/azcmagent/tokens)")
	arcOld := fs.Bool("arc-ignore-user-assigned", false, "emulate an Arc agent that ignores user-assigned selectors")
	certLifetime := fs.Duration("cert-lifetime", 0, "binding certificate lifetime (default 7 days)")
	tokenLifetime := fs.Duration("token-lifetime", 0, "access token lifetime (default 24 h)")
	requirePoP := fs.Bool("require-pop", false, "the sample resource refuses unbound Bearer tokens")
	v1Only := fs.Bool("imds-v1-only", false, "behave as a host without IMDSv2 (no mTLS PoP)")
	requireAtt := fs.Bool("require-attestation", false, "issuecredential refuses CSRs without a valid attestation token for their key")
	ekRoots := fs.String("attestation-ek-roots", "", "PEM file of TPM manufacturer CAs: trust attestation keys of TPMs whose EK certificate chains to them")
	akFile := fs.String("attestation-trusted-ak", "", "file holding a trusted attestation key's public area (TPMT_PUBLIC)")
	anyAK := fs.Bool("attestation-trust-any-ak", false, "trust any attestation key that passes the other checks (labs and demos)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	att, err := attestationConfig(*requireAtt, *ekRoots, *akFile, *anyAK)
	if err != nil {
		return fail(stderr, err)
	}
	if !slices.Contains(emulator.Sources(), emulator.Source(*source)) {
		return fail(stderr, usageError("emulator: unknown --source %q (one of: %s)", *source, sourceNames()))
	}
	if *arcKeyDir != "" && *source != string(emulator.SourceAzureArc) {
		return fail(stderr, usageError("emulator: --arc-key-dir is for --source arc"))
	}
	emu, err := emulator.Start(emulator.Config{
		Addr: *addr, CertLifetime: *certLifetime, TokenLifetime: *tokenLifetime,
		ResourceRequirePoP: *requirePoP, DisableIMDSv2: *v1Only,
		Source: emulator.Source(*source), SourceAddr: *sourceAddr,
		ArcKeyDirectory: *arcKeyDir, ArcIgnoreUserAssigned: *arcOld,
		RequireAttestation: att.RequireAttestation, AttestationEKRoots: att.AttestationEKRoots,
		AttestationTrustedAKs: att.AttestationTrustedAKs, AttestationTrustAnyAK: att.AttestationTrustAnyAK,
	})
	if err != nil {
		return fail(stderr, err)
	}
	defer emu.Close()
	if err := json.NewEncoder(stdout).Encode(describe(emu)); err != nil {
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stdinClosed := make(chan struct{})
	if watchable(stdin) {
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			close(stdinClosed)
		}()
	}
	select {
	case <-ctx.Done():
	case <-stdinClosed:
	}
	done := make(chan struct{})
	go func() { emu.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	return 0
}

func sourceNames() string {
	var names []string
	for _, s := range emulator.Sources() {
		names = append(names, string(s))
	}
	return strings.Join(names, "|")
}

// watchable reports whether closing stdin is a meaningful stop signal. A background job
// (`mtlspop emulator &`) gets /dev/null as stdin, which is at EOF at once; the emulator must then
// serve until signalled instead of exiting immediately.
func watchable(stdin io.Reader) bool {
	f, ok := stdin.(*os.File)
	if !ok {
		return stdin != nil
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}

// attestationConfig turns the attestation flags into emulator settings. Requiring attestation
// needs a way to trust attestation keys.
func attestationConfig(require bool, ekRootsFile, akFile string, anyAK bool) (emulator.Config, error) {
	cfg := emulator.Config{RequireAttestation: require, AttestationTrustAnyAK: anyAK}
	if ekRootsFile != "" {
		pem, err := os.ReadFile(ekRootsFile)
		if err != nil {
			return cfg, usageError("emulator: --attestation-ek-roots: %v", err)
		}
		cfg.AttestationEKRoots = x509.NewCertPool()
		if !cfg.AttestationEKRoots.AppendCertsFromPEM(pem) {
			return cfg, usageError("emulator: --attestation-ek-roots: no PEM certificate in %s", ekRootsFile)
		}
	}
	if akFile != "" {
		ak, err := os.ReadFile(akFile)
		if err != nil {
			return cfg, usageError("emulator: --attestation-trusted-ak: %v", err)
		}
		cfg.AttestationTrustedAKs = [][]byte{ak}
	}
	if require && !anyAK && ekRootsFile == "" && akFile == "" {
		return cfg, usageError("emulator: --require-attestation needs --attestation-ek-roots, --attestation-trusted-ak or --attestation-trust-any-ak")
	}
	return cfg, nil
}
