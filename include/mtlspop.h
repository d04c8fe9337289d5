/*
 * mtlspop.h — the C interface of libmtlspop.
 *
 * libmtlspop gets Azure access tokens bound to a certificate whose private key never leaves the
 * machine (RFC 8705 certificate-bound tokens, Entra's "mtls_pop"), calls resources over mutual TLS
 * with that certificate, and verifies such tokens on the resource side.
 *
 * This file is the specification. Anything not declared here is not part of the API, whatever
 * the shared object happens to contain. Link with -lmtlspop (pkg-config name "mtlspop"); the
 * SONAME is libmtlspop.so.0 and changes only if this interface ever breaks.
 *
 * CONVENTIONS (they hold for every function unless its entry says otherwise)
 *
 *  1. Status. Functions return an int: MTLSPOP_OK (0) on success, a negative mtlspop_status on
 *     failure. New codes may be added; numbers never change. mtlspop_strerror() names any code.
 *  2. Errors. Functions that can fail for a reason worth explaining take a last parameter
 *     `mtlspop_error **err`. It may be NULL. Otherwise the function sets *err to NULL on success,
 *     and on failure to an error object that the caller frees with mtlspop_error_free(), or to NULL
 *     when the status alone is all there is (MTLSPOP_E_FORKED, MTLSPOP_E_NOMEM). The error object
 *     belongs to that one call: there is no "last error" per thread or per handle.
 *  3. Outputs. On failure every object out-parameter is set to NULL; the API never hands back a
 *     half-made object.
 *  4. Inputs. String arguments are NUL-terminated UTF-8, borrowed for the duration of the call
 *     and copied if kept: the caller may free them as soon as the call returns. A string longer
 *     than MTLSPOP_MAX_INPUT bytes, or one that is not valid UTF-8, fails with
 *     MTLSPOP_E_INVALID_ARG (code "invalid_argument"). One exception: mtlspop_verify's
 *     authorization argument comes from the network, so any malformed value, invalid UTF-8
 *     included, is an invalid token (MTLSPOP_E_INVALID_TOKEN), not an invalid argument.
 *  5. Objects. Every object (client, token, response, claims, error) is an opaque handle created
 *     by the library and released by its own *_free function. Accessor results that are pointers
 *     are owned by the object and stay valid until it is freed. Handles are checked: a NULL,
 *     freed, stale or wrong-type handle makes a function return MTLSPOP_E_INVALID_ARG (accessors:
 *     NULL, 0 or -1 as documented) — never a crash, never another object. *_free(NULL) is a no-op
 *     returning MTLSPOP_OK; freeing twice returns MTLSPOP_E_INVALID_ARG.
 *  6. Threads. A client may be used from any number of threads at once. Tokens, responses, claims
 *     and errors are immutable and may be read from several threads at once, but an object must
 *     not be freed while another thread is still using it. Callbacks run on threads owned by the
 *     library (see mtlspop_acquire_token_async and mtlspop_set_log_callback).
 *  7. Configuration and options are JSON objects (schemas below). Unknown keys, wrong types and
 *     duplicate keys are refused with MTLSPOP_E_INVALID_ARG and a message naming the key.
 *  8. fork(). A process that forks after loading the library must not use it in the child: the Go
 *     runtime inside does not survive fork. Every function called in a forked child returns
 *     MTLSPOP_E_FORKED at once (accessors return NULL/0, *_free does nothing), except
 *     mtlspop_version, mtlspop_version_number, mtlspop_abi_version and mtlspop_strerror, which
 *     always work. fork() followed by exec() is fine.
 *  9. Signals. The library installs only the Go runtime's defaults (SIGSEGV, SIGBUS, SIGFPE,
 *     SIGPIPE, SIGURG, with SA_ONSTACK) and never installs handlers for SIGINT, SIGTERM or others.
 *     A host that installs its own handlers must use SA_ONSTACK.
 * 10. Environment. The environment (AZURE_POD_IDENTITY_AUTHORITY_HOST, SSL_CERT_FILE,
 *     SSL_CERT_DIR, ...) is read through libc getenv() when a client is created, so variables set
 *     after the library was loaded are honoured. Proxy variables (HTTPS_PROXY, NO_PROXY) are the
 *     exception: they are read once, when the library is loaded.
 * 11. One Go runtime per process. Loading a second Go-built shared library into the same process
 *     is not supported by Go.
 */
#ifndef MTLSPOP_H
#define MTLSPOP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------------
 * Versions
 *
 * The macros describe the header; the functions describe the library actually loaded. A program
 * (or a binding) should check at start-up that mtlspop_abi_version() == MTLSPOP_ABI_VERSION.
 */
#define MTLSPOP_VERSION        "0.1.0"
#define MTLSPOP_VERSION_NUMBER 1000 /* major * 1000000 + minor * 1000 + patch */
#define MTLSPOP_ABI_VERSION    0    /* the N of the SONAME libmtlspop.so.N */

/* The library version, e.g. "0.1.0". Static string; works in a forked child. */
const char *mtlspop_version(void);
/* The library version as MTLSPOP_VERSION_NUMBER computes it. Works in a forked child. */
int mtlspop_version_number(void);
/* The ABI version; compare with MTLSPOP_ABI_VERSION. Works in a forked child. */
int mtlspop_abi_version(void);

/* Longest string argument accepted, in bytes (not counting the NUL). */
#define MTLSPOP_MAX_INPUT (1u << 20)
/* Longest response body mtlspop_call reads; a longer one fails with code "response_too_large". */
#define MTLSPOP_MAX_RESPONSE_BODY (16u << 20)

/* ------------------------------------------------------------------------------------------------
 * Status codes
 *
 * The error object's code string (mtlspop_error_code) is the precise, stable reason; the status
 * is its category, for control flow. Codes per status are listed; other codes may be added.
 */
typedef enum mtlspop_status {
    MTLSPOP_OK              =   0, /* success */
    MTLSPOP_E_INVALID_ARG   =  -1, /* bad argument, handle, JSON, UTF-8 or size ("invalid_argument",
                                      "invalid_managed_identity_id_type",
                                      "invalid_managed_identity_endpoint",
                                      "mtls_certificate_not_provided",
                                      "missing_tenanted_authority") */
    MTLSPOP_E_FORKED        =  -2, /* called in a forked child; no error object */
    MTLSPOP_E_TIMEOUT       =  -3, /* the call's deadline passed ("request_timeout") */
    MTLSPOP_E_CANCELED      =  -4, /* canceled by mtlspop_cancel or by freeing the client ("canceled") */
    MTLSPOP_E_CLOSED        =  -5, /* the client was being freed ("client_closed") */
    MTLSPOP_E_NETWORK       =  -6, /* transport or TLS failure after retries ("network_error",
                                      "managed_identity_unreachable_network") */
    MTLSPOP_E_IDENTITY      =  -7, /* the identity platform refused or failed the request
                                      ("managed_identity_request_failed", "invalid_client",
                                      "sts_error", "attestation_failed", "service_not_available",
                                      and any code this header does not list) */
    MTLSPOP_E_PROTOCOL      =  -8, /* a server answered something unusable
                                      ("managed_identity_response_parse_failure",
                                      "invalid_managed_identity_response", "invalid_token_response",
                                      "token_type_mismatch", "token_type_missing",
                                      "response_too_large", "invalid_certificate") */
    MTLSPOP_E_UNSUPPORTED   =  -9, /* not available here ("mtls_pop_token_not_supported_in_imds_v1",
                                      "mtls_pop_not_supported_for_environment",
                                      "user_assigned_managed_identity_not_supported",
                                      "user_assigned_managed_identity_not_configurable_at_runtime",
                                      "missing_managed_identity_env_var",
                                      "managed_identity_all_sources_unavailable",
                                      "tpm_error": the TPM or its state directory failed) */
    MTLSPOP_E_INVALID_TOKEN = -10, /* mtlspop_verify refused the token ("invalid_token") */
    MTLSPOP_E_NOT_FOUND     = -11, /* mtlspop_cancel: no such request in flight (no error object);
                                      a cache_only acquisition found nothing ("not_cached") */
    MTLSPOP_E_NOMEM         = -12, /* out of memory; no error object */
    MTLSPOP_E_INTERNAL      = -13  /* a bug in libmtlspop ("internal_error"); please report it */
} mtlspop_status;

/* Static English text for a status, e.g. "invalid argument"; "unknown status" for other values.
 * Never NULL, never to be freed. Works in a forked child. */
const char *mtlspop_strerror(int status);

/* ------------------------------------------------------------------------------------------------
 * OBJECT: mtlspop_error — what went wrong in one call.
 *
 * Created by a failing call (see convention 2), freed with mtlspop_error_free(). Its text never
 * contains a token, a key or a response body.
 */
typedef struct mtlspop_error mtlspop_error;

/* METHOD. The stable code: the Go core's token.Code string, e.g. "invalid_client",
 * "mtls_pop_token_not_supported_in_imds_v1", "invalid_argument". NULL for an invalid handle. */
const char *mtlspop_error_code(const mtlspop_error *err);
/* METHOD. Human-readable detail, e.g. "mtlspop: invalid_argument: config: unknown key \"foo\"".
 * NULL for an invalid handle. */
const char *mtlspop_error_message(const mtlspop_error *err);
/* METHOD. HTTP status of the failing response, 0 when there was none, -1 for an invalid handle. */
int mtlspop_error_http_status(const mtlspop_error *err);
/* METHOD. The request's correlation id (x-ms-client-request-id), "" when none; NULL for an
 * invalid handle. Quote it when reporting a problem with the identity platform. */
const char *mtlspop_error_correlation_id(const mtlspop_error *err);
/* DESTRUCTOR. Returns MTLSPOP_OK, or MTLSPOP_E_INVALID_ARG for a freed or foreign handle. */
int mtlspop_error_free(mtlspop_error *err);

/* ------------------------------------------------------------------------------------------------
 * OBJECT: mtlspop_client — a managed identity and its token cache.
 *
 * Create one per identity and keep it: it holds the cache, the binding key and certificate, and
 * pooled connections. Thread-safe.
 *
 * Configuration JSON (every key optional; NULL config_json means "{}"):
 *
 *   {
 *     "kind":       "managed_identity",            the only kind in this version
 *     "identity":   {"type": "system"}             default: system-assigned
 *                 | {"type": "client_id"   | "resource_id" | "object_id", "id": "..."},
 *     "mtls_pop":   false,                         default token type of acquisitions:
 *                                                  true = mtls_pop (IMDSv2), false = Bearer
 *     "key":        {"provider": "software"}       where binding keys live: "software" (default,
 *                 | {"provider": "tpm",            in memory, RSA-2048) or "tpm": non-exportable
 *                    "device": "/dev/tpmrm0",      keys in a TPM 2.0 ("/dev/tpmrm0" by default, or
 *                    "state_dir": "...",           "tcp://host:port" for swtpm); state_dir keeps
 *                    "attest": false},             the key blobs and certificates (default
 *                                                  ~/.local/state/mtlspop/tpm); attest: true makes
 *                                                  the key prove it lives in the TPM before its
 *                                                  certificate is issued (fails closed). Clients
 *                                                  naming the same device and state_dir share one
 *                                                  TPM connection.
 *     "endpoints":  {"imds": "http://host:port"},  overrides AZURE_POD_IDENTITY_AUTHORITY_HOST
 *     "ca_file":    "/path/ca.pem",                extra trust anchors (PEM), added to the system
 *                                                  roots and SSL_CERT_FILE / SSL_CERT_DIR
 *     "timeout_ms": 60000,                         bound of a blocking call that has to go to the
 *                                                  network (1 .. 86400000; default 60000)
 *     "log_level":  "info"                         "debug" | "info" | "warn" | "error" | "off":
 *                                                  this client's records for the log callback
 *   }
 *
 * A confidential client (an app with a certificate or a secret) has "kind": "confidential":
 *
 *   {
 *     "kind":          "confidential",
 *     "authority":     "https://login.microsoftonline.com/<tenant>",   required
 *     "client_id":     "<app id>",                                   required
 *     "certificate":   {"cert_file": "cert.pem", "key_file": "key.pem", "send_x5c": false}
 *   | "secret":        "...",                 exactly one of certificate, secret and federated;
 *                                            a secret cannot do mTLS PoP
 *   | "federated":     {"managed_identity": {"identity": ..., "key": ..., "endpoints": ...}
 *                     | "confidential": {"authority", "client_id", "certificate" | "secret", ...},
 *                      "mtls_pop": true}     two-leg FIC: leg 1 (this host's managed identity, or
 *                                            another app) gets a token for
 *                                            api://AzureADTokenExchange, this client presents it
 *                                            as its assertion; with "mtls_pop" (default) leg 1's
 *                                            token is bound and this client goes over mTLS with
 *                                            its certificate (bound FIC). Leg 1 is owned by, and
 *                                            freed with, this client.
 *     "region":        "westus3",             the mTLS endpoint's region (default: MSAL_FORCE_REGION,
 *                                            REGION_NAME, else the global endpoint)
 *     "mtls_endpoint": "https://host:port",   the mTLS token host, instead of deriving it from the
 *                                            authority (private clouds, the emulator)
 *     "mtls_pop", "ca_file", "timeout_ms", "log_level": as above
 *   }
 *
 * For a confidential client the resource argument of the acquire functions is the scope, or
 * several space-separated scopes (e.g. "https://vault.azure.net/.default").
 */
typedef struct mtlspop_client mtlspop_client;

/* CONSTRUCTOR. Creates a client from config_json (borrowed). Reads the environment now, through
 * getenv(). Talks to no identity endpoint. The one exception to "no I/O" is a "tpm" key
 * provider: the first client of a device and state_dir opens the TPM (connecting to it, for
 * "tcp://", and running a few TPM commands); clients of the same TPM share that open. Waiting
 * for it is bounded by timeout_ms, and never holds up clients of other TPMs.
 * Returns MTLSPOP_OK and *out (free with mtlspop_client_free), or MTLSPOP_E_INVALID_ARG (bad JSON,
 * unknown key, wrong type, unknown key provider, unreadable ca_file, bad endpoint URL, NULL out);
 * for a TPM key also MTLSPOP_E_UNSUPPORTED ("tpm_error": the TPM or its state directory failed)
 * or MTLSPOP_E_TIMEOUT (the TPM did not open within timeout_ms). */
int mtlspop_client_new(const char *config_json, mtlspop_client **out, mtlspop_error **err);

/* DESTRUCTOR. Cancels the client's calls in flight (blocking and async), closes its connections
 * and drops its cache. Tokens already handed out stay valid until freed. Async requests in flight
 * still get their completion (usually MTLSPOP_E_CANCELED), possibly after this returns: keep their
 * `user` pointers valid until then. May be called from any thread, including from a completion
 * callback. Returns MTLSPOP_OK, or MTLSPOP_E_INVALID_ARG for a freed or foreign handle. */
int mtlspop_client_free(mtlspop_client *client);

/* ------------------------------------------------------------------------------------------------
 * OBJECT: mtlspop_token — an access token, with the certificate it is bound to.
 *
 * Acquisition options JSON (every key optional; NULL options_json means "{}"):
 *
 *   {
 *     "mtls_pop":      true,     override the client's default token type
 *     "force_refresh": false,    skip the cache and fetch a new token
 *     "cache_only":    false,    never fetch: the cached token, or MTLSPOP_E_NOT_FOUND
 *                                ("not_cached") at once, for callers that must not block
 *     "claims":        "{...}",  claims challenge (e.g. CAE) to send; always fetches, and
 *                                the new token replaces the cached one
 *     "timeout_ms":    5000      bound of this call (1 .. 86400000); default: the client's
 *   }
 *
 * Acquiring is cheap when the token is cached: no I/O, a few hundred nanoseconds, and the
 * accessors below are plain memory reads.
 */
typedef struct mtlspop_token mtlspop_token;

/* METHOD: mtlspop_client. Returns a token for resource (an App ID URI or URL, e.g.
 * "https://vault.azure.net"; a trailing "/.default" is ignored), from the cache when possible.
 * Blocks while it fetches; bounded by timeout_ms; canceled if the client is freed meanwhile.
 * Returns MTLSPOP_OK and *out (free with mtlspop_token_free), or an error status (see the enum). */
int mtlspop_acquire_token(mtlspop_client *client, const char *resource, const char *options_json,
                          mtlspop_token **out, mtlspop_error **err);

/* Completion of mtlspop_acquire_token_async. On success status is MTLSPOP_OK, token is set and
 * err is NULL; on failure token is NULL and err is set (or NULL for MTLSPOP_E_NOMEM). The callback
 * OWNS token and err: free them, now or later, from any thread. It runs on a thread owned by the
 * library, never on the thread that started the request; it may call any function of this API
 * (including mtlspop_client_free), but should return promptly: hop to your own event loop. */
typedef void (*mtlspop_done_fn)(void *user, uint64_t request_id, int status, mtlspop_token *token,
                                mtlspop_error *err);

/* METHOD: mtlspop_client. Starts an acquisition and returns at once. `done` is called exactly once
 * with `user` and the request id, which is also stored in *request_id (if not NULL) before the
 * function returns; ids are unique within the process and never 0. Each request runs on its own
 * goroutine, so any number may be in flight.
 * Returns MTLSPOP_OK, or an error (NULL client or done, bad arguments or options, freed client)
 * in which case `done` is never called. */
int mtlspop_acquire_token_async(mtlspop_client *client, const char *resource,
                                const char *options_json, mtlspop_done_fn done, void *user,
                                uint64_t *request_id, mtlspop_error **err);

/* METHOD: mtlspop_client. Cancels an async request. Its completion then arrives with
 * MTLSPOP_E_CANCELED, unless it had already finished. Returns MTLSPOP_OK, MTLSPOP_E_NOT_FOUND when
 * no such request is in flight on this client (it may have just completed), or
 * MTLSPOP_E_INVALID_ARG. */
int mtlspop_cancel(mtlspop_client *client, uint64_t request_id);

/* METHOD. The access token (a JWT). NULL for an invalid handle. Secret: do not log it. */
const char *mtlspop_token_access_token(const mtlspop_token *token);
/* METHOD. "mtls_pop" or "Bearer": the scheme of the Authorization header. NULL if invalid. */
const char *mtlspop_token_type(const mtlspop_token *token);
/* METHOD. Expiry, Unix seconds. 0 for an invalid handle. */
int64_t mtlspop_token_expires_on(const mtlspop_token *token);
/* METHOD. When a background refresh is due, Unix seconds; 0 when the token has none, or for an
 * invalid handle. */
int64_t mtlspop_token_refresh_on(const mtlspop_token *token);
/* METHOD. "cache" or "identity_provider": where this acquisition got the token. NULL if invalid. */
const char *mtlspop_token_source(const mtlspop_token *token);
/* METHOD. The binding certificate, PEM ("-----BEGIN CERTIFICATE-----..."); NULL for a Bearer
 * token or an invalid handle. Its private key stays inside the library: make calls that need it
 * with mtlspop_call. */
const char *mtlspop_token_binding_cert_pem(const mtlspop_token *token);
/* METHOD. The binding certificate's x5t#S256 (base64url SHA-256 of its DER), which equals the
 * token's cnf claim; NULL for a Bearer token or an invalid handle. */
const char *mtlspop_token_x5t_s256(const mtlspop_token *token);
/* DESTRUCTOR. Returns MTLSPOP_OK, or MTLSPOP_E_INVALID_ARG for a freed or foreign handle. */
int mtlspop_token_free(mtlspop_token *token);

/* ------------------------------------------------------------------------------------------------
 * OBJECT: mtlspop_response — the answer of a resource called with mtlspop_call.
 *
 * Request JSON:
 *
 *   {
 *     "url":         "https://...",             required; https only (the token is never sent
 *                                                in clear), redirects are not followed
 *     "method":      "GET",                     default "GET"
 *     "headers":     {"Name": "value" | ["v1", "v2"]},
 *     "body":        "text",                    UTF-8 text body, or
 *     "body_base64": "AAEC...",                 binary body, standard base64 (not both)
 *     "timeout_ms":  60000                      default: the client's timeout_ms
 *   }
 *
 * The library sets "Authorization: <token type> <token>" (any Authorization header given is
 * replaced) and, for an mtls_pop token, presents the binding certificate in the TLS handshake.
 */
typedef struct mtlspop_response mtlspop_response;

/* METHOD: mtlspop_client. Calls a resource with token (borrowed; it may come from another client
 * of the same process). An HTTP error status is not a failure: MTLSPOP_OK with, say, status 401.
 * Returns MTLSPOP_OK and *out (free with mtlspop_response_free), or an error status
 * (MTLSPOP_E_NETWORK for a refused connection or handshake, MTLSPOP_E_TIMEOUT, ...). */
int mtlspop_call(mtlspop_client *client, const mtlspop_token *token, const char *request_json,
                 mtlspop_response **out, mtlspop_error **err);

/* METHOD. The HTTP status code; -1 for an invalid handle. */
int mtlspop_response_status(const mtlspop_response *response);
/* METHOD. The first value of header `name` (case-insensitive), NULL if absent or invalid. */
const char *mtlspop_response_header(const mtlspop_response *response, const char *name);
/* METHOD. All headers as JSON, {"Content-Type": ["application/json"], ...}; NULL if invalid. */
const char *mtlspop_response_headers_json(const mtlspop_response *response);
/* METHOD. The body bytes, followed by a NUL that is not counted; *len (if len is not NULL) gets
 * the length. NULL and *len = 0 for an invalid handle. */
const uint8_t *mtlspop_response_body(const mtlspop_response *response, size_t *len);
/* DESTRUCTOR. Returns MTLSPOP_OK, or MTLSPOP_E_INVALID_ARG for a freed or foreign handle. */
int mtlspop_response_free(mtlspop_response *response);

/* ------------------------------------------------------------------------------------------------
 * OBJECT: mtlspop_claims — what a verified token says (resource side).
 *
 * Verifier configuration JSON:
 *
 *   {
 *     "audiences":     ["api://my-api"],          required, non-empty: accepted aud values
 *     "issuer":        "https://login.../v2.0",   if set, iss must equal it
 *     "jwks_url":      "https://.../keys",        the issuer's key set (https, or http on
 *                                                 loopback; redirects must stay on https),
 *                                                 fetched on first use and cached, or
 *     "jwks":          {"keys": [...]},           the key set inline (exactly one of the two);
 *                                                 RSA (2048-8192 bits) and EC P-256 keys with a
 *                                                 kid are used, other entries skipped
 *     "ca_file":       "/path/ca.pem",            extra trust anchors for jwks_url
 *     "allow_unbound": false,                     accept tokens without cnf under "Bearer"
 *     "leeway_s":      0,                         clock skew tolerated, seconds (0 .. 600)
 *     "timeout_ms":    10000                      bound of a key-set fetch (1 .. 86400000)
 *   }
 *
 * Verifiers are cached by their exact configuration string, so repeated calls with the same
 * string reuse the fetched keys. The configuration is checked in full before anything is
 * fetched: a jwks_url that is not https (nor http on loopback) or not a URL, or an inline set
 * with entries but no usable key, is MTLSPOP_E_INVALID_ARG.
 */
typedef struct mtlspop_claims mtlspop_claims;

/* Verifies an incoming request's Authorization header value ("mtls_pop <jwt>" or "Bearer <jwt>")
 * against the TLS client certificate of its connection (PEM; NULL or "" when the client presented
 * none): signature (RS256/PS256/ES256), exp/nbf/iat, iss, aud, and the binding — a token with
 * cnf.x5t#S256 is accepted only with the certificate it is bound to (RFC 8705 §3).
 * Returns MTLSPOP_OK and *out (free with mtlspop_claims_free) ONLY when the token verified.
 * Otherwise: MTLSPOP_E_INVALID_TOKEN (code "invalid_token", HTTP status 401; send it back as
 * WWW-Authenticate), MTLSPOP_E_NETWORK (the key set could not be fetched: HTTP 503, the token may
 * be fine), MTLSPOP_E_INVALID_ARG (bad configuration or certificate PEM), MTLSPOP_E_TIMEOUT.
 * Thread-safe; blocks only while fetching the key set. */
int mtlspop_verify(const char *config_json, const char *authorization, const char *client_cert_pem,
                   mtlspop_claims **out, mtlspop_error **err);

/* METHOD. Every claim of the verified token as a JSON object; NULL for an invalid handle. */
const char *mtlspop_claims_json(const mtlspop_claims *claims);
/* METHOD. The scheme the token came with: "mtls_pop" or "Bearer"; NULL if invalid. */
const char *mtlspop_claims_token_type(const mtlspop_claims *claims);
/* METHOD. The sub claim, "" if absent; NULL if invalid. */
const char *mtlspop_claims_subject(const mtlspop_claims *claims);
/* METHOD. The caller's client id (azp, else appid), "" if absent; NULL if invalid. */
const char *mtlspop_claims_client_id(const mtlspop_claims *claims);
/* METHOD. The verified cnf.x5t#S256, "" for an unbound token; NULL if invalid. */
const char *mtlspop_claims_x5t_s256(const mtlspop_claims *claims);
/* DESTRUCTOR. Returns MTLSPOP_OK, or MTLSPOP_E_INVALID_ARG for a freed or foreign handle. */
int mtlspop_claims_free(mtlspop_claims *claims);

/* ------------------------------------------------------------------------------------------------
 * Logging
 *
 * Off by default. Records never contain tokens, keys, CSRs, assertions or response bodies.
 */
typedef enum mtlspop_log_level {
    MTLSPOP_LOG_DEBUG = 0,
    MTLSPOP_LOG_INFO  = 1,
    MTLSPOP_LOG_WARN  = 2,
    MTLSPOP_LOG_ERROR = 3,
    MTLSPOP_LOG_OFF   = 4
} mtlspop_log_level;

/* A log record: level, message, and its structured fields as a JSON object (e.g.
 * {"source":"imdsv2","x5t#S256":"..."}). Both strings are borrowed for the duration of the
 * call. Records are delivered one at a time (never concurrently), in order, on threads owned by
 * the library; when the callback is too slow, records are dropped (a later record says how
 * many). The callback may call any function of this API. */
typedef void (*mtlspop_log_fn)(void *user, int level, const char *message, const char *fields_json);

/* Sets the process-wide log callback and the lowest level delivered (a client's "log_level"
 * filters first). fn NULL (or MTLSPOP_LOG_OFF) turns logging off. When this returns, the previous
 * callback is no longer running and will not be called again (unless this was called from inside
 * the log callback itself, where the change applies from the next record). It waits for a record
 * being delivered: do not call it while holding a lock that the log callback takes.
 * Returns MTLSPOP_OK, or MTLSPOP_E_INVALID_ARG for a level outside the enum. */
int mtlspop_set_log_callback(mtlspop_log_fn fn, void *user, int min_level);

/* ------------------------------------------------------------------------------------------------
 * Diagnostics
 */

/* The number of live objects of this API (clients, tokens, responses, claims and errors) in the
 * process. A test can assert it returns to its starting value. MTLSPOP_E_FORKED in a forked
 * child. */
int64_t mtlspop_live_objects(void);

#ifdef __cplusplus
}
#endif

#endif /* MTLSPOP_H */
