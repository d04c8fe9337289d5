package managedidentity

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/mtlspop/mtlspop/core/token"
)

// Cloud Shell (reference/msal-dotnet-mtlspop.md §2.2): POST $MSI_ENDPOINT with "Metadata: true"
// and the form body resource=<resource>; no api-version. Only the signed-in user's
// (system-assigned) identity exists; errors come nested, {"error":{"code","message"}}.
const cloudShellFormType = "application/x-www-form-urlencoded"

type cloudShell struct {
	endpoint string
}

func newCloudShell(getenv func(string) string) (source, error) {
	u, err := endpointURL(envMSIEndpoint, getenv(envMSIEndpoint))
	if err != nil {
		return nil, err
	}
	return &cloudShell{endpoint: u.String()}, nil
}

func (s *cloudShell) name() string { return string(SourceCloudShell) }

func (s *cloudShell) bearer(ctx context.Context, c *Client, resource, _ string) (token.Result, error) {
	if !c.id.IsSystemAssigned() {
		return token.Result{}, selectorError(token.CodeUserAssignedNotSupported, SourceCloudShell,
			"Cloud Shell has no user-assigned identities; use the system-assigned identity")
	}
	body := url.Values{"resource": {resource}}.Encode()
	_, r, err := miCall{source: s.name(), what: "Cloud Shell token request",
		newReq: func(ctx context.Context, correlationID string) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, strings.NewReader(body))
			if err != nil {
				return nil, err
			}
			req.Header.Set("Metadata", "true")
			req.Header.Set("Content-Type", cloudShellFormType)
			clientHeaders(req.Header, correlationID)
			return req, nil
		}}.token(ctx, c)
	return r, err
}
