package main

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/tpm"
)

// identityFlags are the identity and key flags shared by token and call.
type identityFlags struct {
	clientID, resourceID, objectID string
	timeout                        time.Duration
	key, tpmDevice, tpmStateDir    string
	attest                         bool
}

func (f *identityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.clientID, "client-id", "", "user-assigned identity by client id")
	fs.StringVar(&f.resourceID, "resource-id", "", "user-assigned identity by Azure resource id")
	fs.StringVar(&f.objectID, "object-id", "", "user-assigned identity by object id")
	fs.DurationVar(&f.timeout, "timeout", 60*time.Second, "give up after this long")
	fs.StringVar(&f.key, "key", "software", "managed identity: where the binding key lives, software (in memory) or tpm; confidential client (--tenant): the private key PEM file of --cert")
	fs.StringVar(&f.tpmDevice, "tpm-device", "", "with --key tpm: /dev/tpmrm0 (default) or tcp://host:port for swtpm")
	fs.StringVar(&f.tpmStateDir, "tpm-state-dir", "", "with --key tpm: where key blobs and certificates are kept (default ~/.local/state/mtlspop/tpm)")
	fs.BoolVar(&f.attest, "attest", false, "attest the binding key (TPM2_Certify) before its certificate is issued")
}

// givenFlags returns the names of the flags set on the command line (fs.Visit), so that a flag
// that does not apply to the mode the other flags chose is refused, not silently ignored.
func givenFlags(fs *flag.FlagSet) map[string]bool {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	return given
}

// rejectGiven is a usage error (exit 2) naming the first of names that was given, saying in
// which mode (where) it does not apply and why; nil when none was.
func rejectGiven(given map[string]bool, where, why string, names ...string) error {
	for _, n := range names {
		if given[n] {
			return usageError("%s, --%s does not apply: %s", where, n, why)
		}
	}
	return nil
}

// keyGiven reports whether --key was given with something other than its default: "--key
// software" asks for what happens anyway, so scripts that always pass it keep working.
func (f *identityFlags) keyGiven(given map[string]bool) bool {
	return given["key"] && f.key != "software"
}

// rejectPoPOnly refuses the binding-key flags where no binding key is made (a Bearer token):
// --attest, --key tpm and the TPM flags would otherwise be accepted and ignored.
func (f *identityFlags) rejectPoPOnly(given map[string]bool, where string) error {
	const why = "the key and attestation flags choose the binding key of an mTLS PoP token"
	if f.keyGiven(given) {
		return usageError("%s, --key does not apply: %s", where, why)
	}
	return rejectGiven(given, where, why, "attest", "tpm-device", "tpm-state-dir")
}

// rejectAll refuses every identity and key flag, where no managed-identity client is built.
func (f *identityFlags) rejectAll(given map[string]bool, where, why string) error {
	if f.keyGiven(given) {
		return usageError("%s, --key does not apply: %s", where, why)
	}
	return rejectGiven(given, where, why, "client-id", "resource-id", "object-id", "timeout", "attest", "tpm-device", "tpm-state-dir")
}

func (f *identityFlags) id() (managedidentity.ID, error) {
	n := 0
	id := managedidentity.SystemAssigned()
	for _, sel := range []struct {
		v  string
		mk func(string) managedidentity.ID
	}{
		{f.clientID, managedidentity.UserAssignedClientID},
		{f.resourceID, managedidentity.UserAssignedResourceID},
		{f.objectID, managedidentity.UserAssignedObjectID},
	} {
		if sel.v != "" {
			n++
			id = sel.mk(sel.v)
		}
	}
	if n > 1 {
		return id, usageError("give at most one of --client-id, --resource-id, --object-id")
	}
	return id, nil
}

// client builds the managed-identity client the flags describe. The returned closer releases
// the client and, with --key tpm, the TPM connection.
func (f *identityFlags) client(ctx context.Context) (*managedidentity.Client, io.Closer, error) {
	id, err := f.id()
	if err != nil {
		return nil, nil, err
	}
	var opts []managedidentity.Option
	var provider *tpm.Provider
	switch f.key {
	case "software":
		if f.tpmDevice != "" || f.tpmStateDir != "" {
			return nil, nil, usageError("--tpm-device and --tpm-state-dir need --key tpm")
		}
	case "tpm":
		provider, err = tpm.Open(ctx, tpm.Config{Device: f.tpmDevice, StateDir: f.tpmStateDir})
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, managedidentity.WithKeyProvider(provider))
	default:
		return nil, nil, usageError("--key must be software or tpm, not %q", f.key)
	}
	if f.attest {
		opts = append(opts, managedidentity.WithAttestation())
	}
	mi, err := managedidentity.New(id, opts...)
	if err != nil {
		if provider != nil {
			_ = provider.Close()
		}
		return nil, nil, err
	}
	return mi, closers{mi, provider}, nil
}

// closers closes the client, then the TPM provider it used.
type closers struct {
	mi  *managedidentity.Client
	tpm *tpm.Provider
}

func (c closers) Close() error {
	_ = c.mi.Close()
	if c.tpm != nil {
		return c.tpm.Close()
	}
	return nil
}
