package keys

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"strings"
	"testing"
)

func TestIMDSCSRRoundTrip(t *testing.T) {
	p := NewSoftware()
	k, err := p.Key(context.Background(), "slot")
	if err != nil {
		t.Fatal(err)
	}
	b64, err := IMDSCSR(k, "11111111-2222-3333-4444-555555555555", "tenant-guid", CUID{VMID: "vm-1"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(b64, "\r\n -") {
		t.Fatalf("csr is not single-line base64: %q", b64[:40])
	}
	req, err := ParseIMDSCSR(b64)
	if err != nil {
		t.Fatal(err)
	}
	if req.ClientID != "11111111-2222-3333-4444-555555555555" || req.TenantID != "tenant-guid" || req.CUID.VMID != "vm-1" || req.CUID.VMSSID != "" {
		t.Fatalf("parsed %+v", req)
	}
	if !req.PublicKey.Equal(k.Public()) {
		t.Fatal("public key differs")
	}
	// The DER holds DC first, then CN, as .NET writes "CN=x, DC=y".
	var rdns []rawRDNSET
	if _, err := asn1.Unmarshal(req.Request.RawSubject, &rdns); err != nil {
		t.Fatal(err)
	}
	if !rdns[0][0].Type.Equal(oidDomainComponent) || rdns[0][0].Value.Tag != asn1.TagIA5String ||
		!rdns[1][0].Type.Equal(oidCommonName) || rdns[1][0].Value.Tag != asn1.TagUTF8String {
		t.Fatalf("subject order/types wrong: %+v", rdns)
	}
	// The PSS parameters carry a 32-byte salt (x509 only reports SHA256WithRSAPSS for salt 32).
	if req.Request.SignatureAlgorithm.String() != "SHA256-RSAPSS" {
		t.Fatal(req.Request.SignatureAlgorithm)
	}
	// Same key, same slot; after Rotate a new key.
	k2, _ := p.Key(context.Background(), "slot")
	if k2 != k {
		t.Fatal("key not reused")
	}
	_ = p.Rotate(context.Background(), "slot")
	k3, _ := p.Key(context.Background(), "slot")
	if k3 == k {
		t.Fatal("rotate kept the key")
	}
}

func TestIMDSCSRRejectsBadInput(t *testing.T) {
	k, _ := NewSoftware().Key(context.Background(), "s")
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, f := range map[string]func() error{
		"no client":  func() error { _, err := IMDSCSR(k, "", "t", CUID{VMID: "v"}); return err },
		"no tenant":  func() error { _, err := IMDSCSR(k, "c", "", CUID{VMID: "v"}); return err },
		"no cuid":    func() error { _, err := IMDSCSR(k, "c", "t", CUID{}); return err },
		"ecdsa key":  func() error { _, err := IMDSCSR(ec, "c", "t", CUID{VMID: "v"}); return err },
		"non-ia5 dc": func() error { _, err := IMDSCSR(k, "c", "té", CUID{VMID: "v"}); return err },
	} {
		if err := f(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseIMDSCSRRejects(t *testing.T) {
	k, _ := NewSoftware().Key(context.Background(), "s")
	good, _ := imdsCSRDER(k, "c", "t", CUID{VMID: "v"})
	tampered := append([]byte(nil), good...)
	tampered[len(tampered)-5] ^= 0xff // inside the signature
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallDER, err := imdsCSRDER(small, "c", "t", CUID{VMID: "v"})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"rsa-1024":   base64.StdEncoding.EncodeToString(smallDER),
		"not base64": "%%%",
		"garbage":    base64.StdEncoding.EncodeToString([]byte("hello")),
		"tampered":   base64.StdEncoding.EncodeToString(tampered),
		"too large":  strings.Repeat("A", maxCSRLen+4),
		"pkcs1v15":   base64.StdEncoding.EncodeToString(resign(t, good, k)),
	}
	for name, in := range cases {
		if _, err := ParseIMDSCSR(in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// resign replaces the PSS signature with a PKCS#1 v1.5 one under the same algorithm id, so the
// parser must reject it on verification.
func resign(t *testing.T, der []byte, k Key) []byte {
	var cr certificationRequest
	if _, err := asn1.Unmarshal(der, &cr); err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(cr.Info.FullBytes)
	sig, err := k.Sign(rand.Reader, d[:], cryptoSHA256)
	if err != nil {
		t.Fatal(err)
	}
	cr.Signature = asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}
	out, err := asn1.Marshal(cr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rawRDNSET keeps each value's ASN.1 tag, which pkix.RDNSequence throws away.
type rawRDNSET []struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

func FuzzParseIMDSCSR(f *testing.F) {
	k, _ := NewSoftware().Key(context.Background(), "s")
	good, _ := IMDSCSR(k, "c", "t", CUID{VMID: "v", VMSSID: "s"})
	f.Add(good)
	f.Add("")
	f.Add("MIIB")
	f.Fuzz(func(t *testing.T, in string) {
		req, err := ParseIMDSCSR(in)
		if err == nil && (req.ClientID == "" || req.TenantID == "" || !req.CUID.Valid() || req.PublicKey == nil) {
			t.Fatalf("accepted an incomplete request: %+v", req)
		}
	})
}
