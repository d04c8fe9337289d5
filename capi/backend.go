package main

import (
	"context"
	"net/http"

	"github.com/mtlspop/mtlspop/core/confidential"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
)

// backend is the core client a C client wraps: a managed identity or a confidential client. For
// a confidential client the "resource" of the C API is its space-separated scopes.
type backend interface {
	acquire(ctx context.Context, e *resourceEntry, o *acquireOptions) (token.Result, error)
	Do(ctx context.Context, req *http.Request, res token.Result) (*http.Response, error)
	Close() error
}

type miBackend struct {
	*managedidentity.Client
	key keyConfig // to release a shared TPM provider on Close
}

// Close closes the client, then releases its TPM provider, if it has one.
func (b miBackend) Close() error {
	err := b.Client.Close()
	if b.key.provider == providerTPM {
		releaseTPM(b.key.device, b.key.stateDir)
	}
	return err
}

func (b miBackend) acquire(ctx context.Context, e *resourceEntry, o *acquireOptions) (token.Result, error) {
	return b.AcquireToken(ctx, e.resource, o.mi...)
}

type ccBackend struct {
	*confidential.Client
	leg1 backend // leg 1 of a two-leg FIC, owned by this client; nil otherwise
}

// Close closes the client, then its leg-1 client.
func (b ccBackend) Close() error {
	err := b.Client.Close()
	if b.leg1 != nil {
		_ = b.leg1.Close()
	}
	return err
}

func (b ccBackend) acquire(ctx context.Context, e *resourceEntry, o *acquireOptions) (token.Result, error) {
	return b.AcquireTokenForClient(ctx, e.scopes, o.cc...)
}
