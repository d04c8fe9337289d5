'use strict';

// Test helpers: the emulator as a child process, servers that misbehave, a child Node process.
// Tests run against the INSTALLED package (ci/node.sh copies this directory next to an
// `npm install` of the tarball), so `require('mtlspop')` resolves to node_modules/mtlspop.

const { spawn, execFile } = require('node:child_process');
const net = require('node:net');
const http = require('node:http');
const path = require('node:path');

const EMULATOR = process.env.MTLSPOP_EMULATOR;
const RESOURCE = 'api://mtlspop-emulator';

// startEmulator runs `mtlspop emulator ARGS` and resolves with its JSON line (env, urls,
// identities, tenant_id) and stop(). The emulator serves until its stdin closes.
function startEmulator(args = []) {
  if (!EMULATOR) throw new Error('MTLSPOP_EMULATOR is not set (ci/node.sh test sets it to build/mtlspop)');
  return new Promise((resolve, reject) => {
    const child = spawn(EMULATOR, ['emulator', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const onExit = (code) => reject(new Error(`emulator exited (${code}) before it was ready: ${err}`));
    child.once('exit', onExit);
    child.stderr.on('data', (d) => { err += d; });
    child.stdout.on('data', function onData(d) {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      child.stdout.off('data', onData);
      child.stdout.resume();
      child.off('exit', onExit);
      const info = JSON.parse(out.slice(0, nl));
      let stopping = false;
      child.on('exit', (code, signal) => {
        if (!stopping) console.error(`# the emulator (${args.join(' ')}) exited early: ${code ?? signal}\n${err}`);
      });
      info.stop = () =>
        new Promise((done) => {
          stopping = true;
          if (child.exitCode !== null) return done();
          child.once('exit', () => done());
          child.stdin.end();
        });
      resolve(info);
    });
  });
}

// setEnv puts the emulator's environment into process.env (the library reads it through libc
// getenv when a client is created) and removes the other managed-identity variables.
const MI_VARS = ['AZURE_POD_IDENTITY_AUTHORITY_HOST', 'IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'IMDS_ENDPOINT',
  'MSI_ENDPOINT', 'MSI_SECRET', 'IDENTITY_SERVER_THUMBPRINT', 'SSL_CERT_FILE'];
function setEnv(env) {
  for (const k of MI_VARS) delete process.env[k];
  Object.assign(process.env, env);
}

// blackhole: a TCP server the kernel accepts connections for, which never answers.
async function blackhole() {
  const sockets = new Set();
  const server = net.createServer((s) => { sockets.add(s); s.on('error', () => {}); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    port: server.address().port,
    close: () => { for (const s of sockets) s.destroy(); return new Promise((r) => server.close(r)); },
  };
}

// garbage: an HTTP server answering 200 with a body that is not JSON, to anything.
async function garbage() {
  const server = http.createServer((req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('<html>not json</html>'); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}

// closedPort: a port nothing listens on.
async function closedPort() {
  const server = net.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  await new Promise((r) => server.close(r));
  return port;
}

// runNode runs a Node script in a child process (cwd: the install directory, so it resolves
// the installed package) and resolves with {code, stdout, stderr}.
function runNode(args, env, timeoutMs = 30000) {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: path.join(__dirname, '..'), env: { ...process.env, ...env }, timeout: timeoutMs },
      (error, stdout, stderr) => resolve({ code: error ? error.code ?? error.signal : 0, stdout, stderr }));
  });
}

module.exports = { startEmulator, setEnv, blackhole, garbage, closedPort, runNode, RESOURCE };
