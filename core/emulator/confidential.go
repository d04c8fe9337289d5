package emulator

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mtlspop/mtlspop/core/pop"
	"github.com/mtlspop/mtlspop/core/token"
)

// Confidential clients (reference/msal-dotnet-mtlspop.md §3): application registrations, the
// classic token endpoint on the login host (client secret, client assertion JWT, federated
// credential), and application authentication on the mtlsauth host (the certificate at the TLS
// layer, or a jwt-pop assertion bound to the TLS certificate).

// The default application registration, fixed so documentation and tests can name it.
const (
	DefaultAppClientID = "5d0d6e9c-4d42-4b3b-9c0e-6a0f3f0c7a21"
	DefaultAppObjectID = "b8f1e5a2-7f3c-4e2e-8d5b-2a9c1f4e6d37"
	// TokenExchangeAudience is the audience of federated-credential assertions.
	TokenExchangeAudience = "api://AzureADTokenExchange"
)

// App is an application registration: what may authenticate as ClientID.
type App struct {
	ClientID string
	ObjectID string // the service principal: tokens' sub and oid
	// Certificates the app may authenticate with: by x5t#S256 in a client assertion, or as the
	// TLS client certificate on the mtlsauth host.
	Certificates []*x509.Certificate
	// Secrets the app may send as client_secret.
	Secrets []string
	// Federated lists the tokens the app accepts as client assertions (FIC): issued by Issuer to
	// Subject for TokenExchangeAudience.
	Federated []FederatedCredential
}

// FederatedCredential trusts tokens of one subject as the app's credential. The emulator can
// verify only tokens it issued itself, so the issuer is always this emulator: Issuer must be
// empty (this emulator's URL is not known before Start) or equal to Emulator.Issuer; Start
// refuses any other value rather than register a credential that could never match.
type FederatedCredential struct {
	Issuer  string
	Subject string
}

// AppCredentials is the default app's registration with its secrets, for tests and for the
// `app` member that `mtlspop emulator` prints.
type AppCredentials struct {
	TenantID    string
	ClientID    string
	Certificate *tls.Certificate // with its private key
	CertFile    string           // PEM files written next to the CA file (Env)
	KeyFile     string
	Secret      string
}

// EndpointAuthorityToken is the classic token endpoint on the login host (POST
// /{tenant}/oauth2/v2.0/token): confidential clients with a secret, a client assertion or a
// federated credential.
const EndpointAuthorityToken Endpoint = "authority_token"

// defaultApp holds the default registration's secrets.
type defaultApp struct {
	clientID string
	cert     *tls.Certificate
	secret   string
}

// setupApps checks the registrations, or makes the default one. It runs once the login URL is
// known, since federated credentials name this emulator as their issuer.
func (e *Emulator) setupApps() error {
	if e.cfg.Apps == nil {
		app, cert, secret, err := e.newDefaultApp()
		if err != nil {
			return fmt.Errorf("emulator: default app: %w", err)
		}
		e.cfg.Apps = []App{app}
		e.defaultCert = defaultApp{clientID: app.ClientID, cert: cert, secret: secret}
		return nil
	}
	seen := map[string]bool{}
	for _, a := range e.cfg.Apps {
		id := strings.ToLower(a.ClientID)
		if id == "" || a.ObjectID == "" {
			return errors.New("emulator: an app needs a ClientID and an ObjectID")
		}
		if _, mi := e.identityByClientID(a.ClientID); mi || seen[id] {
			return fmt.Errorf("emulator: client id %s is registered twice", a.ClientID)
		}
		seen[id] = true
		for _, f := range a.Federated {
			if f.Issuer != "" && f.Issuer != e.Issuer() {
				return fmt.Errorf("emulator: app %s: federated credential issuer %q is not this emulator (%s); "+
					"only tokens the emulator issues can be verified, so leave Issuer empty", a.ClientID, f.Issuer, e.Issuer())
			}
		}
	}
	return nil
}

// newDefaultApp makes the default registration: a fresh RSA-2048 certificate and secret,
// trusting every managed identity of this emulator, and the app itself, as federated
// credentials — so both two-leg FIC shapes (leg 1 a managed identity, or an app with its
// certificate) run on the default configuration.
func (e *Emulator) newDefaultApp() (App, *tls.Certificate, string, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return App{}, nil, "", err
	}
	serial, err := randomSerial()
	if err != nil {
		return App{}, nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "mtlspop emulator app"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return App{}, nil, "", err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return App{}, nil, "", err
	}
	secret := "emu~" + randomHex(24)
	app := App{ClientID: DefaultAppClientID, ObjectID: DefaultAppObjectID, Certificates: []*x509.Certificate{cert}, Secrets: []string{secret}}
	for _, id := range append([]Identity{e.cfg.SystemAssigned}, e.cfg.UserAssigned...) {
		app.Federated = append(app.Federated, FederatedCredential{Issuer: e.Issuer(), Subject: id.ObjectID})
	}
	app.Federated = append(app.Federated, FederatedCredential{Issuer: e.Issuer(), Subject: app.ObjectID})
	return app, &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, secret, nil
}

// App returns the default application's registration and secrets. It writes the certificate
// and key PEM files on first use, beside the CA file, removed by Close.
func (e *Emulator) App() AppCredentials {
	env := e.Env() // creates the directory
	a := AppCredentials{TenantID: e.cfg.TenantID, ClientID: e.defaultCert.clientID, Certificate: e.defaultCert.cert, Secret: e.defaultCert.secret}
	if a.Certificate == nil {
		return a
	}
	dir := filepath.Dir(env["SSL_CERT_FILE"])
	a.CertFile, a.KeyFile = filepath.Join(dir, "app-cert.pem"), filepath.Join(dir, "app-key.pem")
	keyDER, err := x509.MarshalPKCS8PrivateKey(a.Certificate.PrivateKey)
	if err == nil {
		err = errors.Join(
			os.WriteFile(a.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Certificate.Certificate[0]}), 0o600),
			os.WriteFile(a.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	}
	if err != nil {
		e.log.Error("writing the default app's certificate files", "error", err.Error())
		a.CertFile, a.KeyFile = "", ""
	}
	return a
}

// appByClientID finds a registration.
func (e *Emulator) appByClientID(clientID string) (App, bool) {
	for _, a := range e.cfg.Apps {
		if strings.EqualFold(a.ClientID, clientID) {
			return a, true
		}
	}
	return App{}, false
}

// appCertificate reports whether cert is registered to any app (the mtlsauth host accepts it at
// the TLS layer; which app it authenticates is decided per request).
func (e *Emulator) appCertificate(cert *x509.Certificate) bool {
	now := time.Now()
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return false
	}
	for _, a := range e.cfg.Apps {
		if slices.ContainsFunc(a.Certificates, cert.Equal) {
			return true
		}
	}
	return false
}

// authFailure is a refused client authentication: an OAuth error and an AADSTS number.
type authFailure struct {
	status int
	code   string
	desc   string
	aadsts int
}

func invalidClient(desc string, aadsts int) *authFailure {
	return &authFailure{http.StatusUnauthorized, "invalid_client", desc, aadsts}
}

// authenticateApp checks how a request authenticates as app. tlsCert is the TLS client
// certificate on the mtlsauth host, nil on the login host.
func (e *Emulator) authenticateApp(ctx context.Context, app App, form url.Values, tlsCert *x509.Certificate) *authFailure {
	assertion, assertionType, secret := form.Get("client_assertion"), form.Get("client_assertion_type"), form.Get("client_secret")
	switch {
	case secret != "":
		if tlsCert != nil {
			return invalidClient("a client secret cannot be used on the mTLS endpoint", 700025)
		}
		if slices.ContainsFunc(app.Secrets, func(s string) bool { return secretMatches(secret, s) }) {
			return nil
		}
		return invalidClient("invalid client secret provided", 7000215)
	case assertionType == "urn:ietf:params:oauth:client-assertion-type:jwt-pop":
		if tlsCert == nil {
			return &authFailure{http.StatusBadRequest, "invalid_request", "a jwt-pop client assertion needs the mTLS endpoint", 900144}
		}
		return e.federated(ctx, app, assertion, tlsCert)
	case assertionType == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
		if assertion == "" {
			return &authFailure{http.StatusBadRequest, "invalid_request", "client_assertion is empty", 900144}
		}
		if hasCertHeader(assertion) {
			return e.appAssertion(app, assertion)
		}
		return e.federated(ctx, app, assertion, nil)
	case assertionType != "":
		return &authFailure{http.StatusBadRequest, "invalid_request", "client_assertion_type " + short(assertionType) + " is not supported", 50027}
	case tlsCert != nil:
		if slices.ContainsFunc(app.Certificates, tlsCert.Equal) {
			return nil // tls_client_auth: the certificate is the credential
		}
		return invalidClient("the client certificate is not registered for application "+short(app.ClientID), 700027)
	}
	return invalidClient("the request has no client credential (client_secret, client_assertion or a client certificate)", 7000218)
}

// isBound reports whether a token has a cnf claim (read unverified, only to pick the error).
func isBound(assertion string) bool {
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(assertion, claims); err != nil {
		return false
	}
	_, ok := claims["cnf"]
	return ok
}

func hasCertHeader(assertion string) bool {
	t, _, err := jwt.NewParser().ParseUnverified(assertion, jwt.MapClaims{})
	if err != nil {
		return false
	}
	_, a := t.Header["x5t#S256"]
	_, b := t.Header["x5t"]
	return a || b
}

// appAssertion verifies a client assertion the app signed with a registered certificate: the
// certificate named by x5t#S256, aud = the token endpoint, iss = sub = the client id, not
// expired.
func (e *Emulator) appAssertion(app App, assertion string) *authFailure {
	var cert *x509.Certificate
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"PS256", "RS256", "ES256"}), jwt.WithExpirationRequired(),
		jwt.WithLeeway(5*time.Minute), jwt.WithIssuer(app.ClientID), jwt.WithSubject(app.ClientID),
		jwt.WithAudience(e.AuthorityURL()+"/oauth2/v2.0/token"))
	_, err := parser.Parse(assertion, func(t *jwt.Token) (any, error) {
		x5t, _ := t.Header["x5t#S256"].(string)
		for _, c := range app.Certificates {
			if token.Thumbprint(c) == x5t {
				cert = c
				return publicKey(c)
			}
		}
		return nil, errors.New("no registered certificate has this x5t#S256")
	})
	if cert == nil {
		return invalidClient("the client assertion names a certificate that is not registered for the application", 700027)
	}
	if err != nil {
		return invalidClient("the client assertion is not valid: "+short(jwtReason(err)), 700027)
	}
	if time.Now().After(cert.NotAfter) {
		return invalidClient("the certificate used to sign the client assertion has expired", 700027)
	}
	return nil
}

func publicKey(c *x509.Certificate) (crypto.PublicKey, error) {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
		return k, nil
	}
	return nil, errors.New("unsupported certificate key")
}

// jwtReason shortens a golang-jwt error to its cause, without the token.
func jwtReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidSubject):
		return "iss and sub must be the client id"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	}
	return "malformed"
}

// federated verifies a federated credential: a token this emulator issued for
// TokenExchangeAudience to a subject the app trusts. With tlsCert (jwt-pop) the token must be
// bound to that certificate.
func (e *Emulator) federated(ctx context.Context, app App, assertion string, tlsCert *x509.Certificate) *authFailure {
	scheme := "Bearer "
	if tlsCert != nil {
		scheme = "mtls_pop "
	} else if isBound(assertion) {
		// Said before verifying, so the caller learns what to do instead of "no certificate".
		return &authFailure{http.StatusBadRequest, "invalid_request",
			"the assertion is bound to a certificate: send it as a jwt-pop assertion over mTLS with that certificate", 900144}
	}
	v := pop.Verifier{Keys: e.keySet, Issuer: e.Issuer(), Audiences: []string{TokenExchangeAudience}, AllowUnbound: tlsCert == nil}
	claims, err := v.Verify(ctx, scheme+assertion, tlsCert)
	if err != nil {
		msg := "the federated credential is not valid"
		if te, ok := err.(*token.Error); ok {
			msg += ": " + te.Message
		}
		return invalidClient(msg, 700211)
	}
	for _, f := range app.Federated {
		issuer := f.Issuer
		if issuer == "" {
			issuer = e.Issuer()
		}
		if issuer == claims.Issuer && f.Subject == claims.Subject {
			return nil
		}
	}
	return invalidClient("no federated identity credential of application "+short(app.ClientID)+" matches issuer and subject "+short(claims.Subject), 70021)
}
