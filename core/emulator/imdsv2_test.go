package emulator_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/keys"
)

func TestPlatformMetadata(t *testing.T) {
	t.Parallel()
	cuid := keys.CUID{VMID: "vm-1", VMSSID: "vmss-1"}
	e := start(t, emulator.Config{CUID: cuid})
	tests := []struct {
		name     string
		query    url.Values
		clientID string
	}{
		{"system-assigned", v2Query(), emulator.DefaultSystemAssignedClientID},
		{"client_id", v2Query("client_id", emulator.DefaultUserAssignedClientID), emulator.DefaultUserAssignedClientID},
		{"mi_res_id", v2Query("mi_res_id", emulator.DefaultUserAssignedResourceID), emulator.DefaultUserAssignedClientID},
		{"object_id", v2Query("object_id", emulator.DefaultUserAssignedObjectID), emulator.DefaultUserAssignedClientID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := imdsGet(t, e, platformPath, tc.query)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if got := r.header.Get("Server"); got != emulator.IMDSServerHeader {
				t.Errorf("Server = %q", got)
			}
			var m struct {
				CUID                map[string]string `json:"cuId"`
				ClientID            string            `json:"clientId"`
				TenantID            string            `json:"tenantId"`
				AttestationEndpoint string            `json:"attestationEndpoint"`
			}
			if err := json.Unmarshal(r.body, &m); err != nil {
				t.Fatal(err)
			}
			if m.CUID["vmId"] != "vm-1" || m.CUID["vmssId"] != "vmss-1" || m.ClientID != tc.clientID ||
				m.TenantID != emulator.DefaultTenantID || !strings.HasPrefix(m.AttestationEndpoint, "https://127.0.0.1:") {
				t.Errorf("body = %s", r.body)
			}
		})
	}
}

func TestPlatformMetadataOmitsEmptyVMSSID(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	r := imdsGet(t, e, platformPath, v2Query())
	if !bytes.Contains(r.body, []byte(`"cuId":{"vmId":"`+emulator.DefaultVMID+`"}`)) {
		t.Errorf("body = %s", r.body)
	}
}

func TestIMDSv2Errors(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	noVersion := v2Query()
	noVersion.Del("cred-api-version")
	tests := []struct {
		name   string
		query  url.Values
		header map[string]string
		desc   string
	}{
		{"no metadata header", v2Query(), nil, "Required metadata header not specified"},
		{"v1 spelling msi_res_id", v2Query("msi_res_id", emulator.DefaultUserAssignedResourceID), metadata, "msi_res_id is not supported by this endpoint; use mi_res_id"},
		{"two selectors", v2Query("client_id", emulator.DefaultUserAssignedClientID, "mi_res_id", emulator.DefaultUserAssignedResourceID), metadata, "Only one of client_id, mi_res_id or object_id may be specified"},
		{"unknown identity", v2Query("client_id", "00000000-0000-0000-0000-000000000001"), metadata, "Identity not found"},
		{"missing cred-api-version", noVersion, metadata, "Required parameter cred-api-version not specified"},
		{"api-version instead", url.Values{"api-version": {"2.0"}}, metadata, "Required parameter cred-api-version not specified"},
		{"wrong cred-api-version", v2Query("cred-api-version", "1.0"), metadata, `cred-api-version "1.0" is not supported; use 2.0`},
	}
	for _, tc := range tests {
		t.Run("getplatformmetadata/"+tc.name, func(t *testing.T) {
			r := do(t, plainClient(), newRequest(t, http.MethodGet, e.IMDSURL()+platformPath+"?"+tc.query.Encode(), nil, tc.header))
			wantError(t, r, 400, "invalid_request", tc.desc)
		})
		t.Run("issuecredential/"+tc.name, func(t *testing.T) {
			h := map[string]string{"Content-Type": "application/json"}
			for k, v := range tc.header {
				h[k] = v
			}
			body := csrBody(t, newKey(t), emulator.DefaultSystemAssignedClientID, emulator.DefaultTenantID, keys.CUID{VMID: emulator.DefaultVMID})
			r := postIssueCredential(t, e, tc.query, body, h)
			wantError(t, r, 400, "invalid_request", tc.desc)
		})
	}
	t.Run("getplatformmetadata/POST", func(t *testing.T) {
		r := do(t, plainClient(), newRequest(t, http.MethodPost, e.IMDSURL()+platformPath+"?"+v2Query().Encode(), nil, metadata))
		wantError(t, r, http.StatusMethodNotAllowed, "invalid_request", "")
	})
	t.Run("issuecredential/GET", func(t *testing.T) {
		r := imdsGet(t, e, issueCredPath, v2Query())
		wantError(t, r, http.StatusMethodNotAllowed, "invalid_request", "")
	})
}

func TestIssueCredentialErrors(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	key := newKey(t)
	cuid := keys.CUID{VMID: emulator.DefaultVMID}
	sys, ten := emulator.DefaultSystemAssignedClientID, emulator.DefaultTenantID
	jsonHeader := map[string]string{"Metadata": "true", "Content-Type": "application/json"}
	tests := []struct {
		name   string
		query  url.Values
		body   []byte
		header map[string]string
		status int
		desc   string
	}{
		{"client id mismatch", v2Query(), csrBody(t, key, emulator.DefaultUserAssignedClientID, ten, cuid), nil, 400, "csr subject CN does not match the identity's client id"},
		{"client id of another identity", v2Query("client_id", emulator.DefaultUserAssignedClientID), csrBody(t, key, sys, ten, cuid), nil, 400, "csr subject CN does not match the identity's client id"},
		{"tenant mismatch", v2Query(), csrBody(t, key, sys, "11111111-1111-1111-1111-111111111111", cuid), nil, 400, "csr subject DC does not match the tenant id"},
		{"cuid mismatch", v2Query(), csrBody(t, key, sys, ten, keys.CUID{VMID: "another-vm"}), nil, 400, "csr cuId does not match this compute unit"},
		{"cuid with extra vmssId", v2Query(), csrBody(t, key, sys, ten, keys.CUID{VMID: emulator.DefaultVMID, VMSSID: "x"}), nil, 400, "csr cuId does not match this compute unit"},
		{"missing csr", v2Query(), []byte(`{"attestation_token":"x"}`), nil, 400, "csr is missing / empty in the issue credential request"},
		{"not JSON", v2Query(), []byte(`csr=abc`), nil, 400, "request body is not valid JSON"},
		{"wrong content type", v2Query(), csrBody(t, key, sys, ten, cuid), map[string]string{"Metadata": "true", "Content-Type": "application/x-www-form-urlencoded"}, 400, "Content-Type must be application/json"},
		{"bad base64", v2Query(), []byte(`{"csr":"***"}`), jsonHeader, 400, ""},
		{"oversize body", v2Query(), append(append([]byte(`{"csr":"`), bytes.Repeat([]byte("A"), 70<<10)...), `"}`...), jsonHeader, http.StatusRequestEntityTooLarge, "request body is too large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := postIssueCredential(t, e, tc.query, tc.body, tc.header)
			wantError(t, r, tc.status, "invalid_request", tc.desc)
			if tc.desc == "" && !strings.HasPrefix(r.json(t)["error_description"].(string), "invalid csr: ") {
				t.Errorf("error_description = %v", r.json(t)["error_description"])
			}
		})
	}
}

func TestIssueCredential(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{CertLifetime: 48 * time.Hour})
	for _, tc := range []struct {
		name, identityType, clientID string
		query                        url.Values
	}{
		{"system-assigned", "SystemAssigned", emulator.DefaultSystemAssignedClientID, v2Query()},
		{"user-assigned by mi_res_id", "UserAssigned", emulator.DefaultUserAssignedClientID, v2Query("mi_res_id", emulator.DefaultUserAssignedResourceID)},
		{"user-assigned by object_id", "UserAssigned", emulator.DefaultUserAssignedClientID, v2Query("object_id", emulator.DefaultUserAssignedObjectID)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now()
			cert, out := binding(t, e, tc.query)
			leaf := cert.Leaf
			if out.ClientID != tc.clientID || out.TenantID != emulator.DefaultTenantID || out.IdentityType != tc.identityType || out.Endpoint != e.MTLSAuthURL() {
				t.Errorf("response = %+v", out)
			}
			if leaf.Subject.CommonName != tc.clientID {
				t.Errorf("subject = %v", leaf.Subject)
			}
			if !strings.Contains(leaf.Issuer.CommonName, "managedidentitysnissuer") {
				t.Errorf("issuer = %v", leaf.Issuer)
			}
			if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
				t.Errorf("ExtKeyUsage = %v", leaf.ExtKeyUsage)
			}
			if d := before.Add(-time.Minute).Sub(leaf.NotBefore); d < -2*time.Second || d > 2*time.Second {
				t.Errorf("NotBefore = %v, want about a minute before %v", leaf.NotBefore, before)
			}
			if d := before.Add(48 * time.Hour).Sub(leaf.NotAfter); d < -2*time.Second || d > 2*time.Second {
				t.Errorf("NotAfter = %v, want 48h after %v", leaf.NotAfter, before)
			}
			if !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PrivateKey.(keys.Key).Public()) {
				t.Error("certificate key is not the CSR key")
			}
			if err := leaf.CheckSignatureFrom(e.BindingCACertificate()); err != nil {
				t.Errorf("not issued by the binding CA: %v", err)
			}
			if rec := e.LastRequest(emulator.EndpointIssueCredential); rec == nil || !bytes.Contains(rec.Body, []byte(`"csr"`)) {
				t.Errorf("recorded body = %v", rec)
			}
		})
	}
	// Two certificates never share a serial.
	a, _ := binding(t, e, v2Query())
	b, _ := binding(t, e, v2Query())
	if a.Leaf.SerialNumber.Cmp(b.Leaf.SerialNumber) == 0 {
		t.Error("serial numbers repeat")
	}
}

func TestDisableIMDSv2(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{DisableIMDSv2: true})
	if r := imdsGet(t, e, platformPath, v2Query()); r.status != http.StatusNotFound {
		t.Errorf("getplatformmetadata: %d", r.status)
	}
	body := csrBody(t, newKey(t), emulator.DefaultSystemAssignedClientID, emulator.DefaultTenantID, keys.CUID{VMID: emulator.DefaultVMID})
	if r := postIssueCredential(t, e, v2Query(), body, nil); r.status != http.StatusNotFound {
		t.Errorf("issuecredential: %d", r.status)
	}
	if r := imdsGet(t, e, v1TokenPath, v1Query()); r.status != http.StatusOK {
		t.Errorf("v1 token: %d %s", r.status, r.body)
	}
	if n := e.Requests(emulator.EndpointPlatformMetadata); n != 1 {
		t.Errorf("Requests(getplatformmetadata) = %d", n)
	}
}
