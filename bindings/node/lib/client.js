'use strict';

const binding = require('./binding.js');
const v = require('./validate.js');
const { closedError, abortedError, MtlsPopError, CANCELED } = require('./error.js');
const { newResult, dataOf } = require('./result.js');
const { CallResponse } = require('./response.js');

// Symbol.dispose (explicit resource management: `using client = new ManagedIdentityClient()`);
// Node versions before it share the registered symbol Node uses for it.
const dispose = Symbol.dispose ?? Symbol.for('nodejs.dispose');

const CLIENT_OPTIONS = ['clientId', 'resourceId', 'objectId', 'mtlsPop', 'key', 'timeoutMs', 'caFile', 'imdsEndpoint'];
const CLIENT_ELSEWHERE = {
  forceRefresh: 'forceRefresh is an option of acquireToken',
  claims: 'claims is an option of acquireToken',
  signal: 'signal is an option of acquireToken',
};
const KEY_OPTIONS = ['provider', 'device', 'stateDir', 'attest'];
const ACQUIRE_OPTIONS = ['mtlsPop', 'forceRefresh', 'claims', 'timeoutMs', 'signal'];
const ACQUIRE_SYNC_OPTIONS = ['mtlsPop', 'forceRefresh', 'claims', 'timeoutMs'];
const ACQUIRE_ELSEWHERE = {
  clientId: 'the identity is chosen when the client is created',
  resourceId: 'the identity is chosen when the client is created',
  objectId: 'the identity is chosen when the client is created',
};
const SYNC_ELSEWHERE = { ...ACQUIRE_ELSEWHERE, signal: 'acquireTokenSync cannot be aborted; use acquireToken' };
const CALL_OPTIONS = ['method', 'url', 'headers', 'body', 'timeoutMs'];

// clientConfig builds the C ABI's client configuration JSON (include/mtlspop.h) from the options
// of the constructor, or returns null for the defaults. Like every builder here, it checks only
// what it needs to build the JSON (types, shapes, option names); the library judges the values
// and refuses what it does not accept with an MtlsPopError of its own.
function clientConfig(options) {
  const o = v.options(options, 'options', CLIENT_OPTIONS, CLIENT_ELSEWHERE);
  const config = {};
  const ids = ['clientId', 'resourceId', 'objectId'].filter((k) => o[k] !== undefined);
  // config.identity names one id: there is no JSON for two.
  if (ids.length > 1) {
    throw v.typeError(
      `Only one of clientId, resourceId and objectId may be given (a user-assigned identity is named one way). Received ${ids.join(', ')}`,
      'ERR_INVALID_ARG_VALUE',
    );
  }
  if (ids.length === 1) {
    const k = ids[0];
    config.identity = { type: { clientId: 'client_id', resourceId: 'resource_id', objectId: 'object_id' }[k], id: v.string(o[k], k) };
  }
  if (o.mtlsPop !== undefined) config.mtls_pop = v.boolean(o.mtlsPop, 'mtlsPop');
  if (o.key !== undefined) config.key = keyConfig(o.key);
  if (o.imdsEndpoint !== undefined) {
    config.endpoints = { imds: o.imdsEndpoint instanceof URL ? o.imdsEndpoint.href : v.string(o.imdsEndpoint, 'imdsEndpoint') };
  }
  if (o.caFile !== undefined) config.ca_file = v.string(o.caFile, 'caFile');
  if (o.timeoutMs !== undefined) config.timeout_ms = v.number(o.timeoutMs, 'timeoutMs');
  return Object.keys(config).length === 0 ? null : JSON.stringify(config);
}

// keyConfig is config.key. A string is a provider's name ("software", "tpm"); which providers
// exist, and which settings go with which, the library says.
function keyConfig(key) {
  if (typeof key === 'string') return { provider: key };
  if (!v.isPlainObject(key)) {
    throw v.typeError(`The "key" option must be "software", "tpm" or an object. Received ${v.describe(key)}`);
  }
  const k = v.options(key, 'options.key', KEY_OPTIONS);
  const out = {};
  if (k.provider !== undefined) out.provider = v.string(k.provider, 'key.provider');
  if (k.device !== undefined) out.device = v.string(k.device, 'key.device');
  if (k.stateDir !== undefined) out.state_dir = v.string(k.stateDir, 'key.stateDir');
  if (k.attest !== undefined) out.attest = v.boolean(k.attest, 'key.attest');
  return out;
}

// The options JSON of the boolean-only combinations, made once: the common calls build nothing.
// PROBE_JSON: the same with "cache_only": true, for acquireToken's cache probe (see
// acquireToken), null where the options always fetch.
const BOOL_JSON = new Map();
const PROBE_JSON = new Map();
for (const pop of [undefined, false, true]) {
  for (const force of [undefined, false, true]) {
    const o = {};
    if (pop !== undefined) o.mtls_pop = pop;
    if (force !== undefined) o.force_refresh = force;
    BOOL_JSON.set(`${pop}/${force}`, Object.keys(o).length ? JSON.stringify(o) : null);
    PROBE_JSON.set(`${pop}/${force}`, force ? null : JSON.stringify({ ...o, cache_only: true }));
  }
}

// acquireOptions checks acquireToken's options and returns the C ABI's options JSON (or null),
// the probe's options JSON (or null: no probe) and the signal.
function acquireOptions(options, sync) {
  if (options === undefined) return NO_OPTIONS;
  const o = v.options(options, 'options', sync ? ACQUIRE_SYNC_OPTIONS : ACQUIRE_OPTIONS, sync ? SYNC_ELSEWHERE : ACQUIRE_ELSEWHERE);
  const pop = o.mtlsPop === undefined ? undefined : v.boolean(o.mtlsPop, 'mtlsPop');
  const force = o.forceRefresh === undefined ? undefined : v.boolean(o.forceRefresh, 'forceRefresh');
  let json = BOOL_JSON.get(`${pop}/${force}`);
  let probe = o.claims === undefined ? PROBE_JSON.get(`${pop}/${force}`) : null;
  if (o.claims !== undefined || o.timeoutMs !== undefined) {
    const full = json === null ? {} : JSON.parse(json);
    if (o.claims !== undefined) full.claims = v.string(o.claims, 'claims');
    if (o.timeoutMs !== undefined) full.timeout_ms = v.number(o.timeoutMs, 'timeoutMs');
    json = JSON.stringify(full);
    // The probe carries every option the acquisition does: the library judges them (a timeout
    // out of range, say) whichever path answers, so a cached token does not hide a bad option.
    if (probe !== null) probe = JSON.stringify({ ...full, cache_only: true });
  }
  let signal;
  if (o.signal !== undefined) {
    if (!(o.signal instanceof AbortSignal)) {
      throw v.typeError(`The "signal" option must be an AbortSignal. Received ${v.describe(o.signal)}`);
    }
    signal = o.signal;
  }
  return { json, probe, signal };
}

const NO_OPTIONS = Object.freeze({ json: null, probe: PROBE_JSON.get('undefined/undefined'), signal: undefined });

// callRequest builds the C ABI's request JSON of mtlspop_call.
function callRequest(request) {
  if (request === undefined) {
    throw v.typeError('The "request" argument must be an object with a "url"');
  }
  const o = v.options(request, 'request', CALL_OPTIONS);
  const req = {};
  if (o.url !== undefined) req.url = o.url instanceof URL ? o.url.href : v.string(o.url, 'request.url');
  if (o.method !== undefined) req.method = v.string(o.method, 'request.method');
  if (o.headers !== undefined) req.headers = callHeaders(o.headers);
  if (o.body !== undefined && o.body !== null) {
    const b = o.body;
    if (typeof b === 'string') req.body = b;
    else if (b instanceof Uint8Array) req.body_base64 = Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
    else if (b instanceof ArrayBuffer) req.body_base64 = Buffer.from(b).toString('base64');
    else throw v.typeError(`The "request.body" option must be a string, Buffer, Uint8Array or ArrayBuffer. Received ${v.describe(b)}`);
  }
  if (o.timeoutMs !== undefined) req.timeout_ms = v.number(o.timeoutMs, 'request.timeoutMs');
  return JSON.stringify(req);
}

// callHeaders is request.headers: {name: [values]}. Names and values go as given; which are valid
// HTTP (a token for a name, no CR, LF or NUL in a value) the library checks.
function callHeaders(h) {
  const out = Object.create(null); // a header named "__proto__" is a name like any other
  const add = (name, value) => {
    if (typeof name !== 'string') {
      throw v.typeError(`The header names of request.headers must be strings. Received ${v.describe(name)}`);
    }
    const values = Array.isArray(value) ? value : [value];
    for (const x of values) {
      if (typeof x !== 'string' && typeof x !== 'number') {
        throw v.typeError(`The value of header "${name}" must be a string, a number or an array of them. Received ${v.describe(x)}`);
      }
      (out[name] ??= []).push(String(x));
    }
  };
  if (typeof Headers === 'function' && h instanceof Headers) {
    for (const [name, value] of h) add(name, value);
  } else if (h instanceof Map) {
    for (const [name, value] of h) add(name, value);
  } else if (v.isPlainObject(h)) {
    for (const name of Object.keys(h)) if (h[name] !== undefined) add(name, h[name]);
  } else {
    throw v.typeError(`The "request.headers" option must be an object, a Map or a Headers. Received ${v.describe(h)}`);
  }
  return out;
}

/**
 * A managed identity and its token cache. Create one per identity and keep it.
 */
// TokenClient is what both clients share: the library handle, acquisition, calls, lifecycle.
class TokenClient {
  #h; // the addon's client external; null once closed

  constructor(configJSON) {
    this.#h = binding.clientNew(configJSON);
  }

  /** Whether close() has been called. */
  get closed() {
    return this.#h === null;
  }

  /**
   * A token for resource, from the cache when possible; fetches (off the event loop) when not.
   *
   * A cached token is returned without leaving the JS thread: a first, cache-only try (no I/O,
   * no waiting; made only when no acquisition of this package is in flight) finds it. Otherwise
   * the async acquisition below fetches off the event loop. The async path costs two thread hops
   * (~60 µs here), a hit the cache-only way about a microsecond.
   */
  async acquireToken(resource, options) {
    const h = this.#h;
    if (h === null) throw closedError();
    v.resource(resource);
    const { json, probe, signal } = acquireOptions(options, false);
    if (probe !== null && (signal === undefined || !signal.aborted)) {
      const hit = binding.acquireProbe(h, resource, probe);
      if (hit !== null) return newResult(hit);
    }
    if (signal === undefined) {
      return newResult(await binding.acquireAsync(h, resource, json));
    }
    if (signal.aborted) throw abortedError(signal);
    const started = {}; // the addon puts the request to cancel here
    const promise = binding.acquireAsync(h, resource, json, started);
    const onAbort = () => binding.cancel(started.request);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      return newResult(await promise);
    } catch (e) {
      if (signal.aborted && e instanceof MtlsPopError && e.errno === CANCELED && e.cause === undefined) {
        e.cause = signal.reason;
      }
      throw e;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * acquireToken, blocking: for hot paths where the token is cached (a cache hit costs well under
   * a microsecond). On a miss it blocks the event loop while it fetches, up to timeoutMs.
   */
  acquireTokenSync(resource, options) {
    const h = this.#h;
    if (h === null) throw closedError();
    v.resource(resource);
    const json = options === undefined ? null : acquireOptions(options, true).json;
    return newResult(binding.acquireSync(h, resource, json));
  }

  /**
   * Calls a resource over HTTPS with result's token: "Authorization: <type> <token>", and for an
   * mtls_pop token the binding certificate in the TLS handshake. An HTTP error status is a
   * response, not an error.
   */
  async call(result, request) {
    const h = this.#h;
    if (h === null) throw closedError();
    const d = dataOf(result);
    if (d === undefined) {
      throw v.typeError(`The "result" argument must be an AuthenticationResult. Received ${v.describe(result)}`);
    }
    const json = callRequest(request);
    return new CallResponse(await binding.call(h, d.handle, json));
  }

  /**
   * Releases the client: cancels what it has in flight (those promises reject with code
   * "canceled"), closes its connections and drops its cache. Idempotent. Any later use throws
   * an MtlsPopError with code "client_closed". Tokens already acquired stay readable.
   */
  close() {
    const h = this.#h;
    if (h === null) return;
    this.#h = null;
    binding.clientClose(h);
  }

  [dispose]() {
    this.close();
  }
}

/** A managed identity and its token cache (include/mtlspop.h, "kind": "managed_identity"). */
class ManagedIdentityClient extends TokenClient {
  constructor(options) {
    super(clientConfig(options));
  }

  get [Symbol.toStringTag]() {
    return 'ManagedIdentityClient';
  }
}

const CONFIDENTIAL_OPTIONS = ['authority', 'clientId', 'certificate', 'secret', 'federated', 'mtlsPop', 'region',
  'mtlsEndpoint', 'timeoutMs', 'caFile'];
const CERTIFICATE_OPTIONS = ['certFile', 'keyFile', 'sendX5c'];
const FEDERATED_OPTIONS = ['managedIdentity', 'confidential', 'mtlsPop'];
const LEG1_APP_OPTIONS = ['authority', 'clientId', 'certificate', 'secret', 'region', 'mtlsEndpoint'];
const LEG1_MI_OPTIONS = ['clientId', 'resourceId', 'objectId', 'key', 'imdsEndpoint'];

// appConfig is the C ABI's confidential-client members for options (also leg 1's, nested). The
// members go as given: which are required, and that there is exactly one credential
// (certificate, secret or federated), the library checks.
function appConfig(o, name) {
  const config = {};
  if (o.authority !== undefined) config.authority = v.string(o.authority, `${name}.authority`);
  if (o.clientId !== undefined) config.client_id = v.string(o.clientId, `${name}.clientId`);
  if (o.certificate !== undefined) {
    const c = v.options(o.certificate, `${name}.certificate`, CERTIFICATE_OPTIONS, {});
    config.certificate = {};
    if (c.certFile !== undefined) config.certificate.cert_file = v.string(c.certFile, `${name}.certificate.certFile`);
    if (c.keyFile !== undefined) config.certificate.key_file = v.string(c.keyFile, `${name}.certificate.keyFile`);
    if (c.sendX5c !== undefined) config.certificate.send_x5c = v.boolean(c.sendX5c, `${name}.certificate.sendX5c`);
  }
  if (o.secret !== undefined) config.secret = v.string(o.secret, `${name}.secret`);
  if (o.federated !== undefined) config.federated = federatedConfig(o.federated);
  if (o.region !== undefined) config.region = v.string(o.region, `${name}.region`);
  if (o.mtlsEndpoint !== undefined) config.mtls_endpoint = v.string(o.mtlsEndpoint, `${name}.mtlsEndpoint`);
  return config;
}

// federatedConfig is config.federated: leg 1 of a two-leg FIC, a managed identity or another app
// (exactly one of the two: the library checks). Leg 1 has no federated member of its own (not an
// option name here).
function federatedConfig(options) {
  const f = v.options(options, 'federated', FEDERATED_OPTIONS, {});
  const out = {};
  if (f.mtlsPop !== undefined) out.mtls_pop = v.boolean(f.mtlsPop, 'federated.mtlsPop');
  if (f.managedIdentity !== undefined) {
    const mi = v.options(f.managedIdentity, 'federated.managedIdentity', LEG1_MI_OPTIONS, {});
    out.managed_identity = JSON.parse(clientConfig(mi) ?? '{}'); // a ManagedIdentityClient's members
  }
  if (f.confidential !== undefined) {
    out.confidential = appConfig(v.options(f.confidential, 'federated.confidential', LEG1_APP_OPTIONS, {}), 'federated.confidential');
  }
  return out;
}

// confidentialConfig builds the C ABI's "kind": "confidential" configuration JSON.
function confidentialConfig(options) {
  const o = v.options(options, 'options', CONFIDENTIAL_OPTIONS, {});
  const config = { kind: 'confidential', ...appConfig(o, 'options') };
  if (o.mtlsPop !== undefined) config.mtls_pop = v.boolean(o.mtlsPop, 'mtlsPop');
  if (o.caFile !== undefined) config.ca_file = v.string(o.caFile, 'caFile');
  if (o.timeoutMs !== undefined) config.timeout_ms = v.number(o.timeoutMs, 'timeoutMs');
  return JSON.stringify(config);
}

// scopeString is the resource argument of a confidential client: its scopes, space-separated.
function scopeString(scopes) {
  if (typeof scopes === 'string') return scopes;
  if (Array.isArray(scopes) && scopes.every((s) => typeof s === 'string')) return scopes.join(' ');
  throw v.typeError(`The "scopes" argument must be a string or an array of strings. Received ${v.describe(scopes)}`);
}

/**
 * An application (a confidential client) and its token cache: mTLS PoP tokens with its
 * certificate on the mtlsauth endpoint, Bearer tokens with a client assertion or a secret, and
 * two-leg FIC with `federated` (bound FIC over mTLS when leg 1 is PoP).
 */
class ConfidentialClient extends TokenClient {
  constructor(options) {
    super(confidentialConfig(options));
  }

  /** An app-only token for scopes ("https://vault.azure.net/.default"); see acquireToken. */
  acquireTokenForClient(scopes, options) {
    return this.acquireToken(scopeString(scopes), options);
  }

  /** acquireTokenForClient, blocking: for hot paths where the token is cached. */
  acquireTokenForClientSync(scopes, options) {
    return this.acquireTokenSync(scopeString(scopes), options);
  }

  get [Symbol.toStringTag]() {
    return 'ConfidentialClient';
  }
}

module.exports = { ManagedIdentityClient, ConfidentialClient, clientConfig, acquireOptions, callRequest };
