// Package token holds the types every surface of libmtlspop shares: the result of a token
// acquisition and the error type with its stable codes.
//
// The package is a leaf: it imports nothing else from the repository, so the C ABI, the CLI and
// every core package can depend on it without cycles.
package token

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Code is a stable, machine-readable error code. The values are MSAL's error-code strings where
// MSAL has one, so code that already switches on MSAL codes keeps working. A Code is itself an
// error, so errors.Is(err, token.CodeTokenTypeMismatch) works.
type Code string

func (c Code) Error() string { return "mtlspop: " + string(c) }

// Codes shared with MSAL.
const (
	CodeManagedIdentityRequestFailed  Code = "managed_identity_request_failed"
	CodeManagedIdentityUnreachable    Code = "managed_identity_unreachable_network"
	CodeManagedIdentityParseFailure   Code = "managed_identity_response_parse_failure"
	CodeInvalidManagedIdentityResp    Code = "invalid_managed_identity_response"
	CodeInvalidManagedIdentityID      Code = "invalid_managed_identity_id_type"
	CodeInvalidManagedIdentityURL     Code = "invalid_managed_identity_endpoint"
	CodeMtlsPopNotSupportedInIMDSv1   Code = "mtls_pop_token_not_supported_in_imds_v1"
	CodeMtlsPopNotSupportedForEnv     Code = "mtls_pop_not_supported_for_environment"
	CodeMtlsCertificateNotProvided    Code = "mtls_certificate_not_provided"
	CodeInvalidCertificate            Code = "invalid_certificate"
	CodeTokenTypeMismatch             Code = "token_type_mismatch"
	CodeTokenTypeMissing              Code = "token_type_missing"
	CodeRequestTimeout                Code = "request_timeout"
	CodeServiceNotAvailable           Code = "service_not_available"
	CodeInvalidClient                 Code = "invalid_client"
	CodeAttestationFailed             Code = "attestation_failed"
	CodeUserAssignedNotSupported      Code = "user_assigned_managed_identity_not_supported"
	CodeUserAssignedNotConfigurable   Code = "user_assigned_managed_identity_not_configurable_at_runtime"
	CodeMissingManagedIdentityEnvVar  Code = "missing_managed_identity_env_var"
	CodeMissingTenantedAuthority      Code = "missing_tenanted_authority"
	CodeManagedIdentityAllUnavailable Code = "managed_identity_all_sources_unavailable"
)

// Codes of libmtlspop's own, for conditions MSAL has no string for.
const (
	// CodeInvalidArgument: the caller passed something unusable (empty resource, bad option).
	CodeInvalidArgument Code = "invalid_argument"
	// CodeCanceled: the caller's context was canceled or its deadline passed.
	CodeCanceled Code = "canceled"
	// CodeClosed: the client was used after Close.
	CodeClosed Code = "client_closed"
	// CodeInvalidToken: a resource refused a token (RFC 6750 invalid_token): bad signature,
	// expired, wrong audience, or bound to another certificate.
	CodeInvalidToken Code = "invalid_token"
	// CodeSTSError: the token endpoint answered with an OAuth error not listed above; Message
	// carries the server's error code.
	CodeSTSError Code = "sts_error"
	// CodeInvalidTokenResponse: a token endpoint answered 2xx with something that is not a
	// usable token response.
	CodeInvalidTokenResponse Code = "invalid_token_response"
	// CodeResponseTooLarge: a server's response exceeded the size limit.
	CodeResponseTooLarge Code = "response_too_large"
	// CodeNetwork: a transport failure (connection refused, TLS failure) after retries.
	CodeNetwork Code = "network_error"
	// CodeTPM: the TPM, or the state directory that holds its key blobs, failed.
	CodeTPM Code = "tpm_error"
	// CodeNotCached: a cache-only acquisition found no usable cached token; nothing was fetched.
	CodeNotCached Code = "not_cached"
	// CodeInternal: a bug in libmtlspop; please report it.
	CodeInternal Code = "internal_error"
)

// CacheOnlyMiss is the error of a cache-only acquisition that found no token: CodeNotCached, or
// CodeInvalidArgument when it also asked for a forced refresh or claims, which always fetch.
// pkg prefixes the message, as in the rest of the package's errors.
func CacheOnlyMiss(pkg string, force, claims bool) *Error {
	if force || claims {
		return Errorf(CodeInvalidArgument, "%s: a cache-only acquisition cannot force a refresh or send claims", pkg)
	}
	return Errorf(CodeNotCached, "%s: no cached token (cache-only acquisition)", pkg)
}

// Error is the error type of every libmtlspop operation.
//
// Its text never contains a token, an assertion, a private key or a response body: Message is
// written by libmtlspop, and server-provided text in it is limited to OAuth error codes and
// descriptions.
type Error struct {
	Code          Code   // stable, machine-readable
	Message       string // human-readable detail
	Status        int    // HTTP status of the failing response, 0 when there was none
	CorrelationID string // the request's correlation id, when one was sent or returned
	Source        string // managed-identity source or flow, e.g. "imdsv2"
	Retryable     bool   // whether trying again later may succeed
	Err           error  // the underlying cause, if any
}

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap builds an *Error with a message and a cause. The cause's text is appended to Error() but is
// never allowed to carry secrets: callers wrap transport and parse errors only.
func Wrap(code Code, err error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("mtlspop: ")
	b.WriteString(string(e.Code))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Status != 0 {
		b.WriteString(" (status ")
		b.WriteString(strconv.Itoa(e.Status))
		b.WriteByte(')')
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the same Code, or an *Error with the same Code. This lets callers
// write errors.Is(err, token.CodeInvalidClient) without string matching.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case Code:
		return e.Code == t
	case *Error:
		return t != nil && e.Code == t.Code
	}
	return false
}

// CodeOf returns the Code of err if it is (or wraps) an *Error, and "" otherwise.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
