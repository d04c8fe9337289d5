package confidential

import (
	"context"

	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
)

// Two-leg federated identity credentials (FIC): leg 1 gets a token for TokenExchangeAudience
// from a managed identity or another confidential client; leg 2 is a confidential client that
// presents that token as its client assertion, typically to another tenant. With a PoP leg 1 the
// assertion is bound to leg 1's certificate, and leg 2 sends it as a jwt-pop assertion over mTLS
// with that certificate (bound FIC):
//
//	leg1 := confidential.FromManagedIdentity(mi, true)
//	cc, _ := confidential.New("https://login.microsoftonline.com/<tenant B>", appID, confidential.AssertionFunc(leg1))
//	res, _ := cc.AcquireTokenForClient(ctx, []string{"https://graph.microsoft.com/.default"}, confidential.WithMtlsPoP())

// TokenExchangeAudience is the audience of leg-1 tokens: what federated credentials trust.
const TokenExchangeAudience = "api://AzureADTokenExchange"

// FromManagedIdentity returns an assertion callback whose assertions are mi's tokens for
// TokenExchangeAudience (cached by mi). With pop, they are mTLS PoP tokens and carry their
// binding certificate, so leg 2 goes over mTLS with it.
func FromManagedIdentity(mi *managedidentity.Client, pop bool) func(context.Context, AssertionRequest) (Assertion, error) {
	var opts []managedidentity.AcquireOption
	if pop {
		opts = append(opts, managedidentity.WithMtlsPoP())
	}
	cacheOnly := append(opts[:len(opts):len(opts)], managedidentity.WithCacheOnly())
	return func(ctx context.Context, req AssertionRequest) (Assertion, error) {
		o := opts
		if req.CacheOnly {
			o = cacheOnly
		}
		res, err := mi.AcquireToken(ctx, TokenExchangeAudience, o...)
		if err != nil {
			return Assertion{}, err
		}
		return leg1(res), nil
	}
}

// FromConfidentialClient is FromManagedIdentity for a leg 1 that is itself a confidential client.
func FromConfidentialClient(cc *Client, pop bool) func(context.Context, AssertionRequest) (Assertion, error) {
	var opts []AcquireOption
	if pop {
		opts = append(opts, WithMtlsPoP())
	}
	cacheOnly := append(opts[:len(opts):len(opts)], WithCacheOnly())
	scopes := []string{TokenExchangeAudience + "/.default"}
	return func(ctx context.Context, req AssertionRequest) (Assertion, error) {
		o := opts
		if req.CacheOnly {
			o = cacheOnly
		}
		res, err := cc.AcquireTokenForClient(ctx, scopes, o...)
		if err != nil {
			return Assertion{}, err
		}
		return leg1(res), nil
	}
}

func leg1(res token.Result) Assertion {
	a := Assertion{Assertion: res.AccessToken}
	if res.IsPoP() {
		a.BindingCertificate = res.TLSCertificatePtr()
	}
	return a
}
