// Type definitions for mtlspop (hand-written; checked by a compile-only test in ci/node.sh).

/// <reference types="node" />

import type { X509Certificate } from 'node:crypto';

/** Where binding keys live. */
export type KeyOptions =
  | 'software'
  | 'tpm'
  | { provider?: 'software' }
  | {
      provider: 'tpm';
      /** "/dev/tpmrm0" (default) or "tcp://host:port" for swtpm. */
      device?: string;
      /** Where key blobs and certificates persist (default ~/.local/state/mtlspop/tpm). */
      stateDir?: string;
      /** Prove the key lives in the TPM before its certificate is issued (fails closed). */
      attest?: boolean;
    };

interface ClientCommonOptions {
  /** Default token type of acquisitions: true = mtls_pop (IMDSv2), false = Bearer (default). */
  mtlsPop?: boolean;
  /** Where binding keys live (default "software": in memory, RSA-2048). */
  key?: KeyOptions;
  /** Bound of an acquisition that goes to the network, ms (1 .. 86400000; default 60000). */
  timeoutMs?: number;
  /** Extra trust anchors (PEM file), added to the system roots and SSL_CERT_FILE / SSL_CERT_DIR. */
  caFile?: string;
  /** The IMDS endpoint, overriding AZURE_POD_IDENTITY_AUTHORITY_HOST. */
  imdsEndpoint?: string | URL;
}

/**
 * Options of `new ManagedIdentityClient()`. Without clientId, resourceId or objectId the client
 * uses the system-assigned identity; with one of them (only one), that user-assigned identity.
 */
export type ManagedIdentityClientOptions = ClientCommonOptions &
  (
    | { clientId?: undefined; resourceId?: undefined; objectId?: undefined }
    | { clientId: string; resourceId?: undefined; objectId?: undefined }
    | { resourceId: string; clientId?: undefined; objectId?: undefined }
    | { objectId: string; clientId?: undefined; resourceId?: undefined }
  );

export interface AcquireTokenSyncOptions {
  /** Override the client's default token type. */
  mtlsPop?: boolean;
  /** Skip the cache and fetch a new token. */
  forceRefresh?: boolean;
  /** A claims challenge (e.g. CAE) to send; always fetches. */
  claims?: string;
  /** Bound of this call, ms (1 .. 86400000); default: the client's. */
  timeoutMs?: number;
}

export interface AcquireTokenOptions extends AcquireTokenSyncOptions {
  /** Aborting cancels the request; the promise rejects with code "canceled" (cause: the reason). */
  signal?: AbortSignal;
}

/** An acquired token. util.inspect, toString and toJSON redact the access token. */
export declare class AuthenticationResult {
  private constructor();
  /** The access token (a JWT). Secret: do not log it. */
  readonly accessToken: string;
  /** The scheme of the Authorization header. */
  readonly tokenType: 'mtls_pop' | 'Bearer';
  readonly expiresOn: Date;
  /** When the library refreshes the token in the background; null when it has no such time. */
  readonly refreshOn: Date | null;
  /** Where this acquisition got the token. */
  readonly tokenSource: 'cache' | 'identity_provider';
  /** The certificate the token is bound to (PEM); null for a Bearer token. */
  readonly bindingCertificatePem: string | null;
  /** The certificate's x5t#S256, equal to the token's cnf claim; null for a Bearer token. */
  readonly bindingCertificateThumbprint: string | null;
  toJSON(): {
    tokenType: 'mtls_pop' | 'Bearer';
    accessToken: '[redacted]';
    expiresOn: string;
    refreshOn: string | null;
    tokenSource: 'cache' | 'identity_provider';
    bindingCertificatePem: string | null;
    bindingCertificateThumbprint: string | null;
  };
  toString(): string;
}

export interface CallRequest {
  /** https only (the token is never sent in clear); redirects are not followed. */
  url: string | URL;
  /** Default "GET". */
  method?: string;
  headers?: Record<string, string | number | ReadonlyArray<string | number>> | Headers | Map<string, string | number | ReadonlyArray<string | number>>;
  body?: string | Uint8Array | ArrayBuffer | null;
  /** Default: the client's timeoutMs. */
  timeoutMs?: number;
}

/** What a resource answered. An HTTP error status is a response, not an error. */
export declare class CallResponse {
  private constructor();
  readonly status: number;
  /** Whether status is 2xx. */
  readonly ok: boolean;
  readonly headers: Headers;
  readonly body: Buffer;
  text(): string;
  json(): unknown;
}

export declare class ManagedIdentityClient implements Disposable {
  /**
   * @throws {TypeError} for options of the wrong type or unknown option names, before any native
   *   code runs
   * @throws {MtlsPopError} category "invalid_argument" for values the library refuses (code
   *   "invalid_argument": an empty id, a timeoutMs out of range, an unknown key provider, an
   *   unreadable caFile, ...; "invalid_managed_identity_endpoint": an imdsEndpoint that is not an
   *   http(s) URL)
   */
  constructor(options?: ManagedIdentityClientOptions);
  /** Whether close() has been called. */
  readonly closed: boolean;
  /**
   * A token for resource (an App ID URI or URL), from the cache when possible. A cache hit is
   * answered at once, without leaving the JS thread; a miss is fetched off the event loop.
   */
  acquireToken(resource: string, options?: AcquireTokenOptions): Promise<AuthenticationResult>;
  /** The same, blocking: for hot paths where the token is cached (well under a microsecond). */
  acquireTokenSync(resource: string, options?: AcquireTokenSyncOptions): AuthenticationResult;
  /** Calls a resource with the token (and, for mtls_pop, its certificate in the TLS handshake). */
  call(result: AuthenticationResult, request: CallRequest): Promise<CallResponse>;
  /** Cancels what is in flight, releases the client. Idempotent; later use throws "client_closed". */
  close(): void;
  [Symbol.dispose](): void;
}

/** A confidential client's certificate: PEM files of the certificate and its private key. */
export interface CertificateOptions {
  certFile: string;
  keyFile: string;
  /** Send the certificate chain (x5c) in client assertions (subject-name/issuer registration). */
  sendX5c?: boolean;
}

interface AppOptions {
  /** "https://login.microsoftonline.com/<tenant>" */
  authority: string;
  /** The application (client) id. */
  clientId: string;
  /** The mTLS endpoint's Azure region (default MSAL_FORCE_REGION, REGION_NAME, else global). */
  region?: string;
  /** The mTLS token host, instead of deriving it from the authority (private clouds, the emulator). */
  mtlsEndpoint?: string;
}

type AppCredential =
  | { certificate: CertificateOptions; secret?: undefined; federated?: undefined }
  | { secret: string; certificate?: undefined; federated?: undefined }
  | { federated: FederatedOptions; certificate?: undefined; secret?: undefined };

/**
 * Leg 1 of a two-leg FIC: a managed identity or another app, whose token for
 * api://AzureADTokenExchange is the client's assertion. With mtlsPop (the default) leg 1's token
 * is bound and the client presents it over mTLS with leg 1's certificate (bound FIC).
 */
export type FederatedOptions = { mtlsPop?: boolean } & (
  | { managedIdentity: Omit<ManagedIdentityClientOptions, 'mtlsPop' | 'timeoutMs' | 'caFile'>; confidential?: undefined }
  | { confidential: AppOptions & ({ certificate: CertificateOptions; secret?: undefined } | { secret: string; certificate?: undefined }); managedIdentity?: undefined }
);

/** Options of `new ConfidentialClient()`: exactly one of certificate, secret and federated. */
export type ConfidentialClientOptions = AppOptions &
  AppCredential & {
    /** Default token type of acquisitions: true = mtls_pop (needs a certificate or a bound FIC). */
    mtlsPop?: boolean;
    timeoutMs?: number;
    caFile?: string;
  };

/**
 * An application (a confidential client) and its token cache: mTLS PoP tokens with its
 * certificate on the mtlsauth endpoint, Bearer tokens with a client assertion or a secret, and
 * two-leg FIC. Tokens are cached by the certificate presented.
 */
export declare class ConfidentialClient implements Disposable {
  /**
   * @throws {TypeError} for options of the wrong type or unknown option names
   * @throws {MtlsPopError} code "invalid_argument" for a configuration the library refuses (a
   *   missing authority, not exactly one credential, ...)
   */
  constructor(options: ConfidentialClientOptions);
  readonly closed: boolean;
  /** An app-only token for scopes, e.g. "https://vault.azure.net/.default". */
  acquireTokenForClient(scopes: string | string[], options?: AcquireTokenOptions): Promise<AuthenticationResult>;
  /** The same, blocking: for hot paths where the token is cached. */
  acquireTokenForClientSync(scopes: string | string[], options?: AcquireTokenSyncOptions): AuthenticationResult;
  acquireToken(scopes: string, options?: AcquireTokenOptions): Promise<AuthenticationResult>;
  acquireTokenSync(scopes: string, options?: AcquireTokenSyncOptions): AuthenticationResult;
  call(result: AuthenticationResult, request: CallRequest): Promise<CallResponse>;
  close(): void;
  [Symbol.dispose](): void;
}

/** The stable error codes listed by include/mtlspop.h; others may appear. */
export type MtlsPopErrorCode =
  | 'invalid_argument'
  | 'invalid_managed_identity_id_type'
  | 'invalid_managed_identity_endpoint'
  | 'mtls_certificate_not_provided'
  | 'missing_tenanted_authority'
  | 'forked'
  | 'request_timeout'
  | 'canceled'
  | 'client_closed'
  | 'network_error'
  | 'managed_identity_unreachable_network'
  | 'managed_identity_request_failed'
  | 'invalid_client'
  | 'sts_error'
  | 'attestation_failed'
  | 'service_not_available'
  | 'managed_identity_response_parse_failure'
  | 'invalid_managed_identity_response'
  | 'invalid_token_response'
  | 'token_type_mismatch'
  | 'token_type_missing'
  | 'response_too_large'
  | 'invalid_certificate'
  | 'mtls_pop_token_not_supported_in_imds_v1'
  | 'mtls_pop_not_supported_for_environment'
  | 'user_assigned_managed_identity_not_supported'
  | 'user_assigned_managed_identity_not_configurable_at_runtime'
  | 'missing_managed_identity_env_var'
  | 'managed_identity_all_sources_unavailable'
  | 'tpm_error'
  | 'invalid_token'
  | 'not_cached'
  | 'out_of_memory'
  | 'internal_error'
  | 'unknown_error'
  | (string & {});

/** The category of an error's status (include/mtlspop.h, enum mtlspop_status), for control flow. */
export type MtlsPopErrorCategory =
  | 'invalid_argument'
  | 'forked'
  | 'timeout'
  | 'canceled'
  | 'closed'
  | 'network'
  | 'identity'
  | 'protocol'
  | 'unsupported'
  | 'invalid_token'
  | 'not_found'
  | 'out_of_memory'
  | 'internal'
  | 'unknown';

export declare class MtlsPopError extends Error {
  constructor(
    message: string,
    details?: { errno?: number; code?: string; status?: number; correlationId?: string; cause?: unknown },
  );
  readonly name: 'MtlsPopError';
  /** The precise, stable reason. */
  code: MtlsPopErrorCode;
  /** The C ABI status (negative), 0 when not from the library. */
  errno: number;
  category: MtlsPopErrorCategory;
  /** HTTP status of the failing response, 0 when there was none (401 for "invalid_token"). */
  status: number;
  /** The request's correlation id; quote it when reporting a problem with the identity platform. */
  correlationId: string;
}

/** A certificate as a resource sees it: PEM text, DER bytes, an X509Certificate, or what tls.TLSSocket#getPeerCertificate() returns. */
export type ClientCertificate = string | Uint8Array | X509Certificate | { raw: Uint8Array } | Record<string, never> | null | undefined;

export interface VerifierOptions {
  /** Accepted aud values. */
  audiences: string | readonly string[];
  /** If set, iss must equal it. */
  issuer?: string;
  /** The issuer's key set URL (https, or http on loopback); exactly one of jwksUrl and jwks. */
  jwksUrl?: string | URL;
  /** The key set inline. */
  jwks?: { keys: unknown[] } | string;
  /** Extra trust anchors for jwksUrl. */
  caFile?: string;
  /** Accept tokens without cnf under "Bearer". */
  allowUnbound?: boolean;
  /** Clock skew tolerated, seconds (0 .. 600). */
  leewaySeconds?: number;
  /** Bound of a key-set fetch, ms. */
  timeoutMs?: number;
}

export interface VerifyOptions extends VerifierOptions {
  clientCertificate?: ClientCertificate;
}

/** What a verified token says. */
export interface VerifiedToken {
  readonly tokenType: 'mtls_pop' | 'Bearer';
  readonly subject: string;
  /** The caller's client id (azp, else appid); "" if absent. */
  readonly clientId: string;
  /** The verified cnf.x5t#S256; null for an unbound token. */
  readonly bindingCertificateThumbprint: string | null;
  /** Every claim of the token. */
  readonly claims: Readonly<Record<string, unknown>>;
}

/**
 * Verifies tokens for one configuration (the library caches its key set). The constructor checks
 * the options' types and names (TypeError); the library checks the configuration itself when it
 * verifies (MtlsPopError code "invalid_argument": no audiences, not exactly one of jwksUrl and
 * jwks, a leeway out of range, ...).
 */
export declare class Verifier {
  constructor(options: VerifierOptions);
  /**
   * Resolves only when the token verified; rejects with MtlsPopError code "invalid_token"
   * (status 401: answer with WWW-Authenticate), or category "network" (the key set could not be
   * fetched: answer 503), or code "invalid_argument" (a configuration the library refuses).
   */
  verify(authorization: string | null | undefined, clientCertificate?: ClientCertificate): Promise<VerifiedToken>;
  /** The same on the calling thread; blocks only while fetching the key set. */
  verifySync(authorization: string | null | undefined, clientCertificate?: ClientCertificate): VerifiedToken;
}

/** A one-off Verifier. */
export declare function verify(authorization: string | null | undefined, options: VerifyOptions): Promise<VerifiedToken>;

/** The version of the loaded libmtlspop. */
export declare const version: string;
