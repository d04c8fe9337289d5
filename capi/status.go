package main

import (
	"context"
	"errors"
	"runtime"

	"github.com/mtlspop/mtlspop/core/token"
)

// Status codes of include/mtlspop.h (mtlspop_status). cgo.go checks at compile time that they
// equal the header's values.
const (
	statusOK           = 0
	statusInvalidArg   = -1
	statusForked       = -2
	statusTimeout      = -3
	statusCanceled     = -4
	statusClosed       = -5
	statusNetwork      = -6
	statusIdentity     = -7
	statusProtocol     = -8
	statusUnsupported  = -9
	statusInvalidToken = -10
	statusNotFound     = -11
	statusNoMem        = -12
	statusInternal     = -13
)

// statusByCode sorts the core's error codes into the ABI's status categories. A code missing
// here (a new one) counts as statusIdentity, as the header promises.
var statusByCode = map[token.Code]int{
	token.CodeInvalidArgument:            statusInvalidArg,
	token.CodeInvalidManagedIdentityID:   statusInvalidArg,
	token.CodeInvalidManagedIdentityURL:  statusInvalidArg,
	token.CodeMtlsCertificateNotProvided: statusInvalidArg,
	token.CodeMissingTenantedAuthority:   statusInvalidArg,

	token.CodeRequestTimeout: statusTimeout,
	token.CodeCanceled:       statusCanceled,
	token.CodeClosed:         statusClosed,

	token.CodeNetwork:                    statusNetwork,
	token.CodeManagedIdentityUnreachable: statusNetwork,

	token.CodeManagedIdentityRequestFailed: statusIdentity,
	token.CodeInvalidClient:                statusIdentity,
	token.CodeSTSError:                     statusIdentity,
	token.CodeAttestationFailed:            statusIdentity,
	token.CodeServiceNotAvailable:          statusIdentity,

	token.CodeManagedIdentityParseFailure: statusProtocol,
	token.CodeInvalidManagedIdentityResp:  statusProtocol,
	token.CodeInvalidTokenResponse:        statusProtocol,
	token.CodeTokenTypeMismatch:           statusProtocol,
	token.CodeTokenTypeMissing:            statusProtocol,
	token.CodeResponseTooLarge:            statusProtocol,
	token.CodeInvalidCertificate:          statusProtocol,

	token.CodeMtlsPopNotSupportedInIMDSv1:   statusUnsupported,
	token.CodeMtlsPopNotSupportedForEnv:     statusUnsupported,
	token.CodeUserAssignedNotSupported:      statusUnsupported,
	token.CodeUserAssignedNotConfigurable:   statusUnsupported,
	token.CodeMissingManagedIdentityEnvVar:  statusUnsupported,
	token.CodeManagedIdentityAllUnavailable: statusUnsupported,
	token.CodeTPM:                           statusUnsupported,

	token.CodeInvalidToken: statusInvalidToken,
	token.CodeNotCached:    statusNotFound,
	token.CodeInternal:     statusInternal,
}

func statusOf(code token.Code) int {
	if s, ok := statusByCode[code]; ok {
		return s
	}
	return statusIdentity
}

// asError turns any error into the *token.Error the ABI reports. ctx is the context of the
// call that failed (nil if none): when it was canceled or its deadline passed, the error says so
// whatever the layer that noticed called it. The core's error is copied, never modified: a
// failed fetch's error may be shared by every caller that waited on it.
func asError(err error, ctx context.Context) *token.Error {
	var te *token.Error
	if !errors.As(err, &te) {
		te = &token.Error{Code: token.CodeInternal, Message: "unexpected error", Err: err}
		switch {
		case errors.Is(err, context.Canceled):
			te = &token.Error{Code: token.CodeCanceled, Message: "canceled", Err: err}
		case errors.Is(err, context.DeadlineExceeded):
			te = &token.Error{Code: token.CodeRequestTimeout, Message: "timed out", Err: err}
		}
	}
	code := te.Code
	switch {
	case ctx != nil && errors.Is(ctx.Err(), context.Canceled):
		code = token.CodeCanceled
	case ctx != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		code = token.CodeRequestTimeout
	case te.Code == token.CodeCanceled && errors.Is(te, context.DeadlineExceeded):
		// The core's own deadline (the client's timeout_ms) passed.
		code = token.CodeRequestTimeout
	}
	if code == te.Code {
		return te
	}
	c := *te
	c.Code = code
	return &c
}

// panicError describes a recovered panic. Only runtime errors are described: other panic
// values could carry anything.
func panicError(r any) *token.Error {
	msg := "panic in libmtlspop"
	if re, ok := r.(runtime.Error); ok {
		msg += ": " + re.Error()
	}
	return token.Errorf(token.CodeInternal, "%s", msg)
}
