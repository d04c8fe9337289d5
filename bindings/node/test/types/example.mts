// Compile-only: index.d.ts as an ESM TypeScript user sees it (default and named imports). Never run.
import mtlspop, { ManagedIdentityClient, type AuthenticationResult } from 'mtlspop';

const client = new ManagedIdentityClient();
const r: AuthenticationResult = await client.acquireToken('api://x');
const same: typeof ManagedIdentityClient = mtlspop.ManagedIdentityClient;
console.log(r.tokenType, same);
