package emulator

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mtlspop/mtlspop/core/internal/wire"
)

// Source is a managed-identity source the emulator can stand in for (Config.Source). The values
// are the names `mtlspop emulator --source` takes.
type Source string

// The emulated sources (reference/msal-dotnet-mtlspop.md §2.2).
const (
	SourceIMDS            Source = "imds"            // IMDS only: AZURE_POD_IDENTITY_AUTHORITY_HOST
	SourceAppService      Source = "appservice"      // IDENTITY_ENDPOINT + IDENTITY_HEADER
	SourceServiceFabric   Source = "servicefabric"   // + IDENTITY_SERVER_THUMBPRINT, over HTTPS
	SourceMachineLearning Source = "machinelearning" // MSI_ENDPOINT + MSI_SECRET (+ DEFAULT_IDENTITY_CLIENT_ID)
	SourceCloudShell      Source = "cloudshell"      // MSI_ENDPOINT
	SourceAzureArc        Source = "arc"             // IDENTITY_ENDPOINT + IMDS_ENDPOINT, key files
)

// Sources lists every source the emulator knows, IMDS first.
func Sources() []Source {
	return []Source{SourceIMDS, SourceAppService, SourceServiceFabric, SourceMachineLearning, SourceCloudShell, SourceAzureArc}
}

// The endpoints of the sources other than IMDS, for InjectFault, Requests and LastRequest.
const (
	EndpointAppService      Endpoint = "appservice"      // GET  IDENTITY_ENDPOINT (/msi/token)
	EndpointServiceFabric   Endpoint = "servicefabric"   // GET  IDENTITY_ENDPOINT over HTTPS (/metadata/identity/oauth2/token)
	EndpointMachineLearning Endpoint = "machinelearning" // GET  MSI_ENDPOINT (/MSI/auth)
	EndpointCloudShell      Endpoint = "cloudshell"      // POST MSI_ENDPOINT (/oauth2/token)
	EndpointArc             Endpoint = "arc"             // GET  IDENTITY_ENDPOINT (/metadata/identity/oauth2/token), both legs
)

// sourceState is the emulated source's endpoint and secrets. It is set up by Start and
// immutable afterwards, except the Arc key files (arc.go), which have their own lock.
type sourceState struct {
	kind   Source
	srv    *server // nil for IMDS
	secret string  // IDENTITY_HEADER (App Service, Service Fabric) or MSI_SECRET (Machine Learning)
	sf     *serviceFabricTLS
	arc    *arcKeys
}

func (c Config) checkSource() error {
	switch c.Source {
	case "", SourceIMDS, SourceAppService, SourceServiceFabric, SourceMachineLearning, SourceCloudShell, SourceAzureArc:
	default:
		return fmt.Errorf("emulator: unknown source %q", c.Source)
	}
	if c.ArcKeyDirectory != "" && c.Source != SourceAzureArc {
		return errors.New("emulator: ArcKeyDirectory is for Source arc only")
	}
	return nil
}

// listenSource opens the source's listener (through Start's listen, so a failed Start closes
// it) and prepares its secrets, certificate or key directory.
func (e *Emulator) listenSource(listen func(addr string, useTLS bool) (*server, error)) (_ *server, err error) {
	e.src.kind = e.cfg.Source
	if e.src.kind == "" {
		e.src.kind = SourceIMDS
	}
	if e.src.kind == SourceIMDS {
		return nil, nil
	}
	e.src.secret = randomHex(16)
	switch e.src.kind {
	case SourceServiceFabric:
		if e.src.sf, err = newServiceFabricTLS(); err != nil {
			return nil, err
		}
	case SourceAzureArc:
		if e.src.arc, err = newArcKeys(e.cfg.ArcKeyDirectory); err != nil {
			return nil, err
		}
	}
	addr := e.cfg.SourceAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s, err := listen(addr, e.src.kind == SourceServiceFabric)
	if err != nil && e.src.arc != nil {
		_ = e.src.arc.close()
	}
	return s, err
}

// serveSource gives the source's server its handler (through Start's newServer).
func (e *Emulator) serveSource(newServer func(s *server, h http.Handler, tc *tlsPolicy)) {
	s := e.src.srv
	if s == nil {
		return
	}
	mux := http.NewServeMux()
	switch e.src.kind {
	case SourceAppService:
		mux.Handle(appServicePath, e.endpoint(EndpointAppService, e.appServiceToken))
	case SourceServiceFabric:
		mux.Handle(serviceFabricPath, e.endpoint(EndpointServiceFabric, e.serviceFabricToken))
	case SourceMachineLearning:
		mux.Handle(machineLearningPath, e.endpoint(EndpointMachineLearning, e.machineLearningToken))
	case SourceCloudShell:
		mux.Handle(cloudShellPath, e.endpoint(EndpointCloudShell, e.cloudShellToken))
	case SourceAzureArc:
		mux.Handle(arcPath, e.endpoint(EndpointArc, e.arcToken))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, miError{Error: "not_found", Description: "no such endpoint", Message: "no such endpoint"})
	})
	newServer(s, mux, nil)
	if e.src.sf != nil {
		s.srv.TLSConfig = e.src.sf.serverConfig()
	}
}

// sourceServers are the servers Close stops besides the four every emulator runs.
func (e *Emulator) sourceServers() []*server {
	if e.src.srv == nil {
		return nil
	}
	return []*server{e.src.srv}
}

// closeSource removes what the source left on disk (Arc key files), after the servers stopped.
func (e *Emulator) closeSource() error {
	if e.src.arc != nil {
		return e.src.arc.close()
	}
	return nil
}

// Source is the managed-identity source the emulator stands in for.
func (e *Emulator) Source() Source { return e.src.kind }

// SourceURL is the token endpoint of the emulated source (the value of IDENTITY_ENDPOINT or
// MSI_ENDPOINT), or "" when the source is IMDS (see IMDSURL).
func (e *Emulator) SourceURL() string {
	if e.src.srv == nil {
		return ""
	}
	switch e.src.kind {
	case SourceAppService:
		return e.src.srv.base + appServicePath
	case SourceServiceFabric:
		return e.src.srv.base + serviceFabricPath
	case SourceMachineLearning:
		return e.src.srv.base + machineLearningPath
	case SourceCloudShell:
		return e.src.srv.base + cloudShellPath
	case SourceAzureArc:
		return e.src.srv.base + arcPath
	}
	return ""
}

// sourceEnv is the environment that announces the source to a client: what Env returns,
// besides SSL_CERT_FILE.
func (e *Emulator) sourceEnv() map[string]string {
	switch e.src.kind {
	case SourceAppService:
		return map[string]string{"IDENTITY_ENDPOINT": e.SourceURL(), "IDENTITY_HEADER": e.src.secret}
	case SourceServiceFabric:
		return map[string]string{"IDENTITY_ENDPOINT": e.SourceURL(), "IDENTITY_HEADER": e.src.secret,
			"IDENTITY_SERVER_THUMBPRINT": e.src.sf.thumbprint}
	case SourceMachineLearning:
		return map[string]string{"MSI_ENDPOINT": e.SourceURL(), "MSI_SECRET": e.src.secret,
			"DEFAULT_IDENTITY_CLIENT_ID": e.cfg.SystemAssigned.ClientID}
	case SourceCloudShell:
		return map[string]string{"MSI_ENDPOINT": e.SourceURL()}
	case SourceAzureArc:
		return map[string]string{"IDENTITY_ENDPOINT": e.SourceURL(), "IMDS_ENDPOINT": e.src.srv.base}
	}
	return map[string]string{"AZURE_POD_IDENTITY_AUTHORITY_HOST": e.IMDSURL()}
}

// miError is the error body of the managed-identity endpoints, with both the OAuth and the
// App Service member names MSAL reads (ManagedIdentityErrorResponse).
type miError struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	Message       string `json:"message"`
	CorrelationID string `json:"correlationId,omitempty"`
}

// nestedError is the body of Cloud Shell's (and Service Fabric's) errors:
// {"error":{"code","message"}}.
type nestedError struct {
	Error nestedErrorDetail `json:"error"`
}

type nestedErrorDetail struct {
	Code          string `json:"code"`
	Message       string `json:"message"`
	CorrelationID string `json:"correlationId,omitempty"`
}

func writeMIError(w http.ResponseWriter, r *http.Request, x *exchange, status int, code, desc string) {
	x.handlerNote = desc
	writeJSON(w, status, miError{Error: code, Description: desc, Message: desc, CorrelationID: correlationID(r)})
}

func writeNestedError(w http.ResponseWriter, r *http.Request, x *exchange, status int, code, desc string) {
	x.handlerNote = desc
	writeJSON(w, status, nestedError{Error: nestedErrorDetail{Code: code, Message: desc, CorrelationID: correlationID(r)}})
}

// secretMatches compares a presented secret with the expected one in constant time.
func secretMatches(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// checkVersions returns an error description unless the query carries name with one of the
// accepted values.
func checkVersions(q url.Values, name string, accepted ...string) string {
	v := q[name]
	if len(v) == 0 || v[0] == "" {
		return "Required parameter " + name + " not specified"
	}
	if len(v) == 1 {
		for _, a := range accepted {
			if v[0] == a {
				return ""
			}
		}
	}
	return name + " " + strconv.Quote(v[0]) + " is not supported; use " + strings.Join(accepted, " or ")
}

// refuseParams returns an error description if the query carries any of names.
func refuseParams(q url.Values, names ...string) string {
	for _, n := range names {
		if _, ok := q[n]; ok {
			return "parameter " + n + " is not supported by this endpoint"
		}
	}
	return ""
}

// singleResource returns the one resource value of a query or form, or "".
func singleResource(v url.Values) string {
	if len(v["resource"]) != 1 {
		return ""
	}
	return v.Get("resource")
}

// identityByObjectID finds a configured identity, system- or user-assigned, by object id.
func (e *Emulator) identityByObjectID(objectID string) (Identity, bool) {
	if strings.EqualFold(e.cfg.SystemAssigned.ObjectID, objectID) {
		return e.cfg.SystemAssigned, true
	}
	for _, id := range e.cfg.UserAssigned {
		if strings.EqualFold(id.ObjectID, objectID) {
			return id, true
		}
	}
	return Identity{}, false
}

// epoch is t as the decimal string most managed-identity endpoints send.
func epoch(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// trailingSlash serves "<path>/" as "<path>" for the IMDS paths, as IMDS does: msal-node
// canonicalises AZURE_POD_IDENTITY_AUTHORITY_HOST + path into ".../oauth2/token/".
func trailingSlash(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := strings.TrimSuffix(r.URL.Path, "/"); p {
		case wire.IMDSTokenPath, wire.PlatformMetadataPath, wire.IssueCredentialPath:
			r2 := r.Clone(r.Context())
			r2.URL.Path, r2.URL.RawPath = p, ""
			h.ServeHTTP(w, r2)
			return
		}
		h.ServeHTTP(w, r)
	})
}
