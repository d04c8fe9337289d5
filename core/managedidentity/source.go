package managedidentity

import (
	"context"
	"net/url"
	"strings"

	"github.com/mtlspop/mtlspop/core/token"
)

// source is one place managed-identity tokens come from. Each implementation lives in its own
// file and exports nothing.
type source interface {
	name() string
	// bearer fetches a Bearer token for resource from the network.
	bearer(ctx context.Context, c *Client, resource, claims string) (token.Result, error)
}

// detectSource picks the source from the environment. Sources that announce themselves through
// environment variables come first, in MSAL.NET's order; IMDS is the fallback.
func detectSource(getenv func(string) string) (source, error) {
	return newIMDS(getenv)
}

// endpointURL validates an endpoint taken from the environment.
func endpointURL(envName, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, token.Errorf(token.CodeInvalidManagedIdentityURL, "%s is not an http(s) URL", envName)
	}
	return u, nil
}
