'use strict';

// Azure Arc (emulator --source arc): the agent answers 401 with the path of a key file, which
// clients read only from /var/opt/azcmagent/tokens, so this case needs root.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { ManagedIdentityClient } = require('mtlspop');
const { startEmulator, setEnv, RESOURCE } = require('./helpers.js');

const root = typeof process.getuid === 'function' && process.getuid() === 0;
const skip = root ? false : 'Azure Arc needs root: key files are read only from /var/opt/azcmagent/tokens';
if (skip) console.log(`# SKIP arc: ${skip}`);

let emu;
before(async () => {
  if (skip) return;
  emu = await startEmulator(['--source', 'arc', '--arc-key-dir', '/var/opt/azcmagent/tokens']);
  setEnv(emu.env);
});
after(() => emu && emu.stop());

test('Azure Arc: a Bearer token through the key-file challenge', { skip }, async () => {
  const client = new ManagedIdentityClient();
  try {
    const r = await client.acquireToken(RESOURCE);
    assert.equal(r.tokenType, 'Bearer');
    assert.equal(r.tokenSource, 'identity_provider');
    assert.equal(client.acquireTokenSync(RESOURCE).tokenSource, 'cache');
    assert.equal((await client.call(r, { url: emu.urls.resource })).status, 200);
  } finally {
    client.close();
  }
});
