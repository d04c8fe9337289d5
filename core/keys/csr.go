package keys

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/mtlspop/mtlspop/core/token"
)

// The IMDSv2 CSR, as MSAL.NET builds it (reference/msal-dotnet-mtlspop.md §1.4): PKCS#10, subject
// "CN=<clientId>, DC=<tenantId>", an RSA key, one attribute under OIDCuID whose single value is a
// UTF8String holding the JSON of the cuId object, signed RSASSA-PSS with SHA-256, MGF1-SHA-256
// and a 32-byte salt. On the wire it is single-line standard base64 of the DER.
//
// Go's x509.CreateCertificateRequest cannot write an attribute whose value is a bare UTF8String
// (its Attributes field only models the extension-request shape), so the request info is
// marshalled here and signed through the crypto.Signer, which also lets a TPM key sign it.

// OIDCuID is the CSR attribute that carries the cuId JSON (a Microsoft arc).
var OIDCuID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 90, 2, 10}

var (
	oidCommonName      = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidDomainComponent = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
	oidRSAPSS          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidSHA256          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidMGF1            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
)

// CUID identifies the compute unit (VM or scale set) in getplatformmetadata and in the CSR.
// Empty members are omitted from the JSON, as MSAL omits nulls.
type CUID struct {
	VMID   string `json:"vmId,omitempty"`
	VMSSID string `json:"vmssId,omitempty"`
}

// Valid reports whether at least one of the ids is present, as IMDS requires.
func (c CUID) Valid() bool { return c.VMID != "" || c.VMSSID != "" }

type pssParams struct {
	Hash       pkix.AlgorithmIdentifier `asn1:"explicit,tag:0"`
	MGF        pkix.AlgorithmIdentifier `asn1:"explicit,tag:1"`
	SaltLength int                      `asn1:"explicit,tag:2"`
}

type attribute struct {
	Type   asn1.ObjectIdentifier
	Values []asn1.RawValue `asn1:"set"`
}

type certificationRequestInfo struct {
	Version    int
	Subject    asn1.RawValue
	PublicKey  asn1.RawValue
	Attributes []attribute `asn1:"tag:0,set"`
}

type certificationRequest struct {
	Info      asn1.RawValue
	Algorithm pkix.AlgorithmIdentifier
	Signature asn1.BitString
}

// pssAlgorithm is the AlgorithmIdentifier of RSASSA-PSS / SHA-256 / MGF1-SHA-256 / salt 32.
var pssAlgorithm = func() pkix.AlgorithmIdentifier {
	sha := pkix.AlgorithmIdentifier{Algorithm: oidSHA256, Parameters: asn1.NullRawValue}
	shaDER, err := asn1.Marshal(sha)
	if err != nil {
		panic(err)
	}
	params, err := asn1.Marshal(pssParams{
		Hash:       sha,
		MGF:        pkix.AlgorithmIdentifier{Algorithm: oidMGF1, Parameters: asn1.RawValue{FullBytes: shaDER}},
		SaltLength: sha256.Size,
	})
	if err != nil {
		panic(err)
	}
	return pkix.AlgorithmIdentifier{Algorithm: oidRSAPSS, Parameters: asn1.RawValue{FullBytes: params}}
}()

// subjectDER encodes the subject MSAL.NET writes for "CN=<clientId>, DC=<tenantId>". .NET encodes
// a DN string in reverse, so the DER holds DC first and CN last; DC is an IA5String (RFC 4519),
// CN a UTF8String (RFC 5280).
func subjectDER(clientID, tenantID string) ([]byte, error) {
	dc := pkix.AttributeTypeAndValue{Type: oidDomainComponent, Value: asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte(tenantID)}}
	cn := pkix.AttributeTypeAndValue{Type: oidCommonName, Value: asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte(clientID)}}
	return asn1.Marshal(pkix.RDNSequence{{dc}, {cn}})
}

// IMDSCSR builds the IMDSv2 certificate signing request for the key behind signer and returns it
// as single-line standard base64 of the DER, ready for issuecredential's "csr" field.
func IMDSCSR(signer crypto.Signer, clientID, tenantID string, cuid CUID) (string, error) {
	der, err := imdsCSRDER(signer, clientID, tenantID, cuid)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

func imdsCSRDER(signer crypto.Signer, clientID, tenantID string, cuid CUID) ([]byte, error) {
	if clientID == "" || tenantID == "" || !isIA5(tenantID) || !utf8.ValidString(clientID) {
		return nil, token.Errorf(token.CodeInvalidArgument, "csr: client id and tenant id must be non-empty text")
	}
	if !cuid.Valid() {
		return nil, token.Errorf(token.CodeInvalidArgument, "csr: cuId needs a vmId or a vmssId")
	}
	if _, ok := signer.Public().(*rsa.PublicKey); !ok {
		return nil, token.Errorf(token.CodeInvalidArgument, "csr: IMDSv2 needs an RSA key, got %T", signer.Public())
	}
	subject, err := subjectDER(clientID, tenantID)
	if err != nil {
		return nil, token.Wrap(token.CodeInternal, err, "csr: encoding subject")
	}
	spki, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return nil, token.Wrap(token.CodeInvalidArgument, err, "csr: encoding public key")
	}
	cuidJSON, err := json.Marshal(cuid)
	if err != nil {
		return nil, token.Wrap(token.CodeInternal, err, "csr: encoding cuId")
	}
	cuidValue, err := asn1.Marshal(asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: cuidJSON})
	if err != nil {
		return nil, token.Wrap(token.CodeInternal, err, "csr: encoding cuId")
	}
	info, err := asn1.Marshal(certificationRequestInfo{
		Subject:    asn1.RawValue{FullBytes: subject},
		PublicKey:  asn1.RawValue{FullBytes: spki},
		Attributes: []attribute{{Type: OIDCuID, Values: []asn1.RawValue{{FullBytes: cuidValue}}}},
	})
	if err != nil {
		return nil, token.Wrap(token.CodeInternal, err, "csr: encoding request info")
	}
	digest := sha256.Sum256(info)
	sig, err := signer.Sign(rand.Reader, digest[:], &rsa.PSSOptions{SaltLength: sha256.Size, Hash: crypto.SHA256})
	if err != nil {
		return nil, token.Wrap(token.CodeInternal, err, "csr: signing with the binding key")
	}
	der, err := asn1.Marshal(certificationRequest{
		Info:      asn1.RawValue{FullBytes: info},
		Algorithm: pssAlgorithm,
		Signature: asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
	})
	if err != nil {
		return nil, token.Wrap(token.CodeInternal, err, "csr: encoding request")
	}
	return der, nil
}

func isIA5(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// IMDSRequest is a parsed and verified IMDSv2 CSR.
type IMDSRequest struct {
	ClientID  string
	TenantID  string
	CUID      CUID
	PublicKey *rsa.PublicKey
	Request   *x509.CertificateRequest
}

// maxCSRLen bounds the base64 input: an RSA-4096 CSR is well under 2 KiB.
const maxCSRLen = 16 << 10

// ParseIMDSCSR decodes a base64 IMDSv2 CSR and verifies everything the issuing service relies on:
// the signature is RSASSA-PSS/SHA-256 with a 32-byte salt and verifies, the key is RSA of at
// least 2048 bits, the subject is exactly DC=<tenant>, CN=<client>, and the cuId attribute is a
// UTF8String of valid cuId JSON. It never panics on hostile input.
func ParseIMDSCSR(b64 string) (*IMDSRequest, error) {
	if len(b64) > maxCSRLen {
		return nil, errors.New("csr: too large")
	}
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("csr: not standard base64: %w", err)
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	if req.SignatureAlgorithm != x509.SHA256WithRSAPSS {
		return nil, fmt.Errorf("csr: signature algorithm is %v, want SHA256-RSAPSS with a 32-byte salt", req.SignatureAlgorithm)
	}
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr: signature does not verify: %w", err)
	}
	pub, ok := req.PublicKey.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() < RSABits {
		return nil, errors.New("csr: key must be RSA of at least 2048 bits")
	}
	out := &IMDSRequest{PublicKey: pub, Request: req}
	if out.ClientID, out.TenantID, err = parseSubject(req.RawSubject); err != nil {
		return nil, err
	}
	if out.CUID, err = parseCUID(req.RawTBSCertificateRequest); err != nil {
		return nil, err
	}
	return out, nil
}

func parseSubject(raw []byte) (clientID, tenantID string, err error) {
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(raw, &rdns); err != nil || len(rest) != 0 {
		return "", "", errors.New("csr: malformed subject")
	}
	for _, rdn := range rdns {
		for _, atv := range rdn {
			v, ok := atv.Value.(string)
			if !ok {
				return "", "", errors.New("csr: subject values must be strings")
			}
			switch {
			case atv.Type.Equal(oidCommonName) && clientID == "":
				clientID = v
			case atv.Type.Equal(oidDomainComponent) && tenantID == "":
				tenantID = v
			default:
				return "", "", fmt.Errorf("csr: unexpected subject attribute %v", atv.Type)
			}
		}
	}
	if clientID == "" || tenantID == "" {
		return "", "", errors.New("csr: subject must hold CN=<clientId> and DC=<tenantId>")
	}
	return clientID, tenantID, nil
}

func parseCUID(rawInfo []byte) (CUID, error) {
	var info certificationRequestInfo
	if rest, err := asn1.Unmarshal(rawInfo, &info); err != nil || len(rest) != 0 {
		return CUID{}, errors.New("csr: malformed request info")
	}
	var found *attribute
	for i := range info.Attributes {
		if info.Attributes[i].Type.Equal(OIDCuID) {
			if found != nil {
				return CUID{}, errors.New("csr: cuId attribute repeated")
			}
			found = &info.Attributes[i]
		}
	}
	if found == nil {
		return CUID{}, errors.New("csr: cuId attribute missing")
	}
	if len(found.Values) != 1 || found.Values[0].Tag != asn1.TagUTF8String || found.Values[0].Class != asn1.ClassUniversal {
		return CUID{}, errors.New("csr: cuId attribute must hold one UTF8String")
	}
	var c CUID
	if err := json.Unmarshal(found.Values[0].Bytes, &c); err != nil {
		return CUID{}, errors.New("csr: cuId attribute is not cuId JSON")
	}
	if !c.Valid() {
		return CUID{}, errors.New("csr: cuId needs a vmId or a vmssId")
	}
	return c, nil
}
