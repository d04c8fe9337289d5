'use strict';

const { inspect } = require('node:util');

// AuthenticationResult: an acquired token. Read-only; the access token is a secret, so
// util.inspect (console.log), toString and toJSON show "[redacted]" in its place. Read it with
// result.accessToken, or let client.call() send it.

const kInternal = Symbol('mtlspop.internal');
const REDACTED = '[redacted]';

let dataOf;

class AuthenticationResult {
  // The addon's data object: {accessToken, tokenType, expiresOn (ms), refreshOn (ms, 0 =
  // none), tokenSource, bindingCertificatePem, bindingCertificateThumbprint, handle}. Shared by
  // every result of one cached token, and never modified.
  #d;
  #expiresOn;
  #refreshOn;

  constructor(key, data) {
    if (key !== kInternal) {
      throw new TypeError('AuthenticationResult is not constructible; results come from ManagedIdentityClient');
    }
    this.#d = data;
  }

  static {
    dataOf = (r) => (r !== null && typeof r === 'object' && #d in r ? r.#d : undefined);
  }

  /** The access token (a JWT). Secret: do not log it. */
  get accessToken() { return this.#d.accessToken; }
  /** "mtls_pop" or "Bearer": the scheme of the Authorization header. */
  get tokenType() { return this.#d.tokenType; }
  /** When the token expires. */
  get expiresOn() { return (this.#expiresOn ??= new Date(this.#d.expiresOn)); }
  /** When the library refreshes the token in the background, or null. */
  get refreshOn() {
    if (this.#d.refreshOn === 0) return null;
    return (this.#refreshOn ??= new Date(this.#d.refreshOn));
  }
  /** "cache" or "identity_provider": where this acquisition got the token. */
  get tokenSource() { return this.#d.tokenSource; }
  /** The certificate the token is bound to (PEM); null for a Bearer token. */
  get bindingCertificatePem() { return this.#d.bindingCertificatePem; }
  /** The certificate's x5t#S256 (the token's cnf claim); null for a Bearer token. */
  get bindingCertificateThumbprint() { return this.#d.bindingCertificateThumbprint; }

  toJSON() {
    return {
      tokenType: this.tokenType,
      accessToken: REDACTED,
      expiresOn: this.expiresOn.toISOString(),
      refreshOn: this.refreshOn === null ? null : this.refreshOn.toISOString(),
      tokenSource: this.tokenSource,
      bindingCertificatePem: this.bindingCertificatePem,
      bindingCertificateThumbprint: this.bindingCertificateThumbprint,
    };
  }

  toString() {
    return `AuthenticationResult(${this.tokenType}, expires ${this.expiresOn.toISOString()}, ${REDACTED})`;
  }

  [inspect.custom](depth, options, inspectFn = inspect) {
    if (depth < 0) return `[AuthenticationResult ${this.tokenType}]`;
    const shown = {
      tokenType: this.tokenType,
      accessToken: REDACTED,
      expiresOn: this.expiresOn,
      refreshOn: this.refreshOn,
      tokenSource: this.tokenSource,
      bindingCertificateThumbprint: this.bindingCertificateThumbprint,
      bindingCertificatePem: this.bindingCertificatePem === null ? null : '-----BEGIN CERTIFICATE----- ...',
    };
    return `AuthenticationResult ${inspectFn(shown, { ...options, depth: options.depth === null ? null : options.depth - 1 })}`;
  }
}

Object.defineProperty(AuthenticationResult.prototype, Symbol.toStringTag, { value: 'AuthenticationResult' });

function newResult(data) {
  return new AuthenticationResult(kInternal, data);
}

module.exports = { AuthenticationResult, newResult, dataOf: (r) => dataOf(r) };
