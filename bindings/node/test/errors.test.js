'use strict';

// Every error category the library can produce here, each as an MtlsPopError with code, errno,
// category, status and correlationId; and the mapping of statuses the library may add later.
// Clients are configured explicitly (imdsEndpoint, caFile): nothing comes from the environment.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const mtlspop = require('mtlspop');
const { ManagedIdentityClient, MtlsPopError, Verifier } = mtlspop;
const { startEmulator, setEnv, blackhole, garbage, closedPort, RESOURCE } = require('./helpers.js');

// Clients a test opens are closed after it (Node 20 has no `using` declarations yet).
const opened = [];
const track = (c) => (opened.push(c), c);
afterEach(() => { while (opened.length) opened.pop().close(); });

const binding = mtlspop[Symbol.for('mtlspop.binding')];
let emu;
let v1;

before(async () => {
  setEnv({});
  [emu, v1] = await Promise.all([startEmulator(), startEmulator(['--imds-v1-only'])]);
});

after(async () => {
  await Promise.all([emu.stop(), v1.stop()]);
});

const explicit = (e, extra = {}) => ({ imdsEndpoint: e.urls.imds, caFile: e.env.SSL_CERT_FILE, ...extra });

function is(category, code, errno) {
  return (e) => {
    assert.ok(e instanceof MtlsPopError, `not an MtlsPopError: ${e && e.stack}`);
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'MtlsPopError');
    assert.equal(e.category, category);
    if (code) assert.equal(e.code, code);
    if (errno) assert.equal(e.errno, errno);
    assert.equal(typeof e.status, 'number');
    assert.equal(typeof e.correlationId, 'string');
    assert.ok(e.message.length > 0);
    return true;
  };
}

test('explicit configuration works with nothing in the environment', async () => {
  const c = track(new ManagedIdentityClient(explicit(emu, { mtlsPop: true })));
  assert.equal((await c.acquireToken(RESOURCE)).tokenType, 'mtls_pop');
});

test('invalid_argument: values are the library\'s to judge', () => {
  assert.throws(() => new ManagedIdentityClient({ caFile: '/nonexistent/ca.pem' }), is('invalid_argument', 'invalid_argument', -1));
  assert.throws(() => new ManagedIdentityClient({ imdsEndpoint: 'http://[::1' }), is('invalid_argument', undefined, -1));
  assert.throws(() => new ManagedIdentityClient({ imdsEndpoint: 'ftp://x' }), is('invalid_argument', 'invalid_managed_identity_endpoint', -1));
  assert.throws(() => new ManagedIdentityClient({ timeoutMs: 0 }), is('invalid_argument', 'invalid_argument', -1));
});

test('identity: the platform refuses an unknown identity (HTTP 400, with a correlation id)', async () => {
  const c = track(new ManagedIdentityClient(explicit(emu, { clientId: '00000000-0000-0000-0000-000000000000' })));
  const e = await c.acquireToken(RESOURCE).catch((x) => x);
  is('identity', 'managed_identity_request_failed', -7)(e);
  assert.equal(e.status, 400);
  assert.match(e.correlationId, /^[0-9a-f-]{36}$/);
  assert.throws(() => c.acquireTokenSync(RESOURCE), is('identity', 'managed_identity_request_failed'));
});

test('unsupported: mTLS PoP on a host with IMDS v1 only; Bearer still works there', async () => {
  const c = track(new ManagedIdentityClient(explicit(v1, { mtlsPop: true })));
  await assert.rejects(c.acquireToken(RESOURCE), is('unsupported', 'mtls_pop_token_not_supported_in_imds_v1', -9));
  assert.equal((await c.acquireToken(RESOURCE, { mtlsPop: false })).tokenType, 'Bearer');
});

test('protocol: a server that answers something unusable', async () => {
  const g = await garbage();
  try {
    const c = track(new ManagedIdentityClient({ imdsEndpoint: g.url, timeoutMs: 10000 }));
    await assert.rejects(c.acquireToken(RESOURCE), is('protocol', undefined, -8));
  } finally {
    await g.close();
  }
});

test('network: a refused connection', async () => {
  const c = track(new ManagedIdentityClient(explicit(emu, { mtlsPop: true })));
  const r = await c.acquireToken(RESOURCE);
  const port = await closedPort();
  await assert.rejects(c.call(r, { url: `https://127.0.0.1:${port}/` }), is('network', 'network_error', -6));
});

test('network: the emulator CA not trusted (no caFile, no SSL_CERT_FILE)', async () => {
  const c = track(new ManagedIdentityClient({ imdsEndpoint: emu.urls.imds, mtlsPop: true, timeoutMs: 10000 }));
  await assert.rejects(c.acquireToken(RESOURCE), is('network', 'network_error'));
});

test('timeout and canceled', async () => {
  const hole = await blackhole();
  try {
    const c = track(new ManagedIdentityClient({ imdsEndpoint: hole.url, timeoutMs: 200 }));
    await assert.rejects(c.acquireToken(RESOURCE), is('timeout', 'request_timeout', -3));
    await assert.rejects(c.acquireToken(RESOURCE, { timeoutMs: 5000, signal: AbortSignal.timeout(50) }), is('canceled', 'canceled', -4));
  } finally {
    await hole.close();
  }
});

test('closed', async () => {
  const c = new ManagedIdentityClient(explicit(emu));
  c.close();
  assert.throws(() => c.acquireTokenSync(RESOURCE), is('closed', 'client_closed', -5));
});

test('invalid_token: verify refuses (HTTP 401)', async () => {
  const v = new Verifier({ audiences: RESOURCE, jwksUrl: emu.urls.jwks, caFile: emu.env.SSL_CERT_FILE });
  const e = await v.verify('mtls_pop x.y.z', null).catch((x) => x);
  is('invalid_token', 'invalid_token', -10)(e);
  assert.equal(e.status, 401);
});

test('network from verify: the key set cannot be fetched', async () => {
  const port = await closedPort();
  const v = new Verifier({ audiences: RESOURCE, jwksUrl: `https://127.0.0.1:${port}/keys`, timeoutMs: 5000 });
  const c = track(new ManagedIdentityClient(explicit(emu, { mtlsPop: true })));
  const r = await c.acquireToken(RESOURCE);
  await assert.rejects(v.verify(`mtls_pop ${r.accessToken}`, r.bindingCertificatePem), is('network'));
});

test('statuses the library gives no error object for, and ones this package does not know', () => {
  // The addon's own path from a status to an MtlsPopError (binding.errorFor: tests only). Only
  // the statuses that come without an error object have a code of their own: FORKED and NOMEM
  // from the library, CLOSED from the addon; the library gives every other failure its code.
  is('forked', 'forked', -2)(binding.errorFor(-2));
  is('closed', 'client_closed', -5)(binding.errorFor(-5));
  is('out_of_memory', 'out_of_memory', -12)(binding.errorFor(-12));
  is('internal', 'unknown_error', -13)(binding.errorFor(-13));
  is('unsupported', 'unknown_error', -9)(binding.errorFor(-9));
  for (const unknown of [-14, -99, 1, 2147483647]) {
    const e = binding.errorFor(unknown);
    is('unknown', 'unknown_error', unknown)(e);
    assert.match(e.message, /unknown status/);
  }
  // The class, directly.
  const e = new MtlsPopError('m', { errno: -7, code: 'some_future_code', status: 503, correlationId: 'c' });
  assert.equal(e.code, 'some_future_code');
  assert.equal(e.category, 'identity');
  assert.equal(e.status, 503);
  assert.equal(new MtlsPopError('m').code, 'unknown_error');
  assert.equal(new MtlsPopError('m', { errno: 'x' }).errno, 0);
});

// A bounded test: a promise left unsettled would otherwise hang the run instead of failing it.
test('work that cannot be handed to a thread rejects its promise; no promise is left unsettled', { timeout: 20000 }, async () => {
  // binding.failThreadStarts(n) (tests only) makes the next n hand-offs fail as a failed
  // pthread_create would; binding.openPromises() counts the addon's unsettled promises.
  const c = track(new ManagedIdentityClient(explicit(emu, { mtlsPop: true })));
  const r = await c.acquireToken(RESOURCE);
  const v = new Verifier({ audiences: RESOURCE, jwksUrl: emu.urls.jwks, caFile: emu.env.SSL_CERT_FILE });
  const open = binding.openPromises();
  const noThread = { name: 'Error', code: 'ERR_MTLSPOP_THREAD' };
  binding.failThreadStarts(1);
  await assert.rejects(c.acquireToken(`${RESOURCE}/not-cached`), { ...noThread, message: /starter thread/ });
  binding.failThreadStarts(1);
  await assert.rejects(c.acquireToken(`${RESOURCE}/not-cached`, { signal: new AbortController().signal }), noThread);
  binding.failThreadStarts(1);
  await assert.rejects(c.call(r, { url: emu.urls.resource }), { ...noThread, message: /thread for the call/ });
  binding.failThreadStarts(1);
  await assert.rejects(v.verify(`mtls_pop ${r.accessToken}`, r.bindingCertificatePem), { ...noThread, message: /thread for verify/ });
  assert.equal(binding.openPromises(), open, 'every promise the addon made was settled');
  // The next hand-offs work as ever.
  assert.equal((await c.acquireToken(`${RESOURCE}/not-cached`)).tokenSource, 'identity_provider');
  assert.equal((await c.call(r, { url: emu.urls.resource })).status, 200);
  assert.equal((await v.verify(`mtls_pop ${r.accessToken}`, r.bindingCertificatePem)).tokenType, 'mtls_pop');
  assert.equal(binding.openPromises(), open);
});
