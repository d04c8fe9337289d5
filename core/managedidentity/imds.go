package managedidentity

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/mtlspop/mtlspop/core/internal/wire"
	"github.com/mtlspop/mtlspop/core/token"
)

// IMDS, version 1: Bearer tokens from the instance metadata service of a VM or scale set.
const (
	imdsDefaultBase = "http://169.254.169.254"
	imdsBaseEnv     = "AZURE_POD_IDENTITY_AUTHORITY_HOST"
)

type imds struct {
	base string // scheme://host[:port], no trailing slash
}

func newIMDS(getenv func(string) string) (*imds, error) {
	base := imdsDefaultBase
	if v := getenv(imdsBaseEnv); v != "" {
		u, err := endpointURL(imdsBaseEnv, v)
		if err != nil {
			return nil, err
		}
		base = strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/")
	}
	return &imds{base: base}, nil
}

func (s *imds) name() string { return "imds" }

func (s *imds) bearer(ctx context.Context, c *Client, resource, claims string) (token.Result, error) {
	q := url.Values{"api-version": {wire.IMDSAPIVersion}, "resource": {resource}}
	if name, value := c.id.selector(wire.IMDSv1ResourceIDParam); name != "" {
		q.Set(name, value)
	}
	endpoint := s.base + wire.IMDSTokenPath + "?" + q.Encode()
	_, r, err := miCall{source: s.name(), what: "IMDS token request", policy: &wire.IMDS,
		newReq: func(ctx context.Context, correlationID string) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Metadata", "true")
			clientHeaders(req.Header, correlationID)
			return req, nil
		}}.token(ctx, c)
	return r, err
}

// miTransportError maps a failure to reach a managed-identity endpoint to MSAL's code.
func miTransportError(err error, source, correlationID string) error {
	if e, ok := err.(*token.Error); ok && e.Code == token.CodeNetwork {
		e.Code = token.CodeManagedIdentityUnreachable
	}
	return wire.Annotate(err, source, correlationID)
}
