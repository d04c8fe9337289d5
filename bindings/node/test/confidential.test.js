'use strict';

// ConfidentialClient against the emulator's default app: vanilla mTLS PoP, the resource call,
// two-leg FIC, errors, and the README example.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ConfidentialClient, MtlsPopError } = require('mtlspop');
const { startEmulator, setEnv, runNode } = require('./helpers.js');

let emu;
let scope;
before(async () => {
  emu = await startEmulator(['--require-pop']);
  setEnv(emu.env);
  scope = `${emu.urls.resource_id}/.default`;
});
after(() => emu.stop());

function appOptions(extra) {
  const { app } = emu;
  return { authority: app.authority, clientId: app.client_id, mtlsEndpoint: app.mtls_endpoint, ...extra };
}

test('vanilla mTLS PoP with the app certificate, and the resource call', async () => {
  const cc = new ConfidentialClient(appOptions({ certificate: { certFile: emu.app.cert_file, keyFile: emu.app.key_file }, mtlsPop: true }));
  try {
    const result = await cc.acquireTokenForClient(scope);
    assert.equal(result.tokenType, 'mtls_pop');
    assert.match(result.bindingCertificatePem, /BEGIN CERTIFICATE/);
    assert.equal(cc.acquireTokenForClientSync([scope]).tokenSource, 'cache');
    assert.equal((await cc.call(result, { url: emu.urls.resource })).status, 200);
    const bearer = await cc.acquireTokenForClient(scope, { mtlsPop: false });
    assert.equal(bearer.tokenType, 'Bearer');
    assert.equal((await cc.call(bearer, { url: emu.urls.resource })).status, 401); // the resource requires PoP
  } finally {
    cc.close();
  }
});

test('two-leg FIC: leg 1 the managed identity, bound', async () => {
  const cc = new ConfidentialClient(appOptions({ federated: { managedIdentity: {} }, mtlsPop: true }));
  try {
    const result = await cc.acquireTokenForClient(scope);
    assert.equal(result.tokenType, 'mtls_pop');
    assert.equal((await cc.call(result, { url: emu.urls.resource })).status, 200);
  } finally {
    cc.close();
  }
});

test('errors', async () => {
  const secret = new ConfidentialClient(appOptions({ secret: 'not-the-secret' }));
  try {
    await assert.rejects(secret.acquireTokenForClient(scope), (e) => e instanceof MtlsPopError && e.code === 'invalid_client');
    await assert.rejects(secret.acquireTokenForClient(scope, { mtlsPop: true }),
      (e) => e instanceof MtlsPopError && e.code === 'mtls_certificate_not_provided');
  } finally {
    secret.close();
  }
  assert.throws(() => new ConfidentialClient(appOptions({})), TypeError); // no credential
  assert.throws(() => new ConfidentialClient(appOptions({ secret: 's', federated: { managedIdentity: {} } })), TypeError);
  assert.throws(() => new ConfidentialClient(appOptions({ certificate: { certFile: 'c' } })), TypeError);
  assert.throws(() => new ConfidentialClient(appOptions({ secret: 's' })).acquireTokenForClient([]), TypeError);
});

test("the README's confidential example runs", async () => {
  const info = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mtlspop-')), 'emu.json');
  fs.writeFileSync(info, JSON.stringify(emu));
  const r = await runNode([path.join(__dirname, '..', 'examples', 'confidential.mjs'), info], emu.env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((r.stdout.match(/resource: 200/g) ?? []).length, 2, r.stdout);
  assert.match(r.stdout, /two-leg:  mtls_pop/);
});
