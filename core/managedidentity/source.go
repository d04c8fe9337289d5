package managedidentity

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/mtlspop/mtlspop/core/internal/wire"
	"github.com/mtlspop/mtlspop/core/token"
)

// Source names where a host's managed-identity tokens come from. The values are the names the
// CLI uses (`mtlspop source`, `mtlspop emulator --source`).
type Source string

// The managed-identity sources, in the order DetectSource tries them (IMDS last).
const (
	SourceServiceFabric   Source = "servicefabric"   // IDENTITY_ENDPOINT + IDENTITY_HEADER + IDENTITY_SERVER_THUMBPRINT
	SourceAppService      Source = "appservice"      // App Service and Functions: IDENTITY_ENDPOINT + IDENTITY_HEADER
	SourceMachineLearning Source = "machinelearning" // Azure Machine Learning: MSI_ENDPOINT + MSI_SECRET
	SourceCloudShell      Source = "cloudshell"      // MSI_ENDPOINT alone
	SourceAzureArc        Source = "arc"             // IDENTITY_ENDPOINT + IMDS_ENDPOINT, or the himds binary
	SourceIMDS            Source = "imds"            // the instance metadata service of a VM; the fallback
)

// Environment variables that announce a source (reference/msal-dotnet-mtlspop.md §2.1).
const (
	envIdentityEndpoint = "IDENTITY_ENDPOINT"
	envIdentityHeader   = "IDENTITY_HEADER"
	envServerThumbprint = "IDENTITY_SERVER_THUMBPRINT"
	envMSIEndpoint      = "MSI_ENDPOINT"
	envMSISecret        = "MSI_SECRET"
	envIMDSEndpoint     = "IMDS_ENDPOINT"
)

// source is one place managed-identity tokens come from. Each implementation lives in its own
// file and exports nothing.
type source interface {
	name() string
	// bearer fetches a Bearer token for resource from the network.
	bearer(ctx context.Context, c *Client, resource, claims string) (token.Result, error)
}

// detector is one row of the detection table: whether the environment announces the source, and
// how to build it from that environment.
type detector struct {
	source  Source
	present func(getenv func(string) string) bool
	build   func(getenv func(string) string) (source, error)
}

// detectors is MSAL.NET's order (GetManagedIdentitySourceNoImds): the first match wins, and
// IMDS is what remains.
var detectors = []detector{
	{SourceServiceFabric, func(getenv func(string) string) bool {
		return getenv(envIdentityEndpoint) != "" && getenv(envIdentityHeader) != "" && getenv(envServerThumbprint) != ""
	}, newServiceFabric},
	{SourceAppService, func(getenv func(string) string) bool {
		return getenv(envIdentityEndpoint) != "" && getenv(envIdentityHeader) != ""
	}, newAppService},
	{SourceMachineLearning, func(getenv func(string) string) bool {
		return getenv(envMSIEndpoint) != "" && getenv(envMSISecret) != ""
	}, newMachineLearning},
	{SourceCloudShell, func(getenv func(string) string) bool {
		return getenv(envMSIEndpoint) != ""
	}, newCloudShell},
	{SourceAzureArc, func(getenv func(string) string) bool {
		return getenv(envIdentityEndpoint) != "" && getenv(envIMDSEndpoint) != "" || himdsInstalled(getenv)
	}, newArc},
}

// DetectSource reports which managed-identity source a process with this environment would use
// (nil getenv reads the process environment). It only looks: it sends nothing and does not check
// that the endpoint works; see Client.Capabilities for a probe.
func DetectSource(getenv func(string) string) Source {
	if getenv == nil {
		getenv = os.Getenv
	}
	for _, d := range detectors {
		if d.present(getenv) {
			return d.source
		}
	}
	return SourceIMDS
}

// detectSource picks the source from the environment and builds it. An endpoint the environment
// names but that is not a usable URL is an error here, when the client is created.
func detectSource(getenv func(string) string) (source, error) {
	for _, d := range detectors {
		if d.present(getenv) {
			return d.build(getenv)
		}
	}
	return newIMDS(getenv)
}

// Source is the managed-identity source the client was created for.
func (c *Client) Source() Source { return Source(c.sourceName) }

// himdsPath is where the Azure Connected Machine agent's himds binary lives (the agent may run
// without setting IDENTITY_ENDPOINT for the process). Tests replace it.
var himdsPath = func(getenv func(string) string) string {
	switch runtime.GOOS {
	case "linux":
		return "/opt/azcmagent/bin/himds"
	case "windows":
		if pf := getenv("ProgramFiles"); pf != "" {
			return filepath.Join(pf, "AzureConnectedMachineAgent", "himds.exe")
		}
	}
	return ""
}

func himdsInstalled(getenv func(string) string) bool {
	p := himdsPath(getenv)
	if p == "" {
		return false
	}
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// endpointURL validates an endpoint taken from the environment.
func endpointURL(envName, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, token.Errorf(token.CodeInvalidManagedIdentityURL, "%s is not an http(s) URL", envName)
	}
	return u, nil
}

// withQuery returns endpoint with q added to the query it already has (a value in q replaces one
// of the same name).
func withQuery(endpoint *url.URL, q url.Values) string {
	u := *endpoint
	merged := u.Query()
	for k, vs := range q {
		merged[k] = vs
	}
	u.RawQuery = merged.Encode()
	return u.String()
}

// miCall is one token request to a managed-identity endpoint (IMDS v1 and the sources the
// environment announces).
type miCall struct {
	source string       // Source, for errors
	what   string       // "App Service token request", for errors
	wire   *wire.Client // nil: the client's
	policy *wire.Policy // nil: wire.ManagedIdentity, MSAL's policy for these sources
	// newReq builds one attempt's request; the correlation id is already chosen.
	newReq func(ctx context.Context, correlationID string) (*http.Request, error)
}

// fetch sends the request under the call's policy — by default MSAL's policy for these sources
// (wire.ManagedIdentity: 404, 408, 429, 500, 503, 504 and timeouts, three retries after max(1 s,
// Retry-After)); IMDS uses wire.IMDS — and returns the final response, or the error for a
// transport failure.
func (m miCall) fetch(ctx context.Context, c *Client, correlationID string) (*wire.Response, error) {
	w := m.wire
	if w == nil {
		w = c.wire
	}
	policy := wire.ManagedIdentity
	if m.policy != nil {
		policy = *m.policy
	}
	resp, err := w.Do(ctx, c.policy(policy), func(ctx context.Context) (*http.Request, error) {
		return m.newReq(ctx, correlationID)
	})
	if err != nil {
		return nil, miTransportError(err, m.source, correlationID)
	}
	return resp, nil
}

// token sends the request and parses the answer as a managed-identity token response.
func (m miCall) token(ctx context.Context, c *Client) (wire.Token, token.Result, error) {
	correlationID := wire.NewGUID()
	resp, err := m.fetch(ctx, c, correlationID)
	if err != nil {
		return wire.Token{}, token.Result{}, err
	}
	return m.parse(c, resp, correlationID)
}

// parse turns a response into a token or the error it reports.
func (m miCall) parse(c *Client, resp *wire.Response, correlationID string) (wire.Token, token.Result, error) {
	if resp.Status != http.StatusOK {
		return wire.Token{}, token.Result{}, m.statusError(resp, correlationID)
	}
	t, err := wire.ParseToken(resp.Body, c.cfg.now(), wire.FromManagedIdentity)
	if err == nil {
		t.TokenType, err = wire.CheckTokenType(false, t.TokenType)
	}
	if err != nil {
		return wire.Token{}, token.Result{}, wire.Annotate(err, m.source, correlationID)
	}
	return t, token.Result{AccessToken: t.AccessToken, TokenType: t.TokenType, ExpiresOn: t.ExpiresOn, RefreshOn: t.RefreshOn}, nil
}

// statusError is managed_identity_request_failed with the server's error code, description and
// correlation id, whichever error shape it used (wire.ParseError).
func (m miCall) statusError(resp *wire.Response, correlationID string) *token.Error {
	e := wire.StatusError(token.CodeManagedIdentityRequestFailed, m.source, m.what, resp)
	if e.CorrelationID == "" {
		e.CorrelationID = correlationID
	}
	return e
}

// selectorError is the error for an identity kind a source cannot request.
func selectorError(code token.Code, src Source, format string, args ...any) error {
	e := token.Errorf(code, format, args...)
	e.Source = string(src)
	return e
}

// kindName names how id names its identity, for error messages.
func kindName(id ID) string {
	switch id.kind {
	case kindClientID:
		return "client id"
	case kindResourceID:
		return "resource id"
	case kindObjectID:
		return "object id"
	}
	return "system-assigned"
}
