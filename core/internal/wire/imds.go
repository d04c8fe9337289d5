package wire

import (
	"crypto/rand"
	"fmt"

	"github.com/mtlspop/mtlspop/core/keys"
)

// The IMDS wire formats, written down once for the client (core/managedidentity) and the
// emulator that stands in for IMDS (reference/msal-dotnet-mtlspop.md §1.2, §1.6, §2.2).
const (
	// IMDS v1: Bearer tokens.
	IMDSTokenPath         = "/metadata/identity/oauth2/token"
	IMDSAPIVersion        = "2018-02-01"
	IMDSv1ResourceIDParam = "msi_res_id" // v1 spelling of the resource-id selector

	// IMDSv2: binding certificates for mTLS PoP.
	PlatformMetadataPath  = "/metadata/identity/getplatformmetadata"
	IssueCredentialPath   = "/metadata/identity/issuecredential"
	CredAPIVersionParam   = "cred-api-version" // not api-version
	CredAPIVersion        = "2.0"
	IMDSv2ResourceIDParam = "mi_res_id" // v2 (and App Service) spelling
)

// PlatformMetadata is the getplatformmetadata answer.
type PlatformMetadata struct {
	CUID                keys.CUID `json:"cuId"`
	ClientID            string    `json:"clientId"`
	TenantID            string    `json:"tenantId"`
	AttestationEndpoint string    `json:"attestationEndpoint"`
}

// IssueCredentialRequest is the issuecredential body; attestation_token is left out when empty.
type IssueCredentialRequest struct {
	CSR              string `json:"csr"`
	AttestationToken string `json:"attestation_token,omitempty"`
}

// IssuedCredential is the issuecredential answer. All five members are required.
type IssuedCredential struct {
	ClientID                   string `json:"client_id"`
	TenantID                   string `json:"tenant_id"`
	Certificate                string `json:"certificate"` // standard base64 DER
	IdentityType               string `json:"identity_type"`
	MTLSAuthenticationEndpoint string `json:"mtls_authentication_endpoint"`
}

// NewGUID returns a random (version 4) GUID, the form of correlation ids on the wire.
func NewGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
