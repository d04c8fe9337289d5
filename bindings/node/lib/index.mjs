// ESM entry point: the CommonJS module's exports, so both loaders share one addon and one set of
// classes (an error thrown under `import` is instanceof the MtlsPopError seen by `require`).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const mtlspop = require('./index.js');

export const {
  ManagedIdentityClient,
  ConfidentialClient,
  AuthenticationResult,
  CallResponse,
  MtlsPopError,
  Verifier,
  verify,
  version,
} = mtlspop;

export default mtlspop;
