'use strict';

// Process-level behaviour, each in a child Node process: the event loop is held open exactly
// while requests are outstanding; nothing leaks once clients are closed and results collected;
// the README example runs; the package is laid out as promised.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startEmulator, runNode, blackhole, RESOURCE } = require('./helpers.js');

let emu;
before(async () => { emu = await startEmulator(); });
after(() => emu.stop());

test('a request in flight keeps the process alive; an idle client does not', async () => {
  // Nothing but the request holds the loop: no timer, no socket of our own. Without the
  // addon's ref'd thread-safe function the process would exit 0 here with the promise pending.
  const script = `
    const { ManagedIdentityClient } = require('mtlspop');
    const c = new ManagedIdentityClient({ mtlsPop: true });
    c.acquireToken(${JSON.stringify(RESOURCE + '/keepalive')}).then((r) => console.log('resolved', r.tokenType));
    process.on('exit', (code) => console.log('exit', code));
  `;
  const t0 = Date.now();
  const r = await runNode(['-e', script], emu.env);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), ['resolved mtls_pop', 'exit 0']);
  // ... and once it resolved, the open client did not keep the process running.
  assert.ok(Date.now() - t0 < 10000);
});

test('a pending request that is canceled lets the process exit', async () => {
  const hole = await blackhole();
  try {
    const script = `
      const { ManagedIdentityClient } = require('mtlspop');
      const c = new ManagedIdentityClient({ imdsEndpoint: ${JSON.stringify(hole.url)} });
      const ac = new AbortController();
      c.acquireToken('api://x', { signal: ac.signal }).catch((e) => console.log('rejected', e.code));
      setTimeout(() => ac.abort(), 100).unref();
    `;
    const r = await runNode(['-e', script], {});
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'rejected canceled');
  } finally {
    await hole.close();
  }
});

test('a worker thread terminated with requests in flight: late completions are dropped safely', async () => {
  const hole = await blackhole();
  try {
    const script = `
      const { Worker } = require('node:worker_threads');
      const { once } = require('node:events');
      const path = ${JSON.stringify(require.resolve('mtlspop'))};
      (async () => {
        for (let round = 0; round < 3; round++) {
          const w = new Worker(\`
            const { ManagedIdentityClient } = require(\${JSON.stringify(path)});
            const c = new ManagedIdentityClient({ imdsEndpoint: ${JSON.stringify(hole.url)}, timeoutMs: 300 });
            for (let i = 0; i < 50; i++) c.acquireToken('api://w' + i).catch(() => {});
            require('node:worker_threads').parentPort.postMessage('started');
          \`, { eval: true });
          await once(w, 'message');
          await w.terminate();
        }
        // The library completes the 150 requests after their environments are gone.
        await new Promise((r) => setTimeout(r, 800));
        const { ManagedIdentityClient } = require(path);
        const c = new ManagedIdentityClient({ imdsEndpoint: ${JSON.stringify(hole.url)}, timeoutMs: 100 });
        const e = await c.acquireToken('api://main').catch((x) => x);
        console.log('main', e.code);
      })();
    `;
    const r = await runNode(['-e', script], {});
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'main request_timeout');
  } finally {
    await hole.close();
  }
});

test('no library object outlives its client and results', async () => {
  const script = `
    const mtlspop = require('mtlspop');
    const binding = mtlspop[Symbol.for('mtlspop.binding')];
    const { setImmediate: tick } = require('node:timers/promises');
    // The rounds run in a function of their own: a suspended async frame would keep its last
    // locals (and so a token) reachable.
    async function rounds() {
      for (let round = 0; round < 3; round++) {
        const c = new mtlspop.ManagedIdentityClient({ mtlsPop: true });
        const r = await c.acquireToken(${JSON.stringify(RESOURCE)});
        for (let i = 0; i < 1000; i++) c.acquireTokenSync(${JSON.stringify(RESOURCE)});
        await Promise.all([c.acquireToken('api://a'), c.acquireToken('api://b', { mtlsPop: false })]);
        await c.call(r, { url: process.env.RESOURCE_URL });
        const v = new mtlspop.Verifier({ audiences: ${JSON.stringify(RESOURCE)}, jwksUrl: process.env.JWKS_URL });
        await v.verify('mtls_pop ' + r.accessToken, r.bindingCertificatePem);
        c.close();
      }
    }
    (async () => {
      const start = binding.liveObjects();
      await rounds();
      for (let i = 0; i < 10 && binding.liveObjects() !== start; i++) { global.gc(); await tick(); }
      console.log(JSON.stringify({ start, end: binding.liveObjects() }));
    })();
  `;
  const r = await runNode(['--expose-gc', '-e', script], { ...emu.env, RESOURCE_URL: emu.urls.resource, JWKS_URL: emu.urls.jwks });
  assert.equal(r.code, 0, r.stderr);
  const { start, end } = JSON.parse(r.stdout);
  assert.equal(end, start, 'live library objects after close and GC');
});

test("the README's example gets a PoP token and its certificate from the emulator", async () => {
  const r = await runNode([path.join(__dirname, '..', 'examples', 'pop.mjs')], { ...emu.env, RESOURCE_URL: emu.urls.resource });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /AuthenticationResult \{/);
  assert.match(r.stdout, /tokenType: 'mtls_pop'/);
  assert.match(r.stdout, /accessToken: '\[redacted\]'/);
  assert.match(r.stdout, /-----BEGIN CERTIFICATE-----/);
  assert.match(r.stdout, /status 200/);
});

test('the installed package: prebuilt addon and library, no install script, types', () => {
  const dir = path.dirname(require.resolve('mtlspop/package.json'));
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  assert.equal(pkg.scripts, undefined);
  assert.equal(pkg.types, './index.d.ts');
  assert.deepEqual(Object.keys(pkg.exports['.']), ['types', 'import', 'require']);
  assert.ok(fs.existsSync(path.join(dir, 'index.d.ts')));
  const prebuilt = path.join(dir, 'prebuilds', `${process.platform}-${process.arch}`);
  assert.ok(fs.existsSync(path.join(prebuilt, 'mtlspop.node')));
  assert.ok(fs.existsSync(path.join(prebuilt, 'libmtlspop.so.0')));
  assert.ok(!fs.existsSync(path.join(dir, 'binding.gyp')));
  assert.ok(!fs.existsSync(path.join(dir, 'src')), 'no sources to compile are shipped');
  // The library was loaded from the package, not from the build tree.
  const maps = fs.readFileSync('/proc/self/maps', 'utf8');
  require('mtlspop');
  const loaded = fs.readFileSync('/proc/self/maps', 'utf8').split('\n').concat(maps.split('\n'))
    .filter((l) => l.includes('libmtlspop.so.0')).map((l) => l.slice(l.indexOf('/')));
  assert.ok(loaded.length > 0 && loaded.every((p) => p === fs.realpathSync(path.join(prebuilt, 'libmtlspop.so.0'))), loaded.join('\n'));
});
