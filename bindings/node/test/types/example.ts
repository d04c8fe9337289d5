// Compile-only: index.d.ts as a CommonJS TypeScript user sees it. Never run.
import { ManagedIdentityClient, ConfidentialClient, MtlsPopError, AuthenticationResult, CallResponse, Verifier, verify, version } from 'mtlspop';
import type { ManagedIdentityClientOptions, VerifiedToken, MtlsPopErrorCategory } from 'mtlspop';

async function main(): Promise<void> {
  const client = new ManagedIdentityClient({ mtlsPop: true, clientId: '...', timeoutMs: 5000, key: { provider: 'tpm', attest: true } });
  const r: AuthenticationResult = await client.acquireToken('api://x', { forceRefresh: true, signal: AbortSignal.timeout(1000) });
  const type: 'mtls_pop' | 'Bearer' = r.tokenType;
  const exp: Date = r.expiresOn;
  const refresh: Date | null = r.refreshOn;
  const pem: string | null = r.bindingCertificatePem;
  const hit = client.acquireTokenSync('api://x', { mtlsPop: false });
  const res: CallResponse = await client.call(hit, { url: new URL('https://x/'), method: 'POST', headers: { a: 'b', c: ['d', 'e'] }, body: Buffer.from('x') });
  const status: number = res.status;
  const ct: string | null = res.headers.get('content-type');
  const v = new Verifier({ audiences: ['api://x'], jwksUrl: 'https://x/keys' });
  const t: VerifiedToken = await v.verify(`mtls_pop ${r.accessToken}`, pem);
  const t2: VerifiedToken = await verify('x', { audiences: 'a', jwks: { keys: [] }, clientCertificate: Buffer.alloc(0) });
  try {
    client.acquireTokenSync('api://x');
  } catch (e) {
    if (e instanceof MtlsPopError) {
      const c: string = e.code;
      const cat: MtlsPopErrorCategory = e.category;
      const s: number = e.status + e.errno;
      const id: string = e.correlationId;
      void [c, cat, s, id];
    }
  }
  client[Symbol.dispose]();
  client.close();
  const closed: boolean = client.closed;
  const opts: ManagedIdentityClientOptions = { objectId: 'x', key: 'software' };
  void [type, exp, refresh, status, ct, t, t2, closed, opts, version];

  // @ts-expect-error only one user-assigned selector
  new ManagedIdentityClient({ clientId: 'a', objectId: 'b' });
  // @ts-expect-error mtlsPop is a boolean
  new ManagedIdentityClient({ mtlsPop: 'yes' });
  // @ts-expect-error results are not constructible
  new AuthenticationResult();
  // @ts-expect-error signal is for acquireToken only
  client.acquireTokenSync('api://x', { signal: AbortSignal.abort() });
  // @ts-expect-error read-only
  r.accessToken = 'x';
  // @ts-expect-error the result comes first
  await client.call({ url: 'https://x' });
}
void main;

// ConfidentialClient: exactly one credential; scopes as a string or an array.
async function confidentialExample(): Promise<void> {
  const cc = new ConfidentialClient({ authority: 'https://login.microsoftonline.com/t', clientId: 'c',
    certificate: { certFile: 'cert.pem', keyFile: 'key.pem' }, mtlsPop: true });
  const r: AuthenticationResult = await cc.acquireTokenForClient(['https://vault.azure.net/.default']);
  cc.acquireTokenForClientSync('https://vault.azure.net/.default');
  const fic = new ConfidentialClient({ authority: 'https://login.microsoftonline.com/t', clientId: 'c',
    federated: { managedIdentity: { clientId: 'uami' }, mtlsPop: true } });
  // @ts-expect-error: a secret and a certificate at once
  new ConfidentialClient({ authority: 'a', clientId: 'c', secret: 's', certificate: { certFile: 'c', keyFile: 'k' } });
  void r; void fic;
}
void confidentialExample;
