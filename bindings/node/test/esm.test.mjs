// ESM and CommonJS load the same module: one addon, one set of classes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import mtlspop, { ManagedIdentityClient, MtlsPopError, AuthenticationResult, CallResponse, Verifier, verify, version } from 'mtlspop';

const require = createRequire(import.meta.url);

test('import and require give the same exports', () => {
  const cjs = require('mtlspop');
  assert.equal(ManagedIdentityClient, cjs.ManagedIdentityClient);
  assert.equal(MtlsPopError, cjs.MtlsPopError);
  assert.equal(AuthenticationResult, cjs.AuthenticationResult);
  assert.equal(CallResponse, cjs.CallResponse);
  assert.equal(Verifier, cjs.Verifier);
  assert.equal(verify, cjs.verify);
  assert.equal(version, cjs.version);
  assert.equal(mtlspop, cjs);
  assert.match(version, /^\d+\.\d+\.\d+/);
});

test('an error thrown under import is the MtlsPopError of require', () => {
  const c = new ManagedIdentityClient();
  c.close();
  assert.throws(() => c.acquireTokenSync('api://x'), require('mtlspop').MtlsPopError);
});

test('dynamic import resolves the ESM entry', async () => {
  const m = await import('mtlspop');
  assert.equal(m.ManagedIdentityClient, ManagedIdentityClient);
  assert.equal(m.default, require('mtlspop'));
});
