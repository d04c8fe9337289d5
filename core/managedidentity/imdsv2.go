package managedidentity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mtlspop/mtlspop/core/internal/wire"
	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/mtls"
	"github.com/mtlspop/mtlspop/core/token"
)

// IMDSv2: mTLS proof-of-possession tokens (reference/msal-dotnet-mtlspop.md §1).
//
//  1. GET  getplatformmetadata → client id, tenant, cuId (the answer must come from IMDS)
//  2. a binding key from the key provider, and a CSR for it
//  3. POST issuecredential     → a certificate for that key, and the mTLS token endpoint
//  4. POST <endpoint>/<tenant>/oauth2/v2.0/token over mTLS with token_type=mtls_pop
//
// Steps 1–3 run only when no binding certificate is cached: while one is, a token for any
// resource costs only step 4 (MSAL.NET calls step 1 every time).
const (
	imdsServerMarker = "IMDS"
	stsTokenPath     = "/oauth2/v2.0/token"
	sourceIMDSv2     = "imdsv2"
)

// acquirePoP gets an mtls_pop token. If the token endpoint refuses the binding certificate
// (invalid_client, or a TLS refusal), the certificate is evicted, a new one minted, and the
// request retried once.
func (c *Client) acquirePoP(ctx context.Context, resource string, o acquireConfig) (token.Result, error) {
	src, ok := c.source.(*imds)
	if !ok {
		return token.Result{}, &token.Error{Code: token.CodeMtlsPopNotSupportedForEnv, Source: c.sourceName,
			Message: "mTLS PoP tokens come from IMDSv2; this host's managed identity source is " + c.sourceName}
	}
	mint := func(ctx context.Context, replacing bool) (*binding, error) { return c.mint(ctx, src, replacing) }
	for attempt := 0; ; attempt++ {
		b, err := c.bindings.get(ctx, mint)
		if err != nil {
			return token.Result{}, err
		}
		r, err := b.part.Get(ctx, resource, o.force || o.claims != "", func(ctx context.Context, refresh bool) (token.Result, error) {
			return c.tokenLeg(ctx, b, resource, claimsOf(o, refresh))
		})
		if err == nil {
			return r, nil
		}
		if !remintable(err) {
			return token.Result{}, err
		}
		if attempt > 0 {
			if e, ok := err.(*token.Error); ok {
				// A copy: the error is shared with every caller that joined the fetch.
				again := *e
				again.Message += " (again, with a newly minted binding certificate)"
				err = &again
			}
			return token.Result{}, err
		}
		c.log(ctx, "token endpoint refused the binding certificate; minting a new one",
			slog.String("x5t#S256", b.thumbprint), slog.String("code", string(token.CodeOf(err))))
		c.bindings.evict(b)
	}
}

// remintable: failures a fresh binding certificate may cure. A body cut short after the server
// answered is not one: the server had accepted the certificate.
func remintable(err error) bool {
	return token.CodeOf(err) == token.CodeInvalidClient || (mtls.IsHandshakeRefusal(err) && !wire.IsBodyReadError(err))
}

func (c *Client) imdsV2Query(s *imds, path string) string {
	q := url.Values{wire.CredAPIVersionParam: {wire.CredAPIVersion}}
	if name, value := c.id.selector(wire.IMDSv2ResourceIDParam); name != "" {
		q.Set(name, value)
	}
	return s.base + path + "?" + q.Encode()
}

// slot names the binding key of this identity in the key provider: attested and non-attested
// keys are kept apart (MSAL.NET's "#att=1" / "#att=0" aliases).
func (c *Client) slot() string {
	if c.cfg.attest {
		return c.idKey + "#att=1"
	}
	return c.idKey + "#att=0"
}

// mint obtains a binding certificate (steps 1–3). A provider whose keys outlive the process (a
// TPM) may hold a still-valid certificate for its key from an earlier run; that one is reused
// unless it is the certificate being replaced.
func (c *Client) mint(ctx context.Context, s *imds, replacing bool) (*binding, error) {
	slot := c.slot()
	if !replacing {
		if b := c.storedBinding(ctx, slot); b != nil {
			return b, nil
		}
	}
	correlationID := wire.NewGUID()
	meta, err := c.platformMetadata(ctx, s, correlationID)
	if err != nil {
		return nil, wire.Annotate(err, sourceIMDSv2, correlationID)
	}
	if replacing {
		if err := c.cfg.keys.Rotate(ctx, slot); err != nil {
			return nil, err
		}
	}
	key, err := c.cfg.keys.Key(ctx, slot)
	if err != nil {
		return nil, err
	}
	var attestation string
	if c.cfg.attest {
		if attestation, err = c.attestations.token(ctx, meta.AttestationEndpoint, key, c.cfg.now()); err != nil {
			return nil, wire.Annotate(err, sourceIMDSv2, correlationID)
		}
	}
	csr, err := keys.IMDSCSR(key, meta.ClientID, meta.TenantID, meta.CUID)
	if err != nil {
		if token.CodeOf(err) != token.CodeInvalidArgument {
			return nil, wire.Annotate(err, sourceIMDSv2, correlationID) // the key could not sign
		}
		return nil, &token.Error{Code: token.CodeManagedIdentityRequestFailed, Source: sourceIMDSv2,
			CorrelationID: correlationID, Message: "getplatformmetadata returned values a CSR cannot carry", Err: err}
	}
	cred, err := c.issueCredential(ctx, s, wire.IssueCredentialRequest{CSR: csr, AttestationToken: attestation}, correlationID)
	if err != nil {
		return nil, wire.Annotate(err, sourceIMDSv2, correlationID)
	}
	b, err := c.bind(cred, key)
	if err != nil {
		return nil, wire.Annotate(err, sourceIMDSv2, correlationID)
	}
	if store, ok := c.cfg.keys.(keys.CertificateStore); ok {
		rec := keys.CertificateRecord{DER: b.cert.Leaf.Raw, ClientID: cred.ClientID, TenantID: cred.TenantID, Endpoint: cred.MTLSAuthenticationEndpoint}
		if err := store.StoreCertificate(ctx, slot, rec); err != nil {
			c.log(ctx, "could not persist the binding certificate; the next process will mint again", slog.String("error", err.Error()))
		}
	}
	c.log(ctx, "minted binding certificate", slog.String("x5t#S256", b.thumbprint),
		slog.Time("not_after", b.cert.Leaf.NotAfter), slog.String("key", string(key.Strength())), slog.Bool("attested", c.cfg.attest))
	return b, nil
}

// storedBinding returns the provider's persisted certificate for the slot if it still certifies
// the slot's key and is inside its reuse window; nil otherwise (then a new one is minted).
func (c *Client) storedBinding(ctx context.Context, slot string) *binding {
	store, ok := c.cfg.keys.(keys.CertificateStore)
	if !ok {
		return nil
	}
	rec, ok, err := store.LoadCertificate(ctx, slot)
	if err != nil || !ok {
		return nil
	}
	key, err := c.cfg.keys.Key(ctx, slot)
	if err != nil {
		return nil
	}
	b, err := c.bind(wire.IssuedCredential{ClientID: rec.ClientID, TenantID: rec.TenantID, IdentityType: "persisted",
		Certificate: base64.StdEncoding.EncodeToString(rec.DER), MTLSAuthenticationEndpoint: rec.Endpoint}, key)
	if err != nil || c.cfg.now().UnixNano() >= b.renewAt {
		return nil
	}
	c.log(ctx, "reusing the persisted binding certificate", slog.String("x5t#S256", b.thumbprint))
	return b
}

// bind pairs an issued certificate with its key and gives it its cache partition.
func (c *Client) bind(cred wire.IssuedCredential, key keys.Key) (*binding, error) {
	b, err := newBinding(cred, key, c.cfg.now())
	if err != nil {
		return nil, err
	}
	b.partition = c.partition(token.TypeMtlsPoP, b.thumbprint)
	b.partition.Attested = c.cfg.attest
	b.part = c.cache.Partition(b.partition)
	return b, nil
}

func (c *Client) platformMetadata(ctx context.Context, s *imds, correlationID string) (wire.PlatformMetadata, error) {
	endpoint := c.imdsV2Query(s, wire.PlatformMetadataPath)
	resp, err := c.wire.Do(ctx, c.policy(wire.IMDSProbe), func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Metadata", "true")
		req.Header.Set("Accept", "application/json")
		clientHeaders(req.Header, correlationID)
		return req, nil
	})
	if err != nil {
		return wire.PlatformMetadata{}, miTransportError(err, sourceIMDSv2, correlationID)
	}
	switch {
	case resp.Status == http.StatusNotFound:
		return wire.PlatformMetadata{}, &token.Error{Code: token.CodeMtlsPopNotSupportedInIMDSv1, Status: resp.Status,
			Message: "this host's IMDS has no getplatformmetadata endpoint (IMDS v1 only): mTLS PoP is not available"}
	case resp.Status != http.StatusOK:
		return wire.PlatformMetadata{}, wire.StatusError(token.CodeManagedIdentityRequestFailed, sourceIMDSv2, "getplatformmetadata", resp)
	case !strings.Contains(resp.Header.Get("Server"), imdsServerMarker):
		// Something other than IMDS answered (a proxy, a captive portal): do not send it a CSR.
		return wire.PlatformMetadata{}, &token.Error{Code: token.CodeManagedIdentityRequestFailed, Status: resp.Status,
			Message: "getplatformmetadata answer did not come from IMDS (no \"IMDS\" in its Server header)"}
	}
	var m wire.PlatformMetadata
	if err := json.Unmarshal(resp.Body, &m); err != nil {
		return wire.PlatformMetadata{}, token.Errorf(token.CodeManagedIdentityRequestFailed, "getplatformmetadata answer is not JSON")
	}
	if !m.CUID.Valid() || m.ClientID == "" || m.TenantID == "" || m.AttestationEndpoint == "" {
		return wire.PlatformMetadata{}, token.Errorf(token.CodeManagedIdentityRequestFailed,
			"getplatformmetadata answer is missing cuId, clientId, tenantId or attestationEndpoint")
	}
	return m, nil
}

func (c *Client) issueCredential(ctx context.Context, s *imds, r wire.IssueCredentialRequest, correlationID string) (wire.IssuedCredential, error) {
	endpoint := c.imdsV2Query(s, wire.IssueCredentialPath)
	body, err := json.Marshal(r)
	if err != nil {
		return wire.IssuedCredential{}, token.Wrap(token.CodeInternal, err, "encoding issuecredential request")
	}
	resp, err := c.wire.Do(ctx, c.policy(wire.IMDS), func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Metadata", "true")
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		req.Header.Set("Accept", "application/json")
		clientHeaders(req.Header, correlationID)
		return req, nil
	})
	if err != nil {
		return wire.IssuedCredential{}, miTransportError(err, sourceIMDSv2, correlationID)
	}
	if resp.Status != http.StatusOK {
		return wire.IssuedCredential{}, wire.StatusError(token.CodeManagedIdentityRequestFailed, sourceIMDSv2, "issuecredential", resp)
	}
	var cred wire.IssuedCredential
	if err := json.Unmarshal(resp.Body, &cred); err != nil {
		return wire.IssuedCredential{}, token.Errorf(token.CodeManagedIdentityRequestFailed, "issuecredential answer is not JSON")
	}
	if cred.ClientID == "" || cred.TenantID == "" || cred.Certificate == "" || cred.IdentityType == "" || cred.MTLSAuthenticationEndpoint == "" {
		return wire.IssuedCredential{}, token.Errorf(token.CodeManagedIdentityRequestFailed,
			"issuecredential answer is malformed: client_id, tenant_id, certificate, identity_type and mtls_authentication_endpoint are all required")
	}
	return cred, nil
}

// newBinding checks the issued certificate (it must decode, be valid now, and certify our key)
// and the token endpoint, and pairs the certificate with the key.
func newBinding(cred wire.IssuedCredential, key keys.Key, now time.Time) (*binding, error) {
	der, err := base64.StdEncoding.DecodeString(cred.Certificate)
	if err != nil {
		return nil, token.Errorf(token.CodeInvalidCertificate, "issued certificate is not base64")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, token.Wrap(token.CodeInvalidCertificate, err, "issued certificate does not parse")
	}
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, token.Errorf(token.CodeInvalidCertificate, "issued certificate is for another key")
	}
	if !now.Before(cert.NotAfter) || now.Add(5*time.Minute).Before(cert.NotBefore) {
		return nil, token.Errorf(token.CodeInvalidCertificate, "issued certificate is not valid now (valid %s to %s)",
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	ep, err := url.Parse(cred.MTLSAuthenticationEndpoint)
	if err != nil || ep.Scheme != "https" || ep.Host == "" {
		return nil, token.Errorf(token.CodeManagedIdentityRequestFailed, "mtls_authentication_endpoint is not an https URL")
	}
	tenant := strings.Trim(cred.TenantID, "/")
	if strings.ContainsAny(tenant, "/?#") {
		return nil, token.Errorf(token.CodeManagedIdentityRequestFailed, "tenant_id is not a tenant")
	}
	tc := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}
	if r, ok := key.(signatureRestricted); ok {
		// A TPM that cannot sign RSA-PSS with the salt TLS 1.3 requires offers only what it can;
		// the mTLS clients then stay on TLS 1.2 (mtls.ClientConfig).
		tc.SupportedSignatureAlgorithms = r.SupportedSignatureAlgorithms()
	}
	return &binding{
		cert:       tc,
		thumbprint: token.ThumbprintDER(der),
		clientID:   cred.ClientID,
		tenantID:   tenant,
		tokenURL:   strings.TrimRight(cred.MTLSAuthenticationEndpoint, "/") + "/" + url.PathEscape(tenant) + stsTokenPath,
		renewAt:    renewPoint(cert.NotBefore, cert.NotAfter).UnixNano(),
	}, nil
}

// signatureRestricted is implemented by keys that sign only some TLS signature schemes.
type signatureRestricted interface {
	SupportedSignatureAlgorithms() []tls.SignatureScheme
}

// tokenLeg is step 4: the token request over mTLS with the binding certificate.
func (c *Client) tokenLeg(ctx context.Context, b *binding, resource, claims string) (token.Result, error) {
	form := url.Values{
		"grant_type": {"client_credentials"},
		"client_id":  {b.clientID},
		"scope":      {strings.TrimRight(resource, "/") + "/.default"},
		"token_type": {token.TypeMtlsPoP},
	}
	if claims != "" {
		form.Set("claims", claims)
	}
	w := &wire.Client{HTTP: c.pool.Client(b.cert), Sleep: c.cfg.retryWait, Logger: c.cfg.logger, Now: c.cfg.now}
	t, err := w.PostToken(ctx, c.policy(wire.STS), b.tokenURL, form, true, sourceIMDSv2)
	if err != nil {
		return token.Result{}, err
	}
	return t.Result().Bind(b.cert), nil
}
