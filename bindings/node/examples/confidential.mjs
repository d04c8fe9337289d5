// The flows of MSAL.NET's mTLS PoP guides, against the emulator: a confidential client's mTLS
// PoP token (vanilla), calling the resource with the binding certificate, and two-leg FIC.
//
//   build/mtlspop emulator --require-pop > emu.json &   (then the `export` of its env)
//   node confidential.mjs emu.json
import { readFileSync } from 'node:fs';
import { ConfidentialClient } from 'mtlspop';

const info = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { app } = info;
const scope = `${info.urls.resource_id}/.default`;

// 1. Vanilla: the app certificate authenticates at the TLS layer; the token is bound to it.
const cc = new ConfidentialClient({
  authority: app.authority, clientId: app.client_id, mtlsEndpoint: app.mtls_endpoint, mtlsPop: true,
  certificate: { certFile: app.cert_file, keyFile: app.key_file },
});
try {
  const result = await cc.acquireTokenForClient(scope);
  console.log('vanilla: ', result.tokenType, 'bound to', result.bindingCertificateThumbprint);
  // 2. Call the resource over mTLS with the binding certificate.
  console.log('resource:', (await cc.call(result, { url: info.urls.resource })).status);
} finally {
  cc.close();
}

// 3. Two-leg FIC: leg 1 this host's managed identity (bound), leg 2 the app presenting it.
const fic = new ConfidentialClient({
  authority: app.authority, clientId: app.client_id, mtlsEndpoint: app.mtls_endpoint, mtlsPop: true,
  federated: { managedIdentity: {} },
});
try {
  const result = await fic.acquireTokenForClient([scope]);
  console.log('two-leg: ', result.tokenType, 'bound to', result.bindingCertificateThumbprint);
  console.log('resource:', (await fic.call(result, { url: info.urls.resource })).status);
} finally {
  fic.close();
}
