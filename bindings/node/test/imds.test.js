'use strict';

// The package against the emulator's IMDS (v1 Bearer and v2 mTLS PoP), configured the way an
// application on a VM is: through the environment, set in process.env before clients exist.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const util = require('node:util');
const { X509Certificate } = require('node:crypto');
const mtlspop = require('mtlspop');
const { ManagedIdentityClient, AuthenticationResult, CallResponse, MtlsPopError, Verifier, verify } = mtlspop;
const { startEmulator, setEnv, blackhole, RESOURCE } = require('./helpers.js');

const binding = mtlspop[Symbol.for('mtlspop.binding')];

// refusedArg: an MtlsPopError of the library's own for a value it does not accept.
const refusedArg = (message, code = 'invalid_argument') => (e) =>
  e instanceof MtlsPopError && e.code === code && e.errno === -1 && e.category === 'invalid_argument' &&
  (message === undefined || message.test(e.message));

// Clients a test opens are closed after it (Node 20 has no `using` declarations yet).
const opened = [];
const track = (c) => (opened.push(c), c);
afterEach(() => { while (opened.length) opened.pop().close(); });

let emu;
let hole;

before(async () => {
  emu = await startEmulator();
  setEnv(emu.env);
  hole = await blackhole();
});

after(async () => {
  await hole.close();
  await emu.stop();
});

test('the installed package is the one under test, with the library it ships', () => {
  assert.match(require.resolve('mtlspop'), /node_modules[\\/]mtlspop[\\/]lib[\\/]index\.js$/);
  assert.equal(mtlspop.version, require('mtlspop/package.json').version);
});

test('process.env reaches the library: the emulator found through AZURE_POD_IDENTITY_AUTHORITY_HOST', async () => {
  // Were process.env not the C environment, this client would go to 169.254.169.254.
  const client = new ManagedIdentityClient({ timeoutMs: 10000 });
  try {
    const r = await client.acquireToken(RESOURCE);
    assert.equal(r.tokenType, 'Bearer');
  } finally {
    client.close();
  }
});

test('mTLS PoP: token, certificate, thumbprint; then a cache hit', async () => {
  const client = track(new ManagedIdentityClient({ mtlsPop: true }));
  const r = await client.acquireToken(RESOURCE);
  assert.ok(r instanceof AuthenticationResult);
  assert.equal(r.tokenType, 'mtls_pop');
  assert.equal(r.tokenSource, 'identity_provider');
  assert.match(r.accessToken, /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/);
  assert.match(r.bindingCertificatePem, /^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
  assert.match(r.bindingCertificateThumbprint, /^[\w-]{43}$/);
  // The thumbprint is the base64url SHA-256 of the certificate's DER: the token's cnf.
  const cert = new X509Certificate(r.bindingCertificatePem);
  const { createHash } = require('node:crypto');
  assert.equal(createHash('sha256').update(cert.raw).digest('base64url'), r.bindingCertificateThumbprint);
  const payload = JSON.parse(Buffer.from(r.accessToken.split('.')[1], 'base64url').toString());
  assert.equal(payload.cnf['x5t#S256'], r.bindingCertificateThumbprint);
  assert.ok(r.expiresOn instanceof Date && r.expiresOn.getTime() > Date.now() + 3600e3);
  assert.ok(r.refreshOn instanceof Date && r.refreshOn < r.expiresOn && r.refreshOn.getTime() > Date.now());

  const hit = await client.acquireToken(RESOURCE);
  assert.equal(hit.tokenSource, 'cache');
  assert.equal(hit.accessToken, r.accessToken);
  const sync = client.acquireTokenSync(RESOURCE);
  assert.equal(sync.tokenSource, 'cache');
  assert.equal(sync.accessToken, r.accessToken);
  assert.equal(sync.bindingCertificatePem, r.bindingCertificatePem);
  assert.equal(client.acquireTokenSync(`${RESOURCE}/.default`).accessToken, r.accessToken);

  const fresh = await client.acquireToken(RESOURCE, { forceRefresh: true });
  assert.equal(fresh.tokenSource, 'identity_provider');
  assert.notEqual(fresh.accessToken, r.accessToken);
  assert.equal(fresh.bindingCertificateThumbprint, r.bindingCertificateThumbprint, 'one binding key per client');
  assert.equal(client.acquireTokenSync(RESOURCE).accessToken, fresh.accessToken);
});

test('Bearer, by default and per call; PoP per call on a Bearer client', async () => {
  const client = track(new ManagedIdentityClient());
  const b = client.acquireTokenSync(RESOURCE); // a miss, fetched synchronously
  assert.equal(b.tokenType, 'Bearer');
  assert.equal(b.bindingCertificatePem, null);
  assert.equal(b.bindingCertificateThumbprint, null);
  const payload = JSON.parse(Buffer.from(b.accessToken.split('.')[1], 'base64url').toString());
  assert.equal(payload.cnf, undefined);
  const p = await client.acquireToken(RESOURCE, { mtlsPop: true });
  assert.equal(p.tokenType, 'mtls_pop');
  assert.equal(client.acquireTokenSync(RESOURCE, { mtlsPop: true }).tokenSource, 'cache');
  assert.equal(client.acquireTokenSync(RESOURCE, { mtlsPop: false }).accessToken, b.accessToken);
  const pc = track(new ManagedIdentityClient({ mtlsPop: true }));
  assert.equal((await pc.acquireToken(RESOURCE, { mtlsPop: false })).tokenType, 'Bearer');
});

test('every user-assigned selector, and the system-assigned identity', async (t) => {
  const uami = emu.identities.user_assigned[0];
  const sami = emu.identities.system_assigned;
  const oid = async (options) => {
    const c = track(new ManagedIdentityClient({ ...options, mtlsPop: true }));
    const r = await c.acquireToken(RESOURCE);
    return JSON.parse(Buffer.from(r.accessToken.split('.')[1], 'base64url').toString());
  };
  await t.test('clientId', async () => assert.equal((await oid({ clientId: uami.client_id })).oid, uami.object_id));
  await t.test('resourceId', async () => assert.equal((await oid({ resourceId: uami.resource_id })).oid, uami.object_id));
  await t.test('objectId', async () => assert.equal((await oid({ objectId: uami.object_id })).oid, uami.object_id));
  await t.test('system-assigned', async () => assert.equal((await oid({})).oid, sami.object_id));
  await t.test('Bearer with clientId', async () => {
    const c = track(new ManagedIdentityClient({ clientId: uami.client_id }));
    const r = await c.acquireToken(RESOURCE);
    assert.equal(JSON.parse(Buffer.from(r.accessToken.split('.')[1], 'base64url').toString()).oid, uami.object_id);
  });
  await t.test('only one selector', () => {
    assert.throws(() => new ManagedIdentityClient({ clientId: uami.client_id, objectId: uami.object_id }),
      { name: 'TypeError', message: /Only one of clientId, resourceId and objectId/ });
  });
});

test('call: 200 with the bound certificate; headers and body pass through', async () => {
  const client = track(new ManagedIdentityClient({ mtlsPop: true }));
  const r = await client.acquireToken(RESOURCE);
  const res = await client.call(r, { url: emu.urls.resource, headers: { 'x-test': 'one' } });
  assert.ok(res instanceof CallResponse);
  assert.equal(res.status, 200);
  assert.equal(res.ok, true);
  assert.match(res.headers.get('content-type'), /application\/json/);
  assert.ok(Buffer.isBuffer(res.body));
  const body = res.json();
  assert.equal(body.subject, emu.identities.system_assigned.object_id);
  const post = await client.call(r, { url: new URL(emu.urls.resource), method: 'POST', body: Buffer.from([1, 2, 3]), timeoutMs: 5000 });
  assert.equal(typeof post.status, 'number');
  // A Bearer token from a Bearer client works too when the resource does not insist on PoP.
  const bc = track(new ManagedIdentityClient());
  const b = await bc.acquireToken(RESOURCE);
  assert.equal((await bc.call(b, { url: emu.urls.resource })).status, 200);
  // A token from another client of the process is accepted.
  assert.equal((await bc.call(r, { url: emu.urls.resource })).status, 200);
});

test('call: types and option names are checked in JavaScript, values by the library', async () => {
  const client = track(new ManagedIdentityClient({ mtlsPop: true }));
  const r = client.acquireTokenSync(RESOURCE);
  await assert.rejects(client.call({ accessToken: 'x' }, { url: emu.urls.resource }), { name: 'TypeError', message: /AuthenticationResult/ });
  await assert.rejects(client.call(r), { name: 'TypeError', message: /"request"/ });
  await assert.rejects(client.call(r, { uri: 'x' }), { name: 'TypeError', message: /did you mean "url"/ });
  await assert.rejects(client.call(r, { url: emu.urls.resource, body: 42 }), { name: 'TypeError' });
  await assert.rejects(client.call(r, { url: emu.urls.resource, timeoutMs: '5' }), { name: 'TypeError' });
  await assert.rejects(client.call(r, { url: emu.urls.resource, headers: new Map([[1, 'x']]) }), { name: 'TypeError' });
  // Values: the library's answers (capi/call.go), as every binding gets them.
  await assert.rejects(client.call(r, { method: 'GET' }), refusedArg(/request\.url is required/));
  await assert.rejects(client.call(r, { url: emu.urls.resource.replace('https:', 'http:') }), refusedArg(/https/));
  await assert.rejects(client.call(r, { url: emu.urls.resource, method: 'GE T' }), refusedArg(/invalid method/));
  await assert.rejects(client.call(r, { url: emu.urls.resource, headers: { 'x a': 'b' } }), refusedArg(/not a valid header name/));
  for (const bad of ['a\r\nb', 'a\nb', 'a\0b']) {
    await assert.rejects(client.call(r, { url: emu.urls.resource, headers: { 'x-a': ['ok', bad] } }), refusedArg(/line break or NUL/));
  }
  await assert.rejects(client.call(r, { url: emu.urls.resource, timeoutMs: 0 }), refusedArg(/request\.timeout_ms/));
  await assert.rejects(client.call(r, { url: emu.urls.resource, timeoutMs: 1.5 }), refusedArg(/request\.timeout_ms/));
});

test('call: timeout and refused connection', async () => {
  const client = track(new ManagedIdentityClient({ mtlsPop: true }));
  const r = client.acquireTokenSync(RESOURCE);
  const t0 = Date.now();
  await assert.rejects(client.call(r, { url: `https://127.0.0.1:${hole.port}/`, timeoutMs: 300 }),
    (e) => e instanceof MtlsPopError && e.code === 'request_timeout' && e.category === 'timeout' && e.errno === -3);
  assert.ok(Date.now() - t0 < 5000);
});

test('verify: the resource side, with the certificate in every accepted form', async () => {
  const client = track(new ManagedIdentityClient({ mtlsPop: true }));
  const other = track(new ManagedIdentityClient({ mtlsPop: true }));
  const r = await client.acquireToken(RESOURCE);
  const o = await other.acquireToken(RESOURCE);
  const v = new Verifier({ audiences: [RESOURCE], issuer: emu.urls.issuer, jwksUrl: emu.urls.jwks, caFile: emu.env.SSL_CERT_FILE });
  const authz = `mtls_pop ${r.accessToken}`;
  const ok = await v.verify(authz, r.bindingCertificatePem);
  assert.equal(ok.tokenType, 'mtls_pop');
  assert.equal(ok.bindingCertificateThumbprint, r.bindingCertificateThumbprint);
  assert.equal(ok.clientId, emu.identities.system_assigned.client_id);
  assert.equal(ok.subject, emu.identities.system_assigned.object_id);
  assert.equal(ok.claims.aud, RESOURCE);
  const x509 = new X509Certificate(r.bindingCertificatePem);
  assert.equal(v.verifySync(authz, x509.raw).subject, ok.subject); // DER
  assert.equal(v.verifySync(authz, x509).subject, ok.subject);
  assert.equal(v.verifySync(authz, { raw: x509.raw }).subject, ok.subject); // tls peer certificate
  assert.equal((await verify(authz, { clientCertificate: r.bindingCertificatePem, audiences: RESOURCE, jwksUrl: emu.urls.jwks, caFile: emu.env.SSL_CERT_FILE })).subject, ok.subject);

  const refused = (code = 'invalid_token') => (e) => e instanceof MtlsPopError && e.code === code && e.status === 401 && e.category === 'invalid_token';
  await assert.rejects(v.verify(authz, o.bindingCertificatePem), refused()); // another certificate
  await assert.rejects(v.verify(authz), refused()); // no certificate
  await assert.rejects(v.verify(authz, {}), refused()); // getPeerCertificate() without one
  await assert.rejects(v.verify(undefined, r.bindingCertificatePem), refused()); // no header
  await assert.rejects(v.verify('mtls_pop not-a-jwt', r.bindingCertificatePem), refused());
  assert.throws(() => v.verifySync(`Bearer ${r.accessToken}`, o.bindingCertificatePem), refused());

  // Unbound Bearer tokens: refused unless allowed.
  const bc = track(new ManagedIdentityClient());
  const b = await bc.acquireToken(RESOURCE);
  await assert.rejects(v.verify(`Bearer ${b.accessToken}`), refused());
  const lax = new Verifier({ audiences: RESOURCE, jwksUrl: emu.urls.jwks, caFile: emu.env.SSL_CERT_FILE, allowUnbound: true });
  const bv = await lax.verify(`Bearer ${b.accessToken}`);
  assert.equal(bv.tokenType, 'Bearer');
  assert.equal(bv.bindingCertificateThumbprint, null);

  // A header holding U+0000 (which a C string would cut short) is an invalid token too.
  for (const nul of [`${authz}\0x`, `\0${authz}`]) {
    await assert.rejects(v.verify(nul, r.bindingCertificatePem), refused());
    assert.throws(() => v.verifySync(nul, r.bindingCertificatePem), refused());
    await assert.rejects(verify(nul, { clientCertificate: r.bindingCertificatePem, audiences: RESOURCE, jwksUrl: emu.urls.jwks }), refused());
  }

  // The configuration's rules are the library's: it refuses a bad one when verifying.
  const badConfig = async (options, message) => {
    const bad = new Verifier(options);
    await assert.rejects(bad.verify(authz, r.bindingCertificatePem), refusedArg(message));
    assert.throws(() => bad.verifySync(authz, r.bindingCertificatePem), refusedArg(message));
  };
  await badConfig({ audiences: [], jwksUrl: emu.urls.jwks }, /config\.audiences is required/);
  await badConfig({ audiences: [''], jwksUrl: emu.urls.jwks }, /config\.audiences/);
  await badConfig({ audiences: RESOURCE }, /exactly one of jwks_url and jwks/);
  await badConfig({ audiences: RESOURCE, jwksUrl: emu.urls.jwks, jwks: { keys: [] } }, /exactly one of jwks_url and jwks/);
  await badConfig({ audiences: RESOURCE, jwks: { key: [] } }, /config\.jwks/);
  await badConfig({ audiences: RESOURCE, jwksUrl: emu.urls.jwks, leewaySeconds: 601 }, /config\.leeway_s/);
  // What JavaScript needs to build the configuration: types and option names.
  assert.throws(() => new Verifier({ audience: RESOURCE, jwksUrl: emu.urls.jwks }), { name: 'TypeError', message: /did you mean "audiences"/ });
  assert.throws(() => new Verifier({ audiences: 42, jwksUrl: emu.urls.jwks }), { name: 'TypeError' });
  assert.throws(() => new Verifier({ audiences: RESOURCE, jwksUrl: emu.urls.jwks, leewaySeconds: '5' }), { name: 'TypeError' });
  assert.throws(() => new Verifier({ audiences: RESOURCE, jwks: '{not json' }), { name: 'TypeError', message: /not valid JSON/ });
  assert.throws(() => v.verifySync(authz, 42), { name: 'TypeError' });
});

test('1,000 concurrent acquireToken promises resolve while the event loop keeps ticking', async () => {
  const client = track(new ManagedIdentityClient({ mtlsPop: true }));
  await client.acquireToken(RESOURCE); // the binding certificate, once
  let ticks = 0;
  let maxGap = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    ticks++;
  }, 5);
  const t0 = performance.now();
  try {
    // Distinct resources: 1,000 real token requests, not one coalesced fetch.
    const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => client.acquireToken(`${RESOURCE}/r${i}`)));
    const elapsed = performance.now() - t0;
    assert.equal(results.length, 1000);
    assert.ok(results.every((r) => r.tokenType === 'mtls_pop' && r.tokenSource === 'identity_provider'));
    assert.equal(new Set(results.map((r) => r.accessToken)).size, 1000);
    console.log(`# 1,000 concurrent PoP acquisitions: ${elapsed.toFixed(0)} ms, ${ticks} timer ticks, longest gap ${maxGap.toFixed(1)} ms`);
    assert.ok(ticks >= Math.min(10, elapsed / 5 / 4), `the timer ticked ${ticks} times in ${elapsed.toFixed(0)} ms`);
    assert.ok(maxGap < 250, `the event loop stalled for ${maxGap.toFixed(0)} ms`);
  } finally {
    clearInterval(timer);
  }
});

test('AbortSignal cancels an acquisition in flight', async () => {
  const client = track(new ManagedIdentityClient({ imdsEndpoint: hole.url, timeoutMs: 60000 }));
  const ac = new AbortController();
  const t0 = Date.now();
  const p = client.acquireToken(RESOURCE, { signal: ac.signal });
  setTimeout(() => ac.abort(new Error('enough')), 50);
  await assert.rejects(p, (e) => e instanceof MtlsPopError && e.code === 'canceled' && e.category === 'canceled' && e.cause.message === 'enough');
  assert.ok(Date.now() - t0 < 5000);
  // Already aborted: rejected without starting.
  await assert.rejects(client.acquireToken(RESOURCE, { signal: AbortSignal.abort() }), { code: 'canceled' });
  // AbortSignal.timeout
  await assert.rejects(client.acquireToken(RESOURCE, { signal: AbortSignal.timeout(100) }),
    (e) => e.code === 'canceled' && e.cause.name === 'TimeoutError');
  // A signal that never fires changes nothing.
  const ok = track(new ManagedIdentityClient());
  assert.equal((await ok.acquireToken(RESOURCE, { signal: new AbortController().signal })).tokenType, 'Bearer');
  assert.equal((await ok.acquireToken(RESOURCE, { signal: AbortSignal.abort() }).catch((e) => e)).code, 'canceled');
});

test('timeouts: the client\'s and the call\'s, blocking and async', async () => {
  const timedOut = (e) => e instanceof MtlsPopError && e.code === 'request_timeout' && e.errno === -3 && e.category === 'timeout';
  {
    const client = track(new ManagedIdentityClient({ imdsEndpoint: hole.url, timeoutMs: 300 }));
    const t0 = Date.now();
    await assert.rejects(client.acquireToken(RESOURCE), timedOut);
    assert.throws(() => client.acquireTokenSync(RESOURCE), timedOut);
    assert.ok(Date.now() - t0 < 10000);
  }
  {
    const client = track(new ManagedIdentityClient({ imdsEndpoint: hole.url }));
    await assert.rejects(client.acquireToken(RESOURCE, { timeoutMs: 200, mtlsPop: true }), timedOut);
    assert.throws(() => client.acquireTokenSync(RESOURCE, { timeoutMs: 200 }), timedOut);
  }
});

test('close(): in-flight requests are canceled; use after close throws client_closed', async () => {
  const client = new ManagedIdentityClient({ imdsEndpoint: hole.url });
  const pending = client.acquireToken(RESOURCE);
  await new Promise((r) => setTimeout(r, 50));
  client.close();
  await assert.rejects(pending, (e) => e instanceof MtlsPopError && (e.category === 'canceled' || e.category === 'closed'));
  assert.equal(client.closed, true);
  client.close(); // idempotent
  client[Symbol.dispose]();
  const closed = (e) => e instanceof MtlsPopError && e.code === 'client_closed' && e.errno === -5 && e.category === 'closed';
  assert.throws(() => client.acquireTokenSync(RESOURCE), closed);
  await assert.rejects(client.acquireToken(RESOURCE), closed);

  const live = track(new ManagedIdentityClient({ mtlsPop: true }));
  const r = await live.acquireToken(RESOURCE);
  live.close();
  await assert.rejects(live.call(r, { url: emu.urls.resource }), closed);
  // A result outlives its client.
  assert.equal(r.tokenType, 'mtls_pop');
  assert.match(r.bindingCertificatePem, /BEGIN CERTIFICATE/);
  const again = track(new ManagedIdentityClient({ mtlsPop: true }));
  assert.equal((await again.call(r, { url: emu.urls.resource })).status, 200);
});

test('util.inspect, toString and toJSON redact the token', async () => {
  const client = track(new ManagedIdentityClient({ mtlsPop: true }));
  const r = await client.acquireToken(RESOURCE);
  for (const text of [util.inspect(r), util.inspect({ nested: [r] }, { depth: 5 }), String(r), JSON.stringify(r), util.format('%o %O %s %j', r, r, r, r)]) {
    assert.ok(!text.includes(r.accessToken), text);
    assert.ok(!text.includes(r.accessToken.split('.')[1]), text);
  }
  assert.match(util.inspect(r), /AuthenticationResult \{[\s\S]*accessToken: '\[redacted\]'/);
  assert.match(util.inspect(r), /tokenType: 'mtls_pop'/);
  assert.equal(JSON.parse(JSON.stringify(r)).accessToken, '[redacted]');
  assert.throws(() => new AuthenticationResult(), TypeError);
  // Read-only.
  assert.throws(() => { 'use strict'; r.accessToken = 'x'; }, TypeError);
  // Each result has its own Date; changing it changes no other result.
  const again = client.acquireTokenSync(RESOURCE);
  again.expiresOn.setTime(0);
  assert.notEqual(client.acquireTokenSync(RESOURCE).expiresOn.getTime(), 0);
});

test('argument checks: types and option names are TypeErrors; values are the library\'s to refuse', async () => {
  // What JavaScript must check to build the configuration: a TypeError before any native call.
  assert.throws(() => new ManagedIdentityClient('system'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => new ManagedIdentityClient({ clientID: 'x' }), { name: 'TypeError', message: /Unknown option "clientID".*did you mean "clientId"/ });
  assert.throws(() => new ManagedIdentityClient({ mtls_pop: true }), { message: /did you mean "mtlsPop"/ });
  assert.throws(() => new ManagedIdentityClient({ forceRefresh: true }), { message: /option of acquireToken/ });
  assert.throws(() => new ManagedIdentityClient({ mtlsPop: 'yes' }), { name: 'TypeError', message: /"mtlsPop" option must be a boolean/ });
  assert.throws(() => new ManagedIdentityClient({ timeoutMs: '100' }), { name: 'TypeError' });
  assert.throws(() => new ManagedIdentityClient({ key: 42 }), { name: 'TypeError' });
  assert.throws(() => new ManagedIdentityClient({ key: { provider: 'tpm', statedir: '/x' } }), { message: /did you mean "stateDir"/ });
  assert.throws(() => new ManagedIdentityClient({ imdsEndpoint: 42 }), { name: 'TypeError' });
  // Values: the library's own answers (capi/config.go), as every binding gets them.
  assert.throws(() => new ManagedIdentityClient({ clientId: '' }), refusedArg(/config\.identity\.id must not be empty/));
  for (const t of [0, -1, 86400001, 1.5, NaN]) {
    assert.throws(() => new ManagedIdentityClient({ timeoutMs: t }), refusedArg(/config\.timeout_ms/), String(t));
  }
  assert.throws(() => new ManagedIdentityClient({ key: 'hsm' }), refusedArg(/config\.key\.provider "hsm"/));
  assert.throws(() => new ManagedIdentityClient({ key: { device: '/dev/tpmrm0' } }), refusedArg(/need "provider": "tpm"/));
  assert.throws(() => new ManagedIdentityClient({ imdsEndpoint: 'ftp://x' }), refusedArg(undefined, 'invalid_managed_identity_endpoint'));
  assert.throws(() => new ManagedIdentityClient({ caFile: '' }), refusedArg(/config\.ca_file must not be empty/));
  // Shapes the library accepts (no I/O at creation), whitespace and all.
  new ManagedIdentityClient({ key: 'software' }).close();
  new ManagedIdentityClient({ key: { provider: 'software' } }).close();
  new ManagedIdentityClient({ key: { provider: 'software', attest: true } }).close();
  new ManagedIdentityClient({ clientId: ' ' }).close();
  new ManagedIdentityClient({ imdsEndpoint: new URL(emu.env.AZURE_POD_IDENTITY_AUTHORITY_HOST) }).close();

  const client = track(new ManagedIdentityClient());
  await assert.rejects(client.acquireToken(42), { name: 'TypeError', message: /"resource" argument must be a string/ });
  await assert.rejects(client.acquireToken(RESOURCE, { mtlsPoP: true }), { message: /did you mean "mtlsPop"/ });
  await assert.rejects(client.acquireToken(RESOURCE, { clientId: 'x' }), { message: /identity is chosen when the client is created/ });
  await assert.rejects(client.acquireToken(RESOURCE, { signal: {} }), { name: 'TypeError', message: /AbortSignal/ });
  await assert.rejects(client.acquireToken(RESOURCE, { claims: {} }), { name: 'TypeError' });
  await assert.rejects(client.acquireToken(RESOURCE, { timeoutMs: '5' }), { name: 'TypeError' });
  assert.throws(() => client.acquireTokenSync(RESOURCE, { signal: AbortSignal.abort() }), { message: /cannot be aborted/ });
  assert.throws(() => client.acquireTokenSync(null), { name: 'TypeError' });
  assert.throws(() => client.acquireTokenSync(RESOURCE, []), { name: 'TypeError' });
  // A C string cannot hold U+0000: the addon refuses it rather than cut the resource short.
  assert.throws(() => client.acquireTokenSync('api://a\0b'), { name: 'TypeError', message: /U\+0000/ });
  await assert.rejects(client.acquireToken('api://a\0b'), { name: 'TypeError', message: /U\+0000/ });
  // Values: the library's answers.
  await assert.rejects(client.acquireToken(''), refusedArg());
  assert.throws(() => client.acquireTokenSync(''), refusedArg());
  assert.throws(() => client.acquireTokenSync('x'.repeat((1 << 20) + 1)), refusedArg(/MTLSPOP_MAX_INPUT/));
  // An option the library refuses is refused on every path: also when the token is cached (the
  // cache-only probe carries it too).
  await client.acquireToken(RESOURCE);
  assert.equal((await client.acquireToken(RESOURCE, { timeoutMs: 5000 })).tokenSource, 'cache');
  await assert.rejects(client.acquireToken(RESOURCE, { timeoutMs: -1 }), refusedArg(/options\.timeout_ms/));
  assert.throws(() => client.acquireTokenSync(RESOURCE, { timeoutMs: 0 }), refusedArg(/options\.timeout_ms/));
});

test('the cache-only probe: a hit answers at once; it waits only for acquisitions in flight', async () => {
  // Through the addon itself (the package's test hook): acquireProbe is acquireToken's first,
  // cache-only try, which returns null when it cannot answer (a miss, or skipped).
  const probe = '{"cache_only":true}';
  const h = binding.clientNew(null);
  const stalled = binding.clientNew(JSON.stringify({ endpoints: { imds: hole.url }, timeout_ms: 60000 }));
  try {
    assert.equal(binding.acquireProbe(h, `${RESOURCE}/probe`, probe), null); // a miss
    const fetched = await binding.acquireAsync(h, `${RESOURCE}/probe`, null);
    assert.equal(fetched.tokenSource, 'identity_provider');
    const hit = binding.acquireProbe(h, `${RESOURCE}/probe`, probe);
    assert.ok(hit !== null, 'a cached token is found by the probe');
    assert.equal(hit.tokenSource, 'cache');
    assert.equal(hit.accessToken, fetched.accessToken);

    // A call and a verification in flight (each waiting on a server that never answers) leave
    // the probe alone: they wait on threads of their own.
    const call = binding.call(h, fetched.handle, JSON.stringify({ url: `https://127.0.0.1:${hole.port}/`, timeout_ms: 60000 }));
    const verifying = binding.verifyAsync(JSON.stringify({ audiences: [RESOURCE], jwks_url: `https://127.0.0.1:${hole.port}/keys`, timeout_ms: 60000 }),
      `Bearer ${fetched.accessToken}`, null);
    const [callDone, verifyDone] = [call.catch((e) => e), verifying.catch((e) => e)];
    assert.equal(binding.acquireProbe(h, `${RESOURCE}/probe`, probe)?.accessToken, fetched.accessToken,
      'the probe answers while a call and a verification are in flight');

    // An acquisition in flight (on another client, even) is what the probe stands aside for.
    const started = {};
    const pending = binding.acquireAsync(stalled, RESOURCE, null, started).catch((e) => e);
    assert.equal(binding.acquireProbe(h, `${RESOURCE}/probe`, probe), null, 'skipped while an acquisition is in flight');
    binding.cancel(started.request);
    assert.equal((await pending).code, 'canceled');
    assert.equal(binding.acquireProbe(h, `${RESOURCE}/probe`, probe)?.accessToken, fetched.accessToken);

    binding.clientClose(h); // cancels the call
    assert.equal((await callDone).code, 'canceled');
    await hole.close(); // ends the key-set fetch
    hole = await blackhole();
    assert.equal((await verifyDone).category, 'network');
  } finally {
    binding.clientClose(h);
    binding.clientClose(stalled);
  }
});

test('claims: a claims challenge is sent and always fetches', async () => {
  const client = track(new ManagedIdentityClient());
  await client.acquireToken(RESOURCE);
  const r = await client.acquireToken(RESOURCE, { claims: '{"access_token":{"nbf":{"essential":true,"value":"1"}}}' });
  assert.equal(r.tokenSource, 'identity_provider');
});
