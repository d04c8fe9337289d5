package managedidentity

import (
	"context"
	"net/http"
	"net/url"

	"github.com/mtlspop/mtlspop/core/token"
)

// App Service and Azure Functions (reference/msal-dotnet-mtlspop.md §2.2): GET $IDENTITY_ENDPOINT
// with api-version=2019-08-01 and the secret from $IDENTITY_HEADER in X-IDENTITY-HEADER. A
// user-assigned identity is named by client_id, mi_res_id or object_id.
const (
	appServiceAPIVersion   = "2019-08-01"
	appServiceSecretHeader = "X-IDENTITY-HEADER"
	appServiceResourceID   = "mi_res_id"
)

type appService struct {
	endpoint *url.URL
	secret   string
}

func newAppService(getenv func(string) string) (source, error) {
	u, err := endpointURL(envIdentityEndpoint, getenv(envIdentityEndpoint))
	if err != nil {
		return nil, err
	}
	return &appService{endpoint: u, secret: getenv(envIdentityHeader)}, nil
}

func (s *appService) name() string { return string(SourceAppService) }

func (s *appService) bearer(ctx context.Context, c *Client, resource, _ string) (token.Result, error) {
	q := url.Values{"api-version": {appServiceAPIVersion}, "resource": {resource}}
	if name, value := c.id.selector(appServiceResourceID); name != "" {
		q.Set(name, value)
	}
	endpoint := withQuery(s.endpoint, q)
	_, r, err := miCall{source: s.name(), what: "App Service token request",
		newReq: func(ctx context.Context, correlationID string) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set(appServiceSecretHeader, s.secret)
			clientHeaders(req.Header, correlationID)
			return req, nil
		}}.token(ctx, c)
	return r, err
}
