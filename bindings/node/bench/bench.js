'use strict';

// What a cached token costs from Node: mtlspop's acquireTokenSync (and acquireToken) against
// @azure/msal-node's ManagedIdentityApplication.acquireToken, in one process, against one
// loopback App Service endpoint (`mtlspop emulator --source appservice`; IDENTITY_ENDPOINT and
// IDENTITY_HEADER in process.env, read by both at construction). Both are warmed first, so
// every measured call is a cache hit; each figure is the median of RUNS runs, in ns per call.
//
// Prints JSON lines {"name","value","unit"[,"peer","peer_value"]} on stdout (ci/node.sh bench,
// collected by ./build.sh bench); everything else goes to stderr.
//
//   node_cache_hit_ns        acquireTokenSync, Bearer (peer: msal-node's cache hit)
//   node_async_cache_hit_ns  await acquireToken, Bearer (peer: msal-node's cache hit)
//   node_pop_cache_hit_ns    acquireTokenSync, mTLS PoP (IMDSv2 emulator; msal-node has no PoP)
//
// Environment: MTLSPOP_EMULATOR (build/mtlspop), MSAL_NODE_MODULES (a node_modules holding
// @azure/msal-node).

const path = require('node:path');
const { createRequire } = require('node:module');
const { spawn } = require('node:child_process');
const { ManagedIdentityClient } = require('mtlspop');

const RUNS = 7;
const RESOURCE = 'api://mtlspop-emulator';

function log(...args) {
  console.error('bench:', ...args);
}

function startEmulator(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.env.MTLSPOP_EMULATOR, ['emulator', ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.once('exit', (code) => reject(new Error(`emulator exited (${code})`)));
    child.stdout.on('data', function onData(d) {
      out += d;
      if (!out.includes('\n')) return;
      child.stdout.off('data', onData);
      child.stdout.resume();
      child.removeAllListeners('exit');
      const info = JSON.parse(out.slice(0, out.indexOf('\n')));
      info.stop = () => new Promise((done) => { child.once('exit', done); child.stdin.end(); });
      resolve(info);
    });
  });
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

// measureSync: median over RUNS of ns per call of fn, n calls per run.
function measureSync(fn, n) {
  for (let i = 0; i < n; i++) fn(); // warm-up (JIT)
  const runs = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    runs.push(Number(process.hrtime.bigint() - t0) / n);
  }
  return median(runs);
}

async function measureAsync(fn, n) {
  for (let i = 0; i < n; i++) await fn();
  const runs = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await fn();
    runs.push(Number(process.hrtime.bigint() - t0) / n);
  }
  return median(runs);
}

function emit(name, value, peer, peerValue) {
  const line = { name, value: Math.round(value * 10) / 10, unit: 'ns' };
  if (peer) {
    line.peer = peer;
    line.peer_value = Math.round(peerValue * 10) / 10;
  }
  process.stdout.write(JSON.stringify(line) + '\n');
}

async function main() {
  const msalRequire = createRequire(path.join(process.env.MSAL_NODE_MODULES, '..', 'package.json'));
  const msal = msalRequire('@azure/msal-node');
  const msalVersion = msalRequire('@azure/msal-node/package.json').version;

  const [appsvc, imds] = await Promise.all([startEmulator(['--source', 'appservice']), startEmulator([])]);
  try {
    // The PoP client first, while the environment says IMDS: clients read it when created.
    const pop = new ManagedIdentityClient({ mtlsPop: true, imdsEndpoint: imds.urls.imds, caFile: imds.env.SSL_CERT_FILE });
    await pop.acquireToken(RESOURCE);

    // Both clients measured against each other read the App Service variables.
    for (const k of ['AZURE_POD_IDENTITY_AUTHORITY_HOST', 'IMDS_ENDPOINT', 'MSI_ENDPOINT', 'MSI_SECRET']) delete process.env[k];
    Object.assign(process.env, appsvc.env);
    process.env.NODE_EXTRA_CA_CERTS = appsvc.env.SSL_CERT_FILE;

    const ours = new ManagedIdentityClient();
    const first = await ours.acquireToken(RESOURCE);
    if (first.tokenType !== 'Bearer' || ours.acquireTokenSync(RESOURCE).tokenSource !== 'cache') {
      throw new Error('mtlspop: no cached Bearer token from the App Service emulator');
    }

    const app = new msal.ManagedIdentityApplication({ system: { loggerOptions: { logLevel: msal.LogLevel.Error, loggerCallback() {} } } });
    if (app.getManagedIdentitySource() !== 'AppService') {
      throw new Error(`msal-node picked source ${app.getManagedIdentitySource()}, not AppService`);
    }
    const m1 = await app.acquireToken({ resource: RESOURCE });
    const m2 = await app.acquireToken({ resource: RESOURCE });
    if (!m2.fromCache) throw new Error('msal-node: the second acquisition was not a cache hit');
    log(`msal-node ${msalVersion}: source ${app.getManagedIdentitySource()}, token ${m1.tokenType}, second call fromCache=${m2.fromCache}`);

    // Interleaved, so both see the same machine state.
    let sink = 0;
    const syncHit = () => { sink += ours.acquireTokenSync(RESOURCE).accessToken.length; };
    const popHit = () => { sink += pop.acquireTokenSync(RESOURCE).accessToken.length; };
    const asyncHit = async () => { sink += (await ours.acquireToken(RESOURCE)).accessToken.length; };
    const msalHit = async () => { sink += (await app.acquireToken({ resource: RESOURCE })).accessToken.length; };

    const msalNs = await measureAsync(msalHit, 20000);
    const syncNs = measureSync(syncHit, 500000);
    const asyncNs = await measureAsync(asyncHit, 20000);
    const popNs = measureSync(popHit, 500000);
    const msalNs2 = await measureAsync(msalHit, 20000);
    const msalMedian = Math.min(msalNs, msalNs2); // msal-node's better run: the conservative ratio
    log(`acquireTokenSync ${syncNs.toFixed(0)} ns, acquireToken ${asyncNs.toFixed(0)} ns, PoP acquireTokenSync ${popNs.toFixed(0)} ns; ` +
      `msal-node ${msalNs.toFixed(0)} / ${msalNs2.toFixed(0)} ns; ratio ${(msalMedian / syncNs).toFixed(1)}x (sink ${sink > 0})`);

    emit('node_cache_hit_ns', syncNs, 'msal_node_cache_hit_ns', msalMedian);
    emit('node_async_cache_hit_ns', asyncNs, 'msal_node_cache_hit_ns', msalMedian);
    emit('node_pop_cache_hit_ns', popNs);

    ours.close();
    pop.close();
  } finally {
    await Promise.all([appsvc.stop(), imds.stop()]);
  }
}

main().catch((e) => {
  log(e && e.stack ? e.stack : e);
  process.exit(1);
});
