// Gets an mTLS PoP token and its certificate, then calls a resource with both.
//   RESOURCE_URL=https://... node pop.mjs
import { ManagedIdentityClient } from 'mtlspop';

const client = new ManagedIdentityClient({ mtlsPop: true }); // system-assigned identity
try {
  const result = await client.acquireToken('api://mtlspop-emulator');
  console.log(result); // the token itself is redacted
  console.log(result.bindingCertificatePem);
  if (process.env.RESOURCE_URL) {
    const response = await client.call(result, { url: process.env.RESOURCE_URL });
    console.log('status', response.status, response.json());
  }
} finally {
  client.close();
}
