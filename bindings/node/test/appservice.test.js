'use strict';

// Azure App Service (emulator --source appservice): IDENTITY_ENDPOINT and IDENTITY_HEADER in the
// environment. Bearer only: mTLS PoP is an IMDSv2 feature.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { ManagedIdentityClient, MtlsPopError } = require('mtlspop');
const { startEmulator, setEnv, RESOURCE } = require('./helpers.js');

let emu;
before(async () => {
  emu = await startEmulator(['--source', 'appservice']);
  setEnv(emu.env);
});
after(() => emu.stop());

test('App Service: a Bearer token, system- and user-assigned; PoP is unsupported there', async () => {
  const client = new ManagedIdentityClient();
  const uami = new ManagedIdentityClient({ clientId: emu.identities.user_assigned[0].client_id });
  try {
    const r = await client.acquireToken(RESOURCE);
    assert.equal(r.tokenType, 'Bearer');
    assert.equal(r.bindingCertificatePem, null);
    assert.equal(client.acquireTokenSync(RESOURCE).tokenSource, 'cache');
    const claims = (t) => JSON.parse(Buffer.from(t.accessToken.split('.')[1], 'base64url').toString());
    assert.equal(claims(r).oid, emu.identities.system_assigned.object_id);
    assert.equal(claims(await uami.acquireToken(RESOURCE)).oid, emu.identities.user_assigned[0].object_id);
    assert.equal((await client.call(r, { url: emu.urls.resource })).status, 200);
    await assert.rejects(client.acquireToken(RESOURCE, { mtlsPop: true }),
      (e) => e instanceof MtlsPopError && e.category === 'unsupported' && e.code === 'mtls_pop_not_supported_for_environment');
  } finally {
    client.close();
    uami.close();
  }
});
