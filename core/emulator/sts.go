package emulator

import (
	"encoding/json"
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

func (e *Emulator) stsToken(w http.ResponseWriter, r *http.Request, x *exchange) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		e.stsFail(w, r, x, http.StatusMethodNotAllowed, "invalid_request", "the token endpoint only accepts POST requests", 900561)
		return
	}
	if tenant := r.PathValue("tenant"); !strings.EqualFold(tenant, e.cfg.TenantID) {
		e.stsFail(w, r, x, http.StatusBadRequest, "invalid_request", "tenant "+short(tenant)+" not found", 90002)
		return
	}
	if !x.isForm {
		e.stsFail(w, r, x, http.StatusBadRequest, "invalid_request",
			"the request body must be application/x-www-form-urlencoded and contain 'grant_type'", 900144)
		return
	}
	if x.tooLarge || x.formErr != nil {
		e.stsFail(w, r, x, http.StatusBadRequest, "invalid_request", "the request body is malformed or too large", 900144)
		return
	}
	form := x.form
	for _, p := range []string{"grant_type", "client_id", "scope"} {
		if form.Get(p) == "" {
			e.stsFail(w, r, x, http.StatusBadRequest, "invalid_request",
				"the request body must contain the following parameter: '"+p+"'", 900144)
			return
		}
	}
	if gt := form.Get("grant_type"); gt != "client_credentials" {
		e.stsFail(w, r, x, http.StatusBadRequest, "unsupported_grant_type",
			"grant type "+short(gt)+" is not supported; this endpoint issues client_credentials tokens", 70003)
		return
	}

	clientID := form.Get("client_id")
	id, known := e.identityByClientID(clientID)
	if !known {
		e.stsFail(w, r, x, http.StatusUnauthorized, "invalid_client",
			"application with identifier "+short(clientID)+" was not found in the directory", 700016)
		return
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		e.stsFail(w, r, x, http.StatusUnauthorized, "invalid_client", "no client certificate was presented", 700027)
		return
	}
	cert := r.TLS.PeerCertificates[0]
	if !strings.EqualFold(cert.Subject.CommonName, id.ClientID) {
		e.stsFail(w, r, x, http.StatusUnauthorized, "invalid_client",
			"the client certificate was not issued to client "+short(clientID), 700027)
		return
	}

	scope := form.Get("scope")
	resource, ok := strings.CutSuffix(scope, defaultScope)
	if !ok || resource == "" || strings.ContainsAny(scope, " \t") {
		e.stsFail(w, r, x, http.StatusBadRequest, "invalid_scope",
			"the provided value for scope "+short(scope)+" is not valid; client credential flows must have a single scope value with /.default suffixed to the resource identifier", 1002012)
		return
	}
	if _, has := form["claims"]; has {
		var obj map[string]any
		if err := json.Unmarshal([]byte(form.Get("claims")), &obj); err != nil || obj == nil {
			e.stsFail(w, r, x, http.StatusBadRequest, "invalid_request",
				"the provided value for the input parameter 'claims' is not valid JSON", 70011)
			return
		}
	}
	bound := false
	switch tt := form.Get("token_type"); {
	case tt == "" || strings.EqualFold(tt, "bearer"):
	case tt == "mtls_pop":
		bound = true
	default:
		e.stsFail(w, r, x, http.StatusBadRequest, "invalid_request",
			"token_type "+short(tt)+" is not supported on this endpoint", 70011)
		return
	}

	g := grant{aud: resource, id: id}
	tokenType := "Bearer"
	if bound {
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
		slog.String("aud", resource))
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}
