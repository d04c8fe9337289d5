// Package tpm provides binding keys that live in a TPM 2.0: generated inside it, never
// exportable (fixedTPM | fixedParent | sensitiveDataOrigin), used through TPM2_Sign as a
// crypto.Signer that crypto/tls and crypto/x509 accept, and attestable with TPM2_Certify (see
// package attest).
//
// A Provider holds one long-lived connection to the TPM — /dev/tpmrm0, a swtpm over TCP, or any
// go-tpm transport — and serialises every command on it. Binding keys are created under the
// storage root key (SRK, the TCG ECC P-256 template under the owner hierarchy, or a persistent
// handle), kept loaded while the Provider is open, and their wrapped blobs persisted per slot in
// a state directory, so a restarted process loads the same key, and finds the certificate
// issued for it (keys.CertificateStore).
//
// The SRK and the attestation key are loaded only for the command that needs them and flushed
// right after: on /dev/tpmrm0 the kernel swaps every transient object of a connection in and out
// around each command, so the signing hot path holds nothing but the binding keys.
package tpm

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/token"
)

var (
	// ErrClosed is returned by every method of a closed Provider and its keys.
	ErrClosed = &token.Error{Code: token.CodeClosed, Message: "tpm: provider is closed"}
	// ErrKeyReleased: the key was rotated out of its slot; get the slot's new key.
	ErrKeyReleased = errors.New("tpm: key was rotated out of its slot")
	// ErrPSSUnsupported: the TPM signs RSA-PSS with the maximum salt length, which TLS 1.3 and
	// X.509 verifiers refuse (they require salt = hash length). Such a key can sign PKCS#1 v1.5
	// only (TLS 1.2 with SupportedSignatureAlgorithms).
	ErrPSSUnsupported = errors.New("tpm: this TPM signs RSA-PSS with the maximum salt length, not the hash length that TLS 1.3 and X.509 require")
	// ErrUnsafeStateDir: Config.StateDir already exists and other users could replace what is
	// kept there (it is group- or world-writable, or owned by another user). Open refuses it
	// rather than changing the mode of a directory it did not create.
	ErrUnsafeStateDir = errors.New("tpm: state directory is not private to this user")
)

// Algorithm is a binding key's algorithm.
type Algorithm string

const (
	// RSA2048 is what IMDSv2 accepts; it is the default.
	RSA2048 Algorithm = "rsa-2048"
	// ECCP256 is ECDSA on NIST P-256: faster to create and sign, for peers that accept it.
	ECCP256 Algorithm = "ecc-p256"
)

// Config configures a Provider.
type Config struct {
	// Device is the TPM: "" or a character device path (DefaultDevice, /dev/tpmrm0), or
	// "tcp://host:port" for swtpm (--server type=tcp) or another TPM simulator speaking the
	// Microsoft simulator framing on its command port. Ignored when Transport is set.
	Device string
	// Transport, when set, is used instead of opening Device. The Provider does not close it.
	Transport transport.TPM
	// StateDir keeps the wrapped key blobs and certificate records (files 0600). Directories
	// Open creates are 0700; an existing one is used as it is, and refused (ErrUnsafeStateDir)
	// when it is group- or world-writable or owned by another user. "" means
	// DefaultStateDir(). The blobs are useless without this TPM.
	StateDir string
	// Algorithm of new binding keys; "" means RSA2048. A persisted key of another algorithm is
	// replaced when its slot is next used.
	Algorithm Algorithm
	// SRKHandle is a persistent storage key (0x81xxxxxx) to create keys under; 0 derives the
	// TCG ECC P-256 SRK from the owner hierarchy when needed (deterministic, so blobs reload).
	SRKHandle uint32
	// EKCertificate (DER) is used instead of reading the EK certificate from the TPM's NV
	// (0x01C00002, then 0x01C0000A), for TPMs whose EK certificate is delivered out of band.
	// Padding after the certificate (as copied out of NV) is dropped; Open refuses bytes that
	// do not start with a DER element.
	EKCertificate []byte
	// SignTimeout bounds how long Sign waits for the TPM when other commands are queued
	// (crypto.Signer has no context); 0 means 30 seconds.
	SignTimeout time.Duration
	// Logger receives key lifecycle events; nil discards them. Nothing secret is logged.
	Logger *slog.Logger
}

// DefaultStateDir is $XDG_STATE_HOME/mtlspop/tpm, or ~/.local/state/mtlspop/tpm.
func DefaultStateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "mtlspop", "tpm"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".local", "state", "mtlspop", "tpm"), nil
}

// Provider is a keys.Provider and keys.CertificateStore of TPM-resident binding keys. It is
// safe for concurrent use; every TPM command is serialised on its one connection.
type Provider struct {
	cfg     Config
	log     *slog.Logger
	counter *CountingTransport // every command goes through it
	owned   transport.TPMCloser
	dir     string

	sem     chan struct{} // the TPM lock; holds everything below
	closed  bool
	keys    map[string]*Key
	pss     pssState
	pinned  *Key           // kept loaded by the withRoom call in progress
	srkName tpm2.TPM2BName // of a persistent SRK, read once
	ekCert  []byte
	ekRead  bool

	closeOnce sync.Once
	closeErr  error
}

type pssState int

const (
	pssUntested pssState = iota
	pssHashLength
	pssMaxSalt
)

var _ keys.Provider = (*Provider)(nil)
var _ keys.CertificateStore = (*Provider)(nil)

// Open connects to the TPM, checks that it can derive (or find) the SRK, and prepares the state
// directory. Keys are created or loaded on first use by Key.
func Open(ctx context.Context, cfg Config) (_ *Provider, err error) {
	if cfg.Algorithm == "" {
		cfg.Algorithm = RSA2048
	}
	if cfg.Algorithm != RSA2048 && cfg.Algorithm != ECCP256 {
		return nil, token.Errorf(token.CodeInvalidArgument, "tpm: algorithm %q is not %q or %q", cfg.Algorithm, RSA2048, ECCP256)
	}
	if cfg.SRKHandle != 0 && cfg.SRKHandle>>24 != 0x81 {
		return nil, token.Errorf(token.CodeInvalidArgument, "tpm: SRK handle 0x%08x is not a persistent handle (0x81xxxxxx)", cfg.SRKHandle)
	}
	if cfg.SignTimeout <= 0 {
		cfg.SignTimeout = 30 * time.Second
	}
	p := &Provider{cfg: cfg, log: cfg.Logger, sem: make(chan struct{}, 1), keys: make(map[string]*Key)}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.log = p.log.With(slog.String("component", "tpm"))
	if p.dir = cfg.StateDir; p.dir == "" {
		if p.dir, err = DefaultStateDir(); err != nil {
			return nil, token.Wrap(token.CodeInvalidArgument, err, "tpm: no state directory given and no home directory")
		}
	}
	if err := prepareDir(p.dir); err != nil {
		if errors.Is(err, ErrUnsafeStateDir) {
			return nil, token.Wrap(token.CodeInvalidArgument, err, "tpm: state directory refused; give a directory only this user can write (a new one is created 0700)")
		}
		return nil, token.Wrap(token.CodeTPM, err, "tpm: state directory")
	}
	if cfg.EKCertificate != nil {
		// Trimmed here, once, so AttestationIdentity, Certify and ActivateCredential all see a
		// single DER certificate, exactly as for a certificate read from NV.
		der, err := trimEKCertificate(cfg.EKCertificate)
		if err != nil {
			return nil, token.Wrap(token.CodeInvalidArgument, err, "tpm: Config.EKCertificate")
		}
		p.ekCert, p.ekRead = der, true
	}

	t := cfg.Transport
	if t == nil {
		tc, err := openDevice(cfg.Device)
		if err != nil {
			return nil, token.Wrap(token.CodeTPM, err, "tpm: opening %s", deviceName(cfg.Device))
		}
		p.owned, t = tc, tc
	}
	defer func() {
		if err != nil && p.owned != nil {
			_ = p.owned.Close()
		}
	}()
	p.counter = NewCountingTransport(t)

	if err := p.acquire(ctx); err != nil {
		return nil, err
	}
	defer p.release()
	if err := p.withSRK(func(tpm2.NamedHandle) error { return nil }); err != nil {
		return nil, token.Wrap(token.CodeTPM, err, "tpm: storage root key")
	}
	p.log.Debug("opened", slog.String("device", deviceName(cfg.Device)), slog.String("algorithm", string(cfg.Algorithm)))
	return p, nil
}

func deviceName(d string) string {
	if d == "" {
		return DefaultDevice
	}
	return d
}

// prepareDir makes sure dir and dir/keys exist and that nobody but this user can change them.
// Only directories it creates get a mode (0700): an existing directory may be shared on purpose
// (a user pointing --tpm-state-dir at /tmp must not lock everyone else out of it), so instead of
// fixing its mode it is refused when others could write to it.
func prepareDir(dir string) error {
	for _, d := range []string{dir, filepath.Join(dir, "keys")} {
		if err := privateDir(d); err != nil {
			return err
		}
	}
	return nil
}

func privateDir(d string) error {
	if err := os.MkdirAll(filepath.Dir(d), 0o700); err != nil {
		return err
	}
	err := os.Mkdir(d, 0o700)
	if err == nil {
		// The umask may have taken bits off; 0700 is what the blobs' directory must be.
		return os.Chmod(d, 0o700)
	}
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Stat(d)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", d)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%w: %s has mode %v (group or others may write)", ErrUnsafeStateDir, d, fi.Mode())
	}
	if uid, ok := fileOwner(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("%w: %s is owned by uid %d, not this user (uid %d)", ErrUnsafeStateDir, d, uid, os.Geteuid())
	}
	return nil
}

// Commands returns how many commands of each code the Provider has sent to the TPM.
func (p *Provider) Commands() map[tpm2.TPMCC]uint64 { return p.counter.Counts() }

// acquire takes the TPM lock, or fails when ctx ends first or the provider is closed.
func (p *Provider) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return token.Wrap(token.CodeCanceled, err, "tpm: waiting for the TPM")
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return token.Wrap(token.CodeCanceled, ctx.Err(), "tpm: waiting for the TPM")
	}
	if p.closed {
		<-p.sem
		return ErrClosed
	}
	return nil
}

func (p *Provider) release() { <-p.sem }

// withSRK runs f with the storage root key: the persistent handle, or a transient SRK derived
// from the owner hierarchy for this call and flushed after it.
func (p *Provider) withSRK(f func(srk tpm2.NamedHandle) error) error {
	if h := tpm2.TPMHandle(p.cfg.SRKHandle); h != 0 {
		if len(p.srkName.Buffer) == 0 {
			rp, err := tpm2.ReadPublic{ObjectHandle: h}.Execute(p.counter)
			if err != nil {
				return fmt.Errorf("reading persistent SRK 0x%08x: %w", uint32(h), err)
			}
			p.srkName = rp.Name
		}
		return f(tpm2.NamedHandle{Handle: h, Name: p.srkName})
	}
	rsp, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(tpm2.ECCSRKTemplate)}.Execute(p.counter)
	if err != nil {
		return fmt.Errorf("creating the SRK: %w", err)
	}
	err = f(tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name})
	return errors.Join(err, p.flush(rsp.ObjectHandle))
}

func (p *Provider) flush(h tpm2.TPMHandle) error {
	if _, err := (tpm2.FlushContext{FlushHandle: h}).Execute(p.counter); err != nil {
		return fmt.Errorf("flushing handle 0x%08x: %w", uint32(h), err)
	}
	return nil
}

// Key returns the slot's binding key: the loaded one, else the persisted one (loaded into the
// TPM), else a new one (created in the TPM and persisted).
func (p *Provider) Key(ctx context.Context, slot string) (keys.Key, error) {
	k, err := p.key(ctx, slot)
	if err != nil {
		return nil, err
	}
	return k, nil
}

// TPMKey is Key with the concrete type, for callers that want its TPM-specific methods.
func (p *Provider) TPMKey(ctx context.Context, slot string) (*Key, error) { return p.key(ctx, slot) }

func (p *Provider) key(ctx context.Context, slot string) (*Key, error) {
	if err := p.acquire(ctx); err != nil {
		return nil, err
	}
	defer p.release()
	if k, ok := p.keys[slot]; ok {
		return k, nil
	}
	k, err := p.loadPersisted(slot)
	var unusable *unusableKeyError
	switch {
	case errors.As(err, &unusable):
		// Only a key the files or the TPM proved unusable is replaced: deleting it also drops
		// the certificate issued for it, so a new key means a new certificate (and attestation).
		p.log.Warn("persisted key not usable; creating a new one", slog.String("slot", slot), slog.String("reason", err.Error()))
		if err := p.removeSlotFiles(slot); err != nil {
			return nil, token.Wrap(token.CodeTPM, err, "tpm: removing the unusable key's files")
		}
	case err != nil:
		// A timeout, a busy or self-testing TPM, a missing SRK, full object memory: the key
		// and its certificate are fine and are kept for the next attempt.
		e := token.Wrap(token.CodeTPM, err, "tpm: loading the persisted key of slot %q (kept)", slot)
		e.Retryable = true
		return nil, e
	}
	if k == nil {
		if k, err = p.create(slot); err != nil {
			return nil, err
		}
	}
	if err := p.selfTest(k); err != nil {
		p.unload(k)
		return nil, token.Wrap(token.CodeTPM, err, "tpm: signing self-test")
	}
	k.pssOK = p.pss == pssHashLength
	p.keys[slot] = k
	return k, nil
}

// load makes sure k is loaded in the TPM. Keys stay loaded until rotated or closed, or until
// another operation needs their object slot (see withRoom). The caller holds the TPM lock.
func (p *Provider) load(k *Key) error {
	if k.released {
		return token.Wrap(token.CodeInvalidArgument, ErrKeyReleased, "tpm: using key")
	}
	if k.loaded {
		return nil
	}
	return p.withRoom(nil, func() error {
		h, name, err := p.loadUnderSRK(k.publicArea, k.private)
		if err != nil {
			return err
		}
		k.handle, k.name, k.loaded = h, name, true
		return nil
	})
}

// unload flushes k if it is loaded.
func (p *Provider) unload(k *Key) error {
	if !k.loaded {
		return nil
	}
	k.loaded = false
	return p.flush(k.handle)
}

// withRoom runs op, and when the TPM is out of transient object slots — a TPM without a
// resource manager (swtpm, a simulator, /dev/tpm0) often has only three — flushes the binding
// keys other than keep and runs op once more. Flushed keys reload from their blobs on next use.
// op must leave nothing loaded when it fails.
// Calls nest: a key kept by an outer call stays loaded through the inner ones.
func (p *Provider) withRoom(keep *Key, op func() error) error {
	if keep != nil && p.pinned == nil {
		p.pinned = keep
		defer func() { p.pinned = nil }()
	}
	err := op()
	var rc tpm2.TPMRC
	if !errors.As(err, &rc) || rc != tpm2.TPMRCObjectMemory {
		return err
	}
	evicted := 0
	for _, k := range p.keys {
		if k != keep && k != p.pinned && k.loaded {
			if err := p.unload(k); err != nil {
				return err
			}
			evicted++
		}
	}
	if evicted == 0 {
		return err
	}
	p.log.Debug("TPM out of object memory; flushed idle binding keys", slog.Int("flushed", evicted))
	return op()
}

// loadUnderSRK loads a key blob under the SRK and flushes a transient SRK, leaving only the key
// loaded. The caller holds the TPM lock.
func (p *Provider) loadUnderSRK(public, private []byte) (h tpm2.TPMHandle, name tpm2.TPM2BName, err error) {
	err = p.withSRK(func(srk tpm2.NamedHandle) error {
		rsp, err := tpm2.Load{
			ParentHandle: srk,
			InPrivate:    tpm2.TPM2BPrivate{Buffer: private},
			InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](public),
		}.Execute(p.counter)
		if err != nil {
			return &loadError{err}
		}
		h, name = rsp.ObjectHandle, rsp.Name
		return nil
	})
	return h, name, err
}

// keyFile is a slot's persisted key.
type keyFile struct {
	Version   int       `json:"version"`
	Slot      string    `json:"slot"`
	Algorithm Algorithm `json:"algorithm"`
	Public    []byte    `json:"public"`  // TPMT_PUBLIC
	Private   []byte    `json:"private"` // TPM2B_PRIVATE contents, wrapped by the SRK
}

type certFile struct {
	Slot   string                 `json:"slot"`
	Record keys.CertificateRecord `json:"record"`
}

func (p *Provider) slotPath(slot, suffix string) string {
	sum := sha256.Sum256([]byte(slot))
	return filepath.Join(p.dir, "keys", hex.EncodeToString(sum[:16])+suffix)
}

// loadError marks an error of the TPM2_Load command itself, as opposed to the commands around
// it (deriving or reading the SRK, flushing), whose failures say nothing about the blob.
type loadError struct{ err error }

func (e *loadError) Error() string { return "TPM2_Load: " + e.err.Error() }
func (e *loadError) Unwrap() error { return e.err }

// unusableKeyError says a persisted key can never be loaded again (its files are discarded),
// as opposed to a failure that may pass (its files are kept).
type unusableKeyError struct{ reason error }

func (e *unusableKeyError) Error() string { return e.reason.Error() }
func (e *unusableKeyError) Unwrap() error { return e.reason }

func unusable(format string, args ...any) error {
	return &unusableKeyError{fmt.Errorf(format, args...)}
}

// blobRejected reports whether TPM2_Load refused the blob itself: a format-1 error about one of
// its parameters (inPrivate, inPublic) — TPM_RC_INTEGRITY when it was wrapped by another SRK or
// another TPM, TPM_RC_SIZE, TPM_RC_VALUE, TPM_RC_KEY, TPM_RC_BINDING and the like — or
// TPM_RC_SENSITIVE (the private area does not decrypt into a sensitive area). Warnings
// (TPM_RC_RETRY, TPM_RC_TESTING, TPM_RC_OBJECT_MEMORY, ...), handle errors (about the parent,
// i.e. the SRK) and transport failures say nothing about the blob.
func blobRejected(err error) bool {
	var le *loadError
	if !errors.As(err, &le) {
		return false
	}
	var f1 tpm2.TPMFmt1Error
	if errors.As(le.err, &f1) {
		isParam, _ := f1.Parameter()
		return isParam
	}
	return errors.Is(le.err, tpm2.TPMRCSensitive)
}

// loadPersisted loads the slot's persisted key; (nil, nil) when there is none. An
// *unusableKeyError says the files can never work (malformed, another slot or algorithm, or a
// blob the TPM refuses: another TPM or SRK); any other error may be transient.
func (p *Provider) loadPersisted(slot string) (*Key, error) {
	b, err := os.ReadFile(p.slotPath(slot, ".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f keyFile
	if err := json.Unmarshal(b, &f); err != nil || f.Slot != slot || f.Version != 1 {
		return nil, unusable("state file is malformed or belongs to another slot")
	}
	if f.Algorithm != p.cfg.Algorithm {
		return nil, unusable("persisted key is %s, configured algorithm is %s", f.Algorithm, p.cfg.Algorithm)
	}
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](f.Public)
	if err != nil {
		return nil, unusable("public area: %w", err)
	}
	if !bindingAttributes(pub.ObjectAttributes) {
		return nil, unusable("persisted key does not have the binding-key attributes")
	}
	k, err := newKey(p, slot, f.Algorithm, f.Public, f.Private)
	if err != nil {
		return nil, unusable("%w", err)
	}
	if err := p.load(k); err != nil {
		if blobRejected(err) {
			return nil, unusable("the TPM refuses the key blob: %w", err)
		}
		return nil, err
	}
	p.log.Info("binding key loaded", slog.String("slot", slot), slog.String("algorithm", string(k.alg)))
	return k, nil
}

func (p *Provider) create(slot string) (*Key, error) {
	start := time.Now()
	var k *Key
	err := p.withRoom(nil, func() error {
		return p.withSRK(func(srk tpm2.NamedHandle) error {
			cr, err := tpm2.Create{ParentHandle: srk, InPublic: tpm2.New2B(bindingTemplate(p.cfg.Algorithm))}.Execute(p.counter)
			if err != nil {
				return fmt.Errorf("creating the key: %w", err)
			}
			if k, err = newKey(p, slot, p.cfg.Algorithm, cr.OutPublic.Bytes(), cr.OutPrivate.Buffer); err != nil {
				return err
			}
			lr, err := tpm2.Load{ParentHandle: srk, InPrivate: cr.OutPrivate, InPublic: cr.OutPublic}.Execute(p.counter)
			if err != nil {
				return fmt.Errorf("loading the new key: %w", err)
			}
			k.handle, k.name, k.loaded = lr.ObjectHandle, lr.Name, true
			return nil
		})
	})
	if err != nil {
		return nil, token.Wrap(token.CodeTPM, err, "tpm: new binding key")
	}
	f := keyFile{Version: 1, Slot: slot, Algorithm: p.cfg.Algorithm, Public: k.publicArea, Private: k.private}
	if err := writeJSON(p.slotPath(slot, ".json"), f); err != nil {
		p.unload(k)
		return nil, token.Wrap(token.CodeTPM, err, "tpm: persisting the new key")
	}
	// A certificate recorded for a previous key of this slot certifies nothing now.
	if err := os.Remove(p.slotPath(slot, ".cert.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		p.unload(k)
		return nil, token.Wrap(token.CodeTPM, err, "tpm: removing a stale certificate record")
	}
	p.log.Info("binding key created", slog.String("slot", slot), slog.String("algorithm", string(k.alg)),
		slog.Duration("duration", time.Since(start)))
	return k, nil
}

func (p *Provider) removeSlotFiles(slot string) error {
	var errs []error
	for _, s := range []string{".json", ".cert.json"} {
		if err := os.Remove(p.slotPath(slot, s)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// writeJSON writes v to path atomically with mode 0600.
func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Rotate flushes the slot's key from the TPM and deletes its blobs and certificate record, so
// the next Key call creates a new key. The old *Key fails with ErrKeyReleased afterwards.
func (p *Provider) Rotate(ctx context.Context, slot string) error {
	if err := p.acquire(ctx); err != nil {
		return err
	}
	defer p.release()
	var errs []error
	if k, ok := p.keys[slot]; ok {
		delete(p.keys, slot)
		if err := p.unload(k); err != nil {
			errs = append(errs, err)
		}
		k.released = true
	}
	if err := p.removeSlotFiles(slot); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return token.Wrap(token.CodeTPM, err, "tpm: rotating slot")
	}
	p.log.Info("binding key rotated", slog.String("slot", slot))
	return nil
}

// StoreCertificate records the certificate issued for the slot's current key. When the key is
// loaded, the certificate must be for it.
func (p *Provider) StoreCertificate(ctx context.Context, slot string, rec keys.CertificateRecord) error {
	if err := p.acquire(ctx); err != nil {
		return err
	}
	defer p.release()
	cert, err := x509.ParseCertificate(rec.DER)
	if err != nil {
		return token.Wrap(token.CodeInvalidArgument, err, "tpm: certificate does not parse")
	}
	if k, ok := p.keys[slot]; ok {
		if pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(k.public) {
			return token.Errorf(token.CodeInvalidArgument, "tpm: certificate is not for the slot's key")
		}
	}
	if err := writeJSON(p.slotPath(slot, ".cert.json"), certFile{Slot: slot, Record: rec}); err != nil {
		return token.Wrap(token.CodeTPM, err, "tpm: storing certificate")
	}
	return nil
}

// LoadCertificate returns the slot's recorded certificate; ok is false when there is none. The
// caller must still check that it is valid and certifies the slot's current key.
func (p *Provider) LoadCertificate(ctx context.Context, slot string) (keys.CertificateRecord, bool, error) {
	if err := p.acquire(ctx); err != nil {
		return keys.CertificateRecord{}, false, err
	}
	defer p.release()
	b, err := os.ReadFile(p.slotPath(slot, ".cert.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return keys.CertificateRecord{}, false, nil
	}
	if err != nil {
		return keys.CertificateRecord{}, false, token.Wrap(token.CodeTPM, err, "tpm: reading certificate record")
	}
	var f certFile
	if err := json.Unmarshal(b, &f); err != nil || f.Slot != slot {
		return keys.CertificateRecord{}, false, token.Errorf(token.CodeTPM, "tpm: certificate record is malformed")
	}
	return f.Record, true, nil
}

// Close flushes the keys this Provider loaded and closes the transport if Open opened it (an
// injected Config.Transport stays open). It waits for a command in flight; it is idempotent,
// and every call returns the first call's result.
func (p *Provider) Close() error {
	p.closeOnce.Do(func() {
		p.sem <- struct{}{}
		defer func() { <-p.sem }()
		p.closed = true
		var errs []error
		for slot, k := range p.keys {
			if err := p.unload(k); err != nil {
				errs = append(errs, err)
			}
			k.released = true
			delete(p.keys, slot)
		}
		if p.owned != nil {
			if err := p.owned.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			p.closeErr = token.Wrap(token.CodeTPM, err, "tpm: closing")
		}
	})
	return p.closeErr
}
