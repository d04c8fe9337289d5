package emulator

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mtlspop/mtlspop/core/internal/wire"
)

// The mTLS token endpoint (reference/msal-dotnet-mtlspop.md §1.7, §4.1): the client authenticates
// with its binding certificate at the TLS layer and asks for a token with client_credentials.
const (
	stsTokenPattern = "/{tenant}/oauth2/v2.0/token"
	defaultScope    = "/.default"
)

func (e *Emulator) stsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(stsTokenPattern, e.endpoint(EndpointToken, e.stsToken))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write(e.stsErrorBody(r, "not_found", "no such endpoint on the mTLS token host", 90000+http.StatusNotFound))
	})
	return mux
}

// stsError is ESTS's OAuth error body.
type stsError struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	ErrorCodes    []int  `json:"error_codes"`
	Timestamp     string `json:"timestamp"`
	TraceID       string `json:"trace_id"`
	CorrelationID string `json:"correlation_id"`
}

// stsErrorBody builds an ESTS error body. The description starts with AADSTS<code> and ends with
// the trace id, correlation id and timestamp, as ESTS writes it; correlation_id echoes the
// caller's client-request-id.
func (e *Emulator) stsErrorBody(r *http.Request, code, desc string, aadsts int) []byte {
	cid := correlationID(r)
	if cid == "" {
		cid = wire.NewGUID()
	}
	trace := wire.NewGUID()
	ts := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	return mustJSON(stsError{
		Error: code,
		Description: fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
			aadsts, desc, trace, cid, ts),
		ErrorCodes:    []int{aadsts},
		Timestamp:     ts,
		TraceID:       trace,
		CorrelationID: cid,
	})
}

func (e *Emulator) stsFail(w http.ResponseWriter, r *http.Request, x *exchange, status int, code, desc string, aadsts int) {
	x.handlerNote = code + ": " + desc
	b := e.stsErrorBody(r, code, desc, aadsts)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer error="`+code+`"`)
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

type stsTokenResponse struct {
	TokenType    string `json:"token_type"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	RefreshIn    *int64 `json:"refresh_in,omitempty"`
}

// short quotes untrusted text for an error description, cut to a sane length.
func short(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strconv.Quote(s)
}

// tokenRequest is a parsed client_credentials request.
type tokenRequest struct {
	clientID string
	resource string // the scope without "/.default": the token's aud
	bound    bool   // token_type=mtls_pop
}

// parseTokenRequest checks what every token endpoint checks: POST, the tenant, a form body,
// client_credentials, a client id, one scope ending in /.default, JSON claims, the token type.
func (e *Emulator) parseTokenRequest(w http.ResponseWriter, r *http.Request, x *exchange) (tokenRequest, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		e.stsFail(w, r, x, http.StatusMethodNotAllowed, "invalid_request", "the token endpoint only accepts POST requests", 900561)
		return tokenRequest{}, false
	}
	if tenant := r.PathValue("tenant"); !strings.EqualFold(tenant, e.cfg.TenantID) {
		e.stsFail(w, r, x, http.StatusBadRequest, "invalid_request", "tenant "+short(tenant)+" not found", 90002)
		return tokenRequest{}, false
	}
	if !x.isForm {
		e.stsFail(w, r, x, http.StatusBadRequest, "invalid_request",
			"the request body must be application/x-www-form-urlencoded and contain 'grant_type'", 900144)
		return tokenRequest{}, false
	}
	if x.tooLarge || x.formErr != nil {
		e.stsFail(w, r, x, http.StatusBadRequest, "invalid_request", "the request body is malformed or too large", 900144)
		return tokenRequest{}, false
	}
	form := x.form
	for _, p := range []string{"grant_type", "client_id", "scope"} {
		if form.Get(p) == "" {
			e.stsFail(w, r, x, http.StatusBadRequest, "invalid_request",
				"the request body must contain the following parameter: '"+p+"'", 900144)
			return tokenRequest{}, false
		}
	}
	if gt := form.Get("grant_type"); gt != "client_credentials" {
		e.stsFail(w, r, x, http.StatusBadRequest, "unsupported_grant_type",
			"grant type "+short(gt)+" is not supported; this endpoint issues client_credentials tokens", 70003)
		return tokenRequest{}, false
	}
	scope := form.Get("scope")
	resource, ok := strings.CutSuffix(scope, defaultScope)
	if !ok || resource == "" || strings.ContainsAny(scope, " \t") {
		e.stsFail(w, r, x, http.StatusBadRequest, "invalid_scope",
			"the provided value for scope "+short(scope)+" is not valid; client credential flows must have a single scope value with /.default suffixed to the resource identifier", 1002012)
		return tokenRequest{}, false
	}
	if _, has := form["claims"]; has {
		var obj map[string]any
		if err := json.Unmarshal([]byte(form.Get("claims")), &obj); err != nil || obj == nil {
			e.stsFail(w, r, x, http.StatusBadRequest, "invalid_request",
				"the provided value for the input parameter 'claims' is not valid JSON", 70011)
			return tokenRequest{}, false
		}
	}
	req := tokenRequest{clientID: form.Get("client_id"), resource: resource}
	switch tt := form.Get("token_type"); {
	case tt == "" || strings.EqualFold(tt, "bearer"):
	case tt == "mtls_pop":
		req.bound = true
	default:
		e.stsFail(w, r, x, http.StatusBadRequest, "invalid_request",
			"token_type "+short(tt)+" is not supported on this endpoint", 70011)
		return tokenRequest{}, false
	}
	return req, true
}

// stsToken is the mtlsauth token endpoint: a managed identity's binding certificate, or an app
// (its registered certificate, or a jwt-pop assertion bound to the TLS certificate).
func (e *Emulator) stsToken(w http.ResponseWriter, r *http.Request, x *exchange) {
	req, ok := e.parseTokenRequest(w, r, x)
	if !ok {
		return
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		e.stsFail(w, r, x, http.StatusUnauthorized, "invalid_client", "no client certificate was presented", 700027)
		return
	}
	cert := r.TLS.PeerCertificates[0]
	if app, isApp := e.appByClientID(req.clientID); isApp {
		if f := e.authenticateApp(r.Context(), app, x.form, cert); f != nil {
			e.stsFail(w, r, x, f.status, f.code, f.desc, f.aadsts)
			return
		}
		e.issue(w, r, x, req, Identity{ClientID: app.ClientID, ObjectID: app.ObjectID}, cert)
		return
	}
	id, known := e.identityByClientID(req.clientID)
	if !known {
		e.stsFail(w, r, x, http.StatusUnauthorized, "invalid_client",
			"application with identifier "+short(req.clientID)+" was not found in the directory", 700016)
		return
	}
	// The TLS layer admitted the certificate either as a binding certificate or as one an app
	// registered; only the first may speak for a managed identity. An app certificate is
	// self-made and could carry the identity's client id as its CN.
	if err := e.ca.verifyBinding(r.TLS.PeerCertificates); err != nil {
		desc := "the client certificate is not a binding certificate issued by " + BindingIssuerCommonName
		if errors.Is(err, errRevoked) {
			desc = "the client certificate has been revoked"
		}
		e.stsFail(w, r, x, http.StatusUnauthorized, "invalid_client", desc, 700027)
		return
	}
	if !strings.EqualFold(cert.Subject.CommonName, id.ClientID) {
		e.stsFail(w, r, x, http.StatusUnauthorized, "invalid_client",
			"the client certificate was not issued to client "+short(req.clientID), 700027)
		return
	}
	e.issue(w, r, x, req, id, cert)
}

// loginToken is the classic token endpoint on the login host: an app authenticating with a
// secret, a client assertion JWT or a federated credential. Tokens here are Bearer tokens.
func (e *Emulator) loginToken(w http.ResponseWriter, r *http.Request, x *exchange) {
	req, ok := e.parseTokenRequest(w, r, x)
	if !ok {
		return
	}
	if req.bound {
		e.stsFail(w, r, x, http.StatusBadRequest, "invalid_request",
			"mtls_pop tokens are issued on the mTLS endpoint ("+e.MTLSAuthURL()+"), where the certificate can be bound", 70011)
		return
	}
	app, isApp := e.appByClientID(req.clientID)
	if !isApp {
		e.stsFail(w, r, x, http.StatusUnauthorized, "invalid_client",
			"application with identifier "+short(req.clientID)+" was not found in the directory", 700016)
		return
	}
	if f := e.authenticateApp(r.Context(), app, x.form, nil); f != nil {
		e.stsFail(w, r, x, f.status, f.code, f.desc, f.aadsts)
		return
	}
	e.issue(w, r, x, req, Identity{ClientID: app.ClientID, ObjectID: app.ObjectID}, nil)
}

// issue mints the token and writes ESTS's answer. cert is the TLS client certificate (nil on
// the login host); a PoP token is bound to it.
func (e *Emulator) issue(w http.ResponseWriter, r *http.Request, x *exchange, req tokenRequest, id Identity, cert *x509.Certificate) {
	g := grant{aud: req.resource, id: id}
	tokenType := "Bearer"
	if req.bound {
		g.bound, tokenType = cert, "mtls_pop"
	}
	m, err := e.mint(g)
	if err != nil {
		e.stsFail(w, r, x, http.StatusInternalServerError, "server_error", "token signing failed", 90000+http.StatusInternalServerError)
		return
	}
	resp := stsTokenResponse{
		TokenType:    tokenType,
		AccessToken:  m.token,
		ExpiresIn:    expiresIn(m.expires),
		ExtExpiresIn: expiresIn(m.expires),
	}
	if ri, ok := e.refreshIn(); ok {
		resp.RefreshIn = &ri
	}
	x.handlerNote = "issued " + tokenType
	e.log.Debug("token issued", slog.String("client_id", id.ClientID), slog.String("token_type", tokenType),
		slog.String("aud", req.resource))
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}
