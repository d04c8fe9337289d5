'use strict';

// A resource that refuses unbound tokens (emulator --require-pop): a Bearer token gets 401, the
// PoP token of the same identity gets 200.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { ManagedIdentityClient } = require('mtlspop');
const { startEmulator, setEnv, RESOURCE } = require('./helpers.js');

let emu;
before(async () => {
  emu = await startEmulator(['--require-pop']);
  setEnv(emu.env);
});
after(() => emu.stop());

test('call: Bearer -> 401, mTLS PoP -> 200', async () => {
  const client = new ManagedIdentityClient();
  try {
    const bearer = await client.acquireToken(RESOURCE);
    assert.equal(bearer.tokenType, 'Bearer');
    const refused = await client.call(bearer, { url: emu.urls.resource });
    assert.equal(refused.status, 401);
    assert.equal(refused.ok, false);
    assert.ok(refused.headers.get('www-authenticate'), 'a 401 names the scheme it wants');

    const pop = await client.acquireToken(RESOURCE, { mtlsPop: true });
    const ok = await client.call(pop, { url: emu.urls.resource });
    assert.equal(ok.status, 200);
    assert.equal(ok.json().subject, emu.identities.system_assigned.object_id);
  } finally {
    client.close();
  }
});
