'use strict';

// The resource side: verify an incoming request's Authorization header against the TLS client
// certificate of its connection (mtlspop_verify). A Verifier is made once per configuration; the
// library caches the issuer's key set per configuration, so keep the Verifier.

const { X509Certificate } = require('node:crypto');
const binding = require('./binding.js');
const v = require('./validate.js');

const VERIFIER_OPTIONS = ['audiences', 'issuer', 'jwksUrl', 'jwks', 'caFile', 'allowUnbound', 'leewaySeconds', 'timeoutMs'];
const VERIFY_OPTIONS = [...VERIFIER_OPTIONS, 'clientCertificate'];

// verifierConfig builds mtlspop_verify's configuration JSON: types and option names only. What
// the configuration must hold (audiences, exactly one of jwksUrl and jwks, a key set with
// "keys", a leeway of 0 .. 600 s) the library checks when it verifies, and refuses with an
// MtlsPopError (code "invalid_argument").
function verifierConfig(options, where, allowed) {
  if (options === undefined) {
    throw v.typeError(`The "${where}" argument must be an object with "audiences"`);
  }
  const o = v.options(options, where, allowed);
  const cfg = {};
  if (o.audiences !== undefined) {
    const aud = typeof o.audiences === 'string' ? [o.audiences] : o.audiences;
    if (!Array.isArray(aud)) {
      throw v.typeError(`The "audiences" option must be a string or an array of strings. Received ${v.describe(o.audiences)}`);
    }
    cfg.audiences = aud.map((a, i) => v.string(a, `audiences[${i}]`));
  }
  if (o.issuer !== undefined) cfg.issuer = v.string(o.issuer, 'issuer');
  if (o.jwksUrl !== undefined) cfg.jwks_url = o.jwksUrl instanceof URL ? o.jwksUrl.href : v.string(o.jwksUrl, 'jwksUrl');
  if (o.jwks !== undefined) {
    const jwks = typeof o.jwks === 'string' ? parseJwks(o.jwks) : o.jwks;
    if (jwks === null || typeof jwks !== 'object' || Array.isArray(jwks)) {
      throw v.typeError(`The "jwks" option must be a JWK set: an object or its JSON. Received ${v.describe(jwks)}`);
    }
    cfg.jwks = jwks;
  }
  if (o.caFile !== undefined) cfg.ca_file = v.string(o.caFile, 'caFile');
  if (o.allowUnbound !== undefined) cfg.allow_unbound = v.boolean(o.allowUnbound, 'allowUnbound');
  if (o.leewaySeconds !== undefined) cfg.leeway_s = v.number(o.leewaySeconds, 'leewaySeconds');
  if (o.timeoutMs !== undefined) cfg.timeout_ms = v.number(o.timeoutMs, 'timeoutMs');
  return JSON.stringify(cfg);
}

function parseJwks(s) {
  try {
    return JSON.parse(s);
  } catch (e) {
    throw v.typeError(`The "jwks" option is not valid JSON: ${e.message}`, 'ERR_INVALID_ARG_VALUE');
  }
}

// certificatePem accepts the client certificate as PEM text, DER bytes, a crypto.X509Certificate
// or what tls.TLSSocket#getPeerCertificate() returns ({} when the client sent none); null and
// undefined mean "no certificate".
function certificatePem(c) {
  if (c === undefined || c === null) return null;
  if (typeof c === 'string') return c === '' ? null : c;
  if (c instanceof X509Certificate) return c.toString();
  let der;
  if (c instanceof Uint8Array) der = c;
  else if (typeof c === 'object' && c.raw instanceof Uint8Array) der = c.raw;
  else if (v.isPlainObject(c) && Object.keys(c).length === 0) return null;
  else {
    throw v.typeError(
      `The "clientCertificate" must be PEM text, DER bytes, an X509Certificate or a peer certificate. Received ${v.describe(c)}`,
    );
  }
  if (der.length === 0) return null;
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  return `-----BEGIN CERTIFICATE-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;
}

// authorizationValue is the header as the C string the library takes. An absent header is an
// invalid token (code "invalid_token"), not a programming error; so is one holding U+0000, which
// a C string would cut short: it is handed over as "", which the library refuses as such.
function authorizationValue(a) {
  if (a === undefined || a === null) return '';
  if (typeof a !== 'string') {
    throw v.typeError(`The "authorization" argument must be a string. Received ${v.describe(a)}`);
  }
  return a.includes('\0') ? '' : a;
}

function verified(raw) {
  return Object.freeze({
    tokenType: raw.tokenType,
    subject: raw.subject,
    clientId: raw.clientId,
    bindingCertificateThumbprint: raw.bindingCertificateThumbprint === '' ? null : raw.bindingCertificateThumbprint,
    claims: Object.freeze(JSON.parse(raw.claims)),
  });
}

class Verifier {
  #config;

  /**
   * @param options {audiences, issuer?, jwksUrl? | jwks?, caFile?, allowUnbound?, leewaySeconds?, timeoutMs?}
   */
  constructor(options) {
    this.#config = verifierConfig(options, 'options', VERIFIER_OPTIONS);
  }

  /** Verifies, off the event loop (the first call fetches the key set). */
  async verify(authorization, clientCertificate) {
    const a = authorizationValue(authorization);
    const pem = certificatePem(clientCertificate);
    return verified(await binding.verifyAsync(this.#config, a, pem));
  }

  /** Verifies on the calling thread; blocks only while fetching the key set (the first call). */
  verifySync(authorization, clientCertificate) {
    return verified(binding.verifySync(this.#config, authorizationValue(authorization), certificatePem(clientCertificate)));
  }

  get [Symbol.toStringTag]() {
    return 'Verifier';
  }
}

/**
 * verify(authorization, {clientCertificate, audiences, ...}): a one-off Verifier. Prefer keeping
 * a Verifier when verifying many requests.
 */
async function verify(authorization, options) {
  const config = verifierConfig(options, 'options', VERIFY_OPTIONS);
  const a = authorizationValue(authorization);
  const pem = certificatePem(options.clientCertificate);
  return verified(await binding.verifyAsync(config, a, pem));
}

module.exports = { Verifier, verify, certificatePem };
