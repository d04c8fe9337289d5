package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
	"github.com/mtlspop/mtlspop/core/tpm"
)

// cmdDemo runs the whole mTLS PoP flow against an in-process emulator and explains each step.
// It exits non-zero if any step does not behave as described, so it doubles as a smoke test.
func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	device := fs.String("tpm-device", "", "TPM for the TPM step: a device path or tcp://host:port for swtpm; \"\" skips the step (default: "+tpm.DefaultDevice+" when this user can open it)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	dev, skip := demoTPMDevice(*device, givenFlags(fs)["tpm-device"], canOpen)
	d := &demo{out: stdout, tpmDevice: dev, tpmSkip: skip}
	if err := d.run(); err != nil {
		fmt.Fprintf(stdout, "\nDEMO FAILED: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "\nAll steps behaved as expected.")
	return 0
}

type demo struct {
	out       io.Writer
	step      int
	tpmDevice string // "" skips the TPM step, for the reason in tpmSkip
	tpmSkip   string
}

// demoTPMDevice picks the TPM of the demo's TPM step, or says why there is none. A device given
// with --tpm-device is used as it is — the user asked for it, so failing to open it fails the
// demo — and --tpm-device "" skips the step. Otherwise the kernel's resource manager is used
// only when this process can open it: /dev/tpmrm0 is root:tss 0660 on most distributions, and
// a demo that fails on a device nobody asked for shows nothing.
func demoTPMDevice(flagValue string, given bool, canOpen func(string) error) (device, skip string) {
	if given {
		if flagValue == "" {
			return "", `--tpm-device "" given`
		}
		return flagValue, ""
	}
	if err := canOpen(tpm.DefaultDevice); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", "no " + tpm.DefaultDevice + " here"
		}
		return "", fmt.Sprintf("%s cannot be opened by this user (%v)", tpm.DefaultDevice, err)
	}
	return tpm.DefaultDevice, ""
}

// canOpen opens path read-write, as the TPM provider will, and closes it again.
func canOpen(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

func (d *demo) say(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.out, "\n%d. "+format+"\n", append([]any{d.step}, args...)...)
}

func (d *demo) detail(format string, args ...any) {
	fmt.Fprintf(d.out, "   "+format+"\n", args...)
}

func (d *demo) run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	emu, err := emulator.Start(emulator.Config{})
	if err != nil {
		return err
	}
	defer emu.Close()
	cfg := emu.Config()
	env := emu.Env()
	d.say("Started the local identity-platform emulator (nothing here talks to Azure).")
	d.detail("IMDS            %s   (AZURE_POD_IDENTITY_AUTHORITY_HOST)", emu.IMDSURL())
	d.detail("mTLS token host %s", emu.MTLSAuthURL())
	d.detail("resource        %s   (accepts tokens for %q)", emu.ResourceURL(), cfg.ResourceID)

	newClient := func(id managedidentity.ID) (*managedidentity.Client, error) {
		return managedidentity.New(id,
			managedidentity.WithEnv(func(k string) string { return env[k] }),
			managedidentity.WithRootCAs(emu.RootCAs()))
	}
	sami, err := newClient(managedidentity.SystemAssigned())
	if err != nil {
		return err
	}
	defer sami.Close()

	d.say("System-assigned identity: acquire an mTLS PoP token (IMDSv2).")
	d.detail("getplatformmetadata → new RSA-2048 key → CSR → issuecredential → token request over mTLS")
	start := time.Now()
	res, err := sami.AcquireToken(ctx, cfg.ResourceID, managedidentity.WithMtlsPoP())
	if err != nil {
		return err
	}
	d.detail("took %v; token_type=%s, token_source=%s, expires %s", time.Since(start).Round(time.Microsecond),
		res.TokenType, res.Source, res.ExpiresOn.UTC().Format(time.RFC3339))
	if err := d.showBinding(res, cfg.SystemAssigned.ClientID); err != nil {
		return err
	}

	d.say("Call the resource over mTLS with the binding certificate and 'Authorization: mtls_pop <token>'.")
	status, body, err := d.call(ctx, sami, emu.ResourceURL(), res)
	if err != nil {
		return err
	}
	d.detail("HTTP %d %s", status, body)
	if status != http.StatusOK {
		return fmt.Errorf("the resource answered %d, want 200", status)
	}

	d.say("Acquire the same token again: it comes from the cache, with no network call.")
	start = time.Now()
	again, err := sami.AcquireToken(ctx, cfg.ResourceID, managedidentity.WithMtlsPoP())
	if err != nil {
		return err
	}
	d.detail("took %v; token_source=%s", time.Since(start).Round(time.Nanosecond), again.Source)
	if again.Source != token.SourceCache || again.AccessToken != res.AccessToken {
		return fmt.Errorf("second acquisition came from %s, want cache", again.Source)
	}

	if len(cfg.UserAssigned) > 0 {
		uami := cfg.UserAssigned[0]
		d.say("User-assigned identity (by client id %s): its own key, certificate and token.", uami.ClientID)
		uc, err := newClient(managedidentity.UserAssignedClientID(uami.ClientID))
		if err != nil {
			return err
		}
		defer uc.Close()
		ures, err := uc.AcquireToken(ctx, cfg.ResourceID, managedidentity.WithMtlsPoP())
		if err != nil {
			return err
		}
		if err := d.showBinding(ures, uami.ClientID); err != nil {
			return err
		}
		if ures.Thumbprint() == res.Thumbprint() {
			return fmt.Errorf("the two identities share a binding certificate")
		}
	}

	d.say("A stolen token is useless: present it over a connection with another certificate.")
	other, err := selfSignedCertificate()
	if err != nil {
		return err
	}
	stolen := res.Bind(other)
	status, body, err = d.call(ctx, sami, emu.ResourceURL(), stolen)
	if err != nil {
		return err
	}
	d.detail("HTTP %d %s", status, body)
	if status != http.StatusUnauthorized {
		return fmt.Errorf("the resource answered %d to a token on the wrong certificate, want 401", status)
	}
	return d.runTPM(ctx)
}

// runTPM shows the binding key in a TPM, attested before its certificate is issued.
func (d *demo) runTPM(ctx context.Context) error {
	if d.tpmDevice == "" {
		d.say("TPM: skipped — %s. With swtpm: mtlspop demo --tpm-device tcp://127.0.0.1:2321", d.tpmSkip)
		return nil
	}
	d.say("TPM: a binding key generated in the TPM at %s, which cannot leave it, attested.", d.tpmDevice)
	stateDir, err := os.MkdirTemp("", "mtlspop-demo-tpm")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)
	p, err := tpm.Open(ctx, tpm.Config{Device: d.tpmDevice, StateDir: stateDir})
	if err != nil {
		return err
	}
	defer p.Close()
	// The emulator must know which AK to trust before any binding key exists.
	ak, err := p.AttestationIdentity(ctx)
	if err != nil {
		return err
	}
	emu, err := emulator.Start(emulator.Config{RequireAttestation: true, AttestationTrustedAKs: [][]byte{ak.AKPublic}})
	if err != nil {
		return err
	}
	defer emu.Close()
	env := emu.Env()
	d.detail("this emulator's IMDS issues certificates only for keys its attestation service has verified")
	mi, err := managedidentity.New(managedidentity.SystemAssigned(),
		managedidentity.WithEnv(func(k string) string { return env[k] }), managedidentity.WithRootCAs(emu.RootCAs()),
		managedidentity.WithKeyProvider(p), managedidentity.WithAttestation())
	if err != nil {
		return err
	}
	defer mi.Close()
	start := time.Now()
	res, err := mi.AcquireToken(ctx, emu.Config().ResourceID, managedidentity.WithMtlsPoP())
	if err != nil {
		return err
	}
	d.detail("TPM2_Certify → attestation token → CSR signed in the TPM → certificate → token: %v", time.Since(start).Round(time.Millisecond))
	if err := d.showBinding(res, emu.Config().SystemAssigned.ClientID); err != nil {
		return err
	}
	if k, ok := res.TLSCertificate().PrivateKey.(keys.Key); !ok || k.Strength() != keys.StrengthTPM {
		return fmt.Errorf("the binding key is not in the TPM")
	}
	before := total(p.Commands())
	if _, err := mi.AcquireToken(ctx, emu.Config().ResourceID, managedidentity.WithMtlsPoP()); err != nil {
		return err
	}
	d.detail("a cached acquisition sent %d commands to the TPM", total(p.Commands())-before)
	status, body, err := d.call(ctx, mi, emu.ResourceURL(), res)
	if err != nil {
		return err
	}
	d.detail("the resource, over mTLS signed by the TPM: HTTP %d %s", status, body)
	if status != http.StatusOK {
		return fmt.Errorf("the resource answered %d, want 200", status)
	}
	return nil
}

func total(m map[tpm2.TPMCC]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// showBinding prints the binding certificate and checks that the token's cnf names it.
func (d *demo) showBinding(res token.Result, clientID string) error {
	cert := res.BindingCertificate
	if cert == nil {
		return fmt.Errorf("the PoP result has no binding certificate")
	}
	d.detail("binding certificate: subject %q, issuer %q, valid until %s", cert.Subject.CommonName,
		cert.Issuer.CommonName, cert.NotAfter.UTC().Format(time.RFC3339))
	cnf, err := cnfThumbprint(res.AccessToken)
	if err != nil {
		return err
	}
	d.detail("SHA-256 of the certificate (x5t#S256): %s", res.Thumbprint())
	d.detail("cnf.x5t#S256 inside the token:         %s", cnf)
	if cnf != token.Thumbprint(cert) || cert.Subject.CommonName != clientID {
		return fmt.Errorf("the token is not bound to the binding certificate")
	}
	where := "the process"
	if k, ok := res.TLSCertificate().PrivateKey.(keys.Key); ok && k.Strength() == keys.StrengthTPM {
		where = "the TPM"
	}
	d.detail("they match: the token is bound to this certificate, whose key never left %s", where)
	return nil
}

func (d *demo) call(ctx context.Context, mi *managedidentity.Client, url string, res token.Result) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := mi.Do(ctx, req, res)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(body)), nil
}

// cnfThumbprint reads cnf.x5t#S256 from a JWT's payload (for display; the resource verifies it).
func cnfThumbprint(jwt string) (string, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("the access token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("the access token payload is not base64url")
	}
	var claims struct {
		Cnf struct {
			X5t string `json:"x5t#S256"`
		} `json:"cnf"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", fmt.Errorf("the access token payload is not JSON")
	}
	return claims.Cnf.X5t, nil
}

// selfSignedCertificate makes an unrelated client certificate, as an attacker holding a stolen
// token would have.
func selfSignedCertificate() (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "attacker"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
