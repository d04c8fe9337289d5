package emulator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1" // #nosec G505 -- Service Fabric names its certificate by its SHA-1 thumbprint
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Service Fabric (reference/msal-dotnet-mtlspop.md §2.2): GET IDENTITY_ENDPOINT over HTTPS with
// resource=, the secret in the header "secret", and api-version 2020-05-01 (MSAL.NET) or
// 2019-07-01-preview (the other MSALs). The cluster decides the identity; the one selector is
// principalId (an object id). The server certificate is self-signed, and
// IDENTITY_SERVER_THUMBPRINT carries its SHA-1 thumbprint. Errors are nested, as Service Fabric
// sends them: {"error":{"code","message","correlationId"}}.
const serviceFabricPath = "/metadata/identity/oauth2/token"

var serviceFabricAPIVersions = []string{"2020-05-01", "2019-07-01-preview"}

// serviceFabricResponse is Service Fabric's answer: expires_on as a number.
type serviceFabricResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresOn   int64  `json:"expires_on"`
	TokenType   string `json:"token_type"`
	Resource    string `json:"resource"`
}

type serviceFabricTLS struct {
	cert       tls.Certificate
	thumbprint string // uppercase hex SHA-1 of the DER, as Service Fabric prints it
}

// newServiceFabricTLS makes the endpoint's self-signed certificate, for 127.0.0.1 and localhost.
// It is not issued by the emulator's server CA, so only the thumbprint pin (or a trust store
// holding this very certificate) accepts it.
func newServiceFabricTLS() (*serviceFabricTLS, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("emulator: generating the Service Fabric key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mtlspop emulator service fabric", Organization: []string{"mtlspop emulator"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("emulator: creating the Service Fabric certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum(der) // #nosec G401 -- a thumbprint, as Service Fabric defines it
	return &serviceFabricTLS{
		cert:       tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		thumbprint: strings.ToUpper(hex.EncodeToString(sum[:])),
	}, nil
}

func (s *serviceFabricTLS) serverConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{s.cert}}
}

// ServiceFabricThumbprint is the SHA-1 thumbprint of the Service Fabric endpoint's certificate
// (IDENTITY_SERVER_THUMBPRINT), or "" when the source is not Service Fabric.
func (e *Emulator) ServiceFabricThumbprint() string {
	if e.src.sf == nil {
		return ""
	}
	return e.src.sf.thumbprint
}

// ServiceFabricCertificatePEM is the PEM of the Service Fabric endpoint's self-signed
// certificate, for clients that trust it directly instead of pinning its thumbprint (msal-node:
// NODE_EXTRA_CA_CERTS), or nil when the source is not Service Fabric.
func (e *Emulator) ServiceFabricCertificatePEM() []byte {
	if e.src.sf == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.src.sf.cert.Leaf.Raw})
}

func (e *Emulator) serviceFabricToken(w http.ResponseWriter, r *http.Request, x *exchange) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeNestedError(w, r, x, http.StatusMethodNotAllowed, "MethodNotAllowed", "method not allowed; use GET")
		return
	}
	secret := r.Header.Get("secret")
	switch {
	case secret == "":
		writeNestedError(w, r, x, http.StatusUnauthorized, "SecretHeaderNotFound", "Secret is not found in the request headers.")
		return
	case !secretMatches(secret, e.src.secret):
		writeNestedError(w, r, x, http.StatusUnauthorized, "InvalidSecret", "The secret does not match IDENTITY_HEADER.")
		return
	}
	q := r.URL.Query()
	if desc := checkVersions(q, "api-version", serviceFabricAPIVersions...); desc != "" {
		writeNestedError(w, r, x, http.StatusBadRequest, "InvalidApiVersion", desc)
		return
	}
	if desc := refuseParams(q, "client_id", "clientid", "mi_res_id", "msi_res_id", "object_id"); desc != "" {
		writeNestedError(w, r, x, http.StatusBadRequest, "ArgumentInvalid", desc+"; Service Fabric takes principalId only")
		return
	}
	resource := singleResource(q)
	if resource == "" {
		writeNestedError(w, r, x, http.StatusBadRequest, "ArgumentNullOrEmpty", "Value cannot be null or empty. Parameter name: resource")
		return
	}
	id := e.cfg.SystemAssigned
	if v, ok := q["principalId"]; ok {
		found := false
		if len(v) == 1 && v[0] != "" {
			id, found = e.identityByObjectID(v[0])
		}
		if !found {
			writeNestedError(w, r, x, http.StatusBadRequest, "ManagedIdentityNotFound", "No managed identity with this principalId is assigned to the application.")
			return
		}
	}
	m, err := e.mint(grant{aud: resource, id: id})
	if err != nil {
		writeNestedError(w, r, x, http.StatusInternalServerError, "InternalServerError", "token signing failed")
		return
	}
	writeJSON(w, http.StatusOK, serviceFabricResponse{AccessToken: m.token, ExpiresOn: m.expires.Unix(), TokenType: "Bearer", Resource: resource})
}
