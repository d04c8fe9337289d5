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

type miBackend struct{ *managedidentity.Client }

func (b miBackend) acquire(ctx context.Context, e *resourceEntry, o *acquireOptions) (token.Result, error) {
	return b.AcquireToken(ctx, e.resource, o.mi...)
}

type ccBackend struct{ *confidential.Client }

func (b ccBackend) acquire(ctx context.Context, e *resourceEntry, o *acquireOptions) (token.Result, error) {
	return b.AcquireTokenForClient(ctx, e.scopes, o.cc...)
}
