package tpm

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/google/go-tpm/tpm2"

	"github.com/mtlspop/mtlspop/core/attest"
	"github.com/mtlspop/mtlspop/core/token"
)

// The attestation key (AK): a restricted ECC P-256 signing key (ECDSA-SHA256) under the SRK,
// created once per state directory and persisted like binding keys. Restricted, it signs only
// structures the TPM generated (or digests it hashed itself), so its signature over a
// TPMS_ATTEST cannot be forged by software that merely uses the TPM.
func akTemplate() tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            true,
			FixedParent:         true,
			SensitiveDataOrigin: true,
			UserWithAuth:        true,
			NoDA:                true,
			Restricted:          true,
			SignEncrypt:         true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Scheme: tpm2.TPMTECCScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
	}
}

// TCG EK certificate NV indices (EK Credential Profile): RSA-2048 and ECC P-256, low range.
const (
	nvEKCertRSA = 0x01C00002
	nvEKCertECC = 0x01C0000A
	nvChunk     = 512
)

type akFile struct {
	Version int    `json:"version"`
	Public  []byte `json:"public"`
	Private []byte `json:"private"`
}

var (
	_ attest.Attestable          = (*Key)(nil)
	_ attest.CredentialActivator = (*Key)(nil)
)

func (p *Provider) akPath() string { return filepath.Join(p.dir, "ak.json") }

// ak returns the persisted AK blobs, creating the AK when there is none. The caller holds the
// TPM lock.
func (p *Provider) ak() (*akFile, error) {
	b, err := os.ReadFile(p.akPath())
	if err == nil {
		var f akFile
		if json.Unmarshal(b, &f) == nil && f.Version == 1 && len(f.Public) > 0 && len(f.Private) > 0 {
			return &f, nil
		}
		p.log.Warn("attestation key file is malformed; creating a new attestation key")
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var f *akFile
	err = p.withRoom(nil, func() error {
		return p.withSRK(func(srk tpm2.NamedHandle) error {
			cr, err := tpm2.Create{ParentHandle: srk, InPublic: tpm2.New2B(akTemplate())}.Execute(p.counter)
			if err != nil {
				return fmt.Errorf("creating the attestation key: %w", err)
			}
			f = &akFile{Version: 1, Public: cr.OutPublic.Bytes(), Private: cr.OutPrivate.Buffer}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if err := writeJSON(p.akPath(), f); err != nil {
		return nil, fmt.Errorf("persisting the attestation key: %w", err)
	}
	p.log.Info("attestation key created")
	return f, nil
}

// withAK runs f with the AK loaded (and the SRK already flushed), and flushes the AK after.
// The caller holds the TPM lock.
func (p *Provider) withAK(f func(ak tpm2.NamedHandle, akf *akFile) error) error {
	akf, err := p.ak()
	if err != nil {
		return err
	}
	h, name, err := p.loadUnderSRK(akf.Public, akf.Private)
	if err != nil {
		return fmt.Errorf("loading the attestation key: %w", err)
	}
	err = f(tpm2.NamedHandle{Handle: h, Name: name}, akf)
	return errors.Join(err, p.flush(h))
}

// ekCertificate returns the EK certificate (Config.EKCertificate, trimmed by Open, else read
// once from NV); nil when the TPM has none or it cannot be read (logged: attestation can still
// succeed when the service trusts the AK by other means). The caller holds the TPM lock.
func (p *Provider) ekCertificate() []byte {
	if p.ekRead {
		return p.ekCert
	}
	p.ekRead = true
	for _, idx := range []tpm2.TPMHandle{nvEKCertRSA, nvEKCertECC} {
		der, err := p.readNV(idx)
		if err != nil {
			if !errors.Is(err, errNVUndefined) {
				p.log.Warn("EK certificate not readable", slog.String("index", fmt.Sprintf("0x%08x", uint32(idx))), slog.String("error", err.Error()))
			}
			continue
		}
		if p.ekCert, err = trimEKCertificate(der); err != nil {
			p.log.Warn("EK certificate in NV does not parse", slog.String("index", fmt.Sprintf("0x%08x", uint32(idx))), slog.String("error", err.Error()))
			continue
		}
		return p.ekCert
	}
	return nil
}

// trimEKCertificate returns the one DER element at the start of der. EK certificates in NV are
// often padded to the index's size, and one copied out of NV keeps that padding, so every EK
// certificate — from NV or from Config — goes through here before anyone parses or sends it.
// It checks only the DER framing: some vendors' EK certificates are refused by crypto/x509
// (negative serial numbers, for one) yet accepted by attestation services, so they are still
// presented.
func trimEKCertificate(der []byte) ([]byte, error) {
	var raw asn1.RawValue
	rest, err := asn1.Unmarshal(der, &raw)
	if err != nil {
		return nil, fmt.Errorf("EK certificate is not DER: %w", err)
	}
	return der[:len(der)-len(rest)], nil
}

var errNVUndefined = errors.New("NV index not defined")

func (p *Provider) readNV(idx tpm2.TPMHandle) ([]byte, error) {
	rp, err := tpm2.NVReadPublic{NVIndex: idx}.Execute(p.counter)
	if err != nil {
		var rc tpm2.TPMRC
		if errors.As(err, &rc) {
			return nil, errNVUndefined
		}
		return nil, err
	}
	pub, err := rp.NVPublic.Contents()
	if err != nil {
		return nil, err
	}
	var auth tpm2.NamedHandle
	switch {
	case pub.Attributes.AuthRead:
		auth = tpm2.NamedHandle{Handle: idx, Name: rp.NVName}
	case pub.Attributes.OwnerRead:
		auth = tpm2.NamedHandle{Handle: tpm2.TPMRHOwner, Name: tpm2.TPM2BName{Buffer: tpm2.PrimaryHandleName(tpm2.TPMRHOwner)}}
	default:
		return nil, fmt.Errorf("NV index 0x%08x is readable neither with its auth nor the owner's", uint32(idx))
	}
	out := make([]byte, 0, pub.DataSize)
	for off := uint16(0); off < pub.DataSize; {
		n := min(pub.DataSize-off, nvChunk)
		r, err := tpm2.NVRead{AuthHandle: auth, NVIndex: tpm2.NamedHandle{Handle: idx, Name: rp.NVName}, Size: n, Offset: off}.Execute(p.counter)
		if err != nil {
			return nil, fmt.Errorf("reading NV index 0x%08x: %w", uint32(idx), err)
		}
		if len(r.Data.Buffer) == 0 {
			break
		}
		out = append(out, r.Data.Buffer...)
		off += uint16(len(r.Data.Buffer))
	}
	return out, nil
}

// AttestationIdentity returns the provider's attestation key (creating it on first use) and the
// TPM's EK certificate, if any. It needs no binding key: a verifier can be told which AK to
// trust before any key exists.
func (p *Provider) AttestationIdentity(ctx context.Context) (attest.Identity, error) {
	if err := p.acquire(ctx); err != nil {
		return attest.Identity{}, err
	}
	defer p.release()
	akf, err := p.ak()
	if err != nil {
		return attest.Identity{}, token.Wrap(token.CodeTPM, err, "tpm: attestation key")
	}
	return attest.Identity{AKPublic: akf.Public, EKCertificate: p.ekCertificate()}, nil
}

// AttestationIdentity is the provider's AttestationIdentity: every key of a provider is
// certified by the same AK.
func (k *Key) AttestationIdentity(ctx context.Context) (attest.Identity, error) {
	return k.p.AttestationIdentity(ctx)
}

// Certify runs TPM2_Certify of the key by the attestation key, with qualifyingData (at most 32
// bytes) as extraData, and returns the evidence.
func (k *Key) Certify(ctx context.Context, qualifyingData []byte) (*attest.Evidence, error) {
	if len(qualifyingData) > 32 {
		return nil, token.Errorf(token.CodeInvalidArgument, "tpm: qualifying data is %d bytes; at most 32", len(qualifyingData))
	}
	p := k.p
	if err := p.acquire(ctx); err != nil {
		return nil, err
	}
	defer p.release()
	ev := &attest.Evidence{KeyPublic: k.PublicArea()}
	err := p.withRoom(k, func() error {
		if err := p.load(k); err != nil {
			return err
		}
		return p.withAK(func(ak tpm2.NamedHandle, akf *akFile) error {
			rsp, err := tpm2.Certify{
				ObjectHandle:   tpm2.NamedHandle{Handle: k.handle, Name: k.name},
				SignHandle:     ak,
				QualifyingData: tpm2.TPM2BData{Buffer: qualifyingData},
			}.Execute(p.counter)
			if err != nil {
				return fmt.Errorf("TPM2_Certify: %w", err)
			}
			ev.Attest = append([]byte(nil), rsp.CertifyInfo.Bytes()...)
			ev.Signature = tpm2.Marshal(rsp.Signature)
			ev.AKPublic = akf.Public
			return nil
		})
	})
	if err != nil {
		return nil, token.Wrap(token.CodeTPM, err, "tpm: certifying the key")
	}
	ev.EKCertificate = p.ekCertificate()
	return ev, nil
}

// ActivateCredential recovers the secret of a credential made for the attestation key and
// encrypted to the TPM's endorsement key (TPM2_ActivateCredential, with the EK's
// PolicySecret(TPM_RH_ENDORSEMENT) policy). The EK is derived from the TCG default template of
// the EK certificate's algorithm (RSA-2048 when there is no certificate) and flushed after.
func (k *Key) ActivateCredential(ctx context.Context, c attest.Credential) ([]byte, error) {
	p := k.p
	if err := p.acquire(ctx); err != nil {
		return nil, err
	}
	defer p.release()
	ekTemplate := tpm2.RSAEKTemplate
	if der := p.ekCertificate(); der != nil {
		cert, err := x509.ParseCertificate(der)
		switch {
		case err != nil:
			// Said out loud: with an ECC EK the activation below then fails.
			p.log.Warn("EK certificate does not parse; deriving the RSA EK for credential activation", slog.String("error", err.Error()))
		case isECDSA(cert.PublicKey):
			ekTemplate = tpm2.ECCEKTemplate
		}
	}
	var secret []byte
	err := p.withRoom(nil, func() error {
		return p.withAK(func(ak tpm2.NamedHandle, _ *akFile) error {
			ek, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHEndorsement, InPublic: tpm2.New2B(ekTemplate)}.Execute(p.counter)
			if err != nil {
				return fmt.Errorf("creating the EK: %w", err)
			}
			secret, err = p.activate(ak, ek.ObjectHandle, ek.Name, c)
			return errors.Join(err, p.flush(ek.ObjectHandle))
		})
	})
	if err != nil {
		return nil, token.Wrap(token.CodeTPM, err, "tpm: credential activation")
	}
	return secret, nil
}

func isECDSA(k any) bool {
	_, ok := k.(*ecdsa.PublicKey)
	return ok
}

// activate runs TPM2_ActivateCredential with the EK authorised by its policy,
// PolicySecret(TPM_RH_ENDORSEMENT). The policy session is started here rather than by go-tpm's
// just-in-time tpm2.Policy: go-tpm (v0.9.8) does not flush a just-in-time session whose policy
// callback fails (TPM2_PolicySecret answered TPM_RC_RETRY or an auth failure, or the connection
// dropped), and on the provider's long-lived connection every such failure would leak a
// session handle until the TPM ran out of them. The caller holds the TPM lock.
func (p *Provider) activate(ak tpm2.NamedHandle, ek tpm2.TPMHandle, ekName tpm2.TPM2BName, c attest.Credential) (secret []byte, err error) {
	sess, closeSession, err := tpm2.PolicySession(p.counter, tpm2.TPMAlgSHA256, 16)
	if err != nil {
		return nil, fmt.Errorf("starting the EK policy session: %w", err)
	}
	defer func() {
		// The session is flushed on every path: after a successful ActivateCredential the TPM
		// keeps it (PolicySession sets continueSession), and after a failed command too.
		if cerr := closeSession(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("flushing the EK policy session: %w", cerr))
		}
	}()
	if _, err := (tpm2.PolicySecret{
		AuthHandle:    tpm2.TPMRHEndorsement,
		PolicySession: sess.Handle(),
		NonceTPM:      sess.NonceTPM(),
	}).Execute(p.counter); err != nil {
		return nil, fmt.Errorf("TPM2_PolicySecret(endorsement) for the EK: %w", err)
	}
	rsp, err := tpm2.ActivateCredential{
		ActivateHandle: ak,
		KeyHandle:      tpm2.AuthHandle{Handle: ek, Name: ekName, Auth: sess},
		CredentialBlob: tpm2.TPM2BIDObject{Buffer: c.IDObject},
		Secret:         tpm2.TPM2BEncryptedSecret{Buffer: c.EncryptedSecret},
	}.Execute(p.counter)
	if err != nil {
		return nil, fmt.Errorf("TPM2_ActivateCredential: %w", err)
	}
	return rsp.CertInfo.Buffer, nil
}
