package managedidentity

import (
	"context"
	"net/http"
	"net/url"

	"github.com/mtlspop/mtlspop/core/token"
)

// Azure Machine Learning (reference/msal-dotnet-mtlspop.md §2.2): GET $MSI_ENDPOINT with the 2017
// API (api-version=2017-09-01), "Metadata: true" and "secret: $MSI_SECRET". The identity is named
// by "clientid" (no underscore): a user-assigned client id, or, for the system-assigned identity,
// $DEFAULT_IDENTITY_CLIENT_ID. Resource ids and object ids cannot be asked for.
const (
	machineLearningAPIVersion   = "2017-09-01"
	machineLearningSecretHeader = "secret"
	machineLearningClientID     = "clientid"
	envDefaultIdentityClientID  = "DEFAULT_IDENTITY_CLIENT_ID"
)

type machineLearning struct {
	endpoint        *url.URL
	secret          string
	defaultClientID string
}

func newMachineLearning(getenv func(string) string) (source, error) {
	u, err := endpointURL(envMSIEndpoint, getenv(envMSIEndpoint))
	if err != nil {
		return nil, err
	}
	return &machineLearning{endpoint: u, secret: getenv(envMSISecret), defaultClientID: getenv(envDefaultIdentityClientID)}, nil
}

func (s *machineLearning) name() string { return string(SourceMachineLearning) }

func (s *machineLearning) bearer(ctx context.Context, c *Client, resource, _ string) (token.Result, error) {
	q := url.Values{"api-version": {machineLearningAPIVersion}, "resource": {resource}}
	switch c.id.kind {
	case kindSystem:
		if s.defaultClientID != "" {
			q.Set(machineLearningClientID, s.defaultClientID)
		}
	case kindClientID:
		q.Set(machineLearningClientID, c.id.value)
	default:
		return token.Result{}, selectorError(token.CodeInvalidManagedIdentityID, SourceMachineLearning,
			"Azure Machine Learning names a user-assigned identity by client id only, not by %s", kindName(c.id))
	}
	endpoint := withQuery(s.endpoint, q)
	_, r, err := miCall{source: s.name(), what: "Machine Learning token request",
		newReq: func(ctx context.Context, correlationID string) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Metadata", "true")
			req.Header.Set(machineLearningSecretHeader, s.secret)
			clientHeaders(req.Header, correlationID)
			return req, nil
		}}.token(ctx, c)
	return r, err
}
