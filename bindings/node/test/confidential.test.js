'use strict';

// ConfidentialClient against the emulator's default app: vanilla mTLS PoP, the resource call,
// two-leg FIC, errors, and the README example.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
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

test('two-leg FIC: leg 1 another app (the default app, with its certificate)', async () => {
  // The emulator's default app trusts itself as a federated credential, so leg 1 can be the
  // app with its certificate; with PoP the final token is bound to leg 1's certificate.
  const certificate = { certFile: emu.app.cert_file, keyFile: emu.app.key_file };
  const appDer = new crypto.X509Certificate(fs.readFileSync(emu.app.cert_file)).raw;
  for (const mtlsPop of [true, false]) {
    const leg1 = { authority: emu.app.authority, clientId: emu.app.client_id, mtlsEndpoint: emu.app.mtls_endpoint, certificate };
    const cc = new ConfidentialClient(appOptions({ federated: { confidential: leg1, mtlsPop }, mtlsPop }));
    try {
      const r = await cc.acquireTokenForClient(scope);
      const claims = JSON.parse(Buffer.from(r.accessToken.split('.')[1], 'base64url').toString());
      assert.equal(r.tokenType, mtlsPop ? 'mtls_pop' : 'Bearer');
      assert.equal(claims.appid, emu.app.client_id);
      if (mtlsPop) {
        assert.ok(new crypto.X509Certificate(r.bindingCertificatePem).raw.equals(appDer), 'bound to leg 1\'s certificate');
        assert.equal(claims.cnf['x5t#S256'], r.bindingCertificateThumbprint);
      }
      // This emulator's resource requires PoP (--require-pop): it refuses the Bearer token.
      assert.equal((await cc.call(r, { url: emu.urls.resource })).status, mtlsPop ? 200 : 401);
    } finally {
      cc.close();
    }
  }
});

test('errors', async () => {
  const secret = new ConfidentialClient(appOptions({ secret: 'not-the-secret' }));
  try {
    await assert.rejects(secret.acquireTokenForClient(scope), (e) => e instanceof MtlsPopError && e.code === 'invalid_client');
    await assert.rejects(secret.acquireTokenForClient(scope, { mtlsPop: true }),
      (e) => e instanceof MtlsPopError && e.code === 'mtls_certificate_not_provided');
    // Scopes: a string or an array of strings; what they may be, the library says.
    assert.throws(() => secret.acquireTokenForClient(42), TypeError);
    await assert.rejects(secret.acquireTokenForClient([]), (e) => e instanceof MtlsPopError && e.code === 'invalid_argument');
  } finally {
    secret.close();
  }
  // Which members are required, and in which combinations, is the library's rule, and its error.
  const refused = (message) => (e) => e instanceof MtlsPopError && e.code === 'invalid_argument' && e.errno === -1 && message.test(e.message);
  const oneCredential = refused(/exactly one of config\.certificate, config\.secret and config\.federated/);
  assert.throws(() => new ConfidentialClient(appOptions({})), oneCredential); // no credential
  assert.throws(() => new ConfidentialClient(appOptions({ secret: 's', federated: { managedIdentity: {} } })), oneCredential);
  assert.throws(() => new ConfidentialClient(appOptions({ certificate: { certFile: 'c' } })), refused(/config\.certificate\.key_file is required/));
  assert.throws(() => new ConfidentialClient({ clientId: 'c', secret: 's' }), refused(/config\.authority is required/));
  const oneLeg1 = refused(/exactly one of managed_identity and confidential/);
  assert.throws(() => new ConfidentialClient(appOptions({ federated: {} })), oneLeg1);
  assert.throws(() => new ConfidentialClient(appOptions({ federated: { managedIdentity: {}, confidential: appOptions({ secret: 's' }) } })), oneLeg1);
  // Types and option names are JavaScript's to check.
  assert.throws(() => new ConfidentialClient(appOptions({ secret: 42 })), TypeError);
  assert.throws(() => new ConfidentialClient(appOptions({ certificate: 'cert.pem' })), TypeError);
  assert.throws(() => new ConfidentialClient(appOptions({ federated: { confidential: { ...appOptions({ secret: 's' }), federated: {} } } })),
    { name: 'TypeError', message: /Unknown option "federated" in federated\.confidential/ });
});

test("the README's confidential example runs", async () => {
  const info = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mtlspop-')), 'emu.json');
  fs.writeFileSync(info, JSON.stringify(emu));
  const r = await runNode([path.join(__dirname, '..', 'examples', 'confidential.mjs'), info], emu.env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((r.stdout.match(/resource: 200/g) ?? []).length, 2, r.stdout);
  assert.match(r.stdout, /two-leg:  mtls_pop/);
});
