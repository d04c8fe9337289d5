'use strict';

// mtlspop: certificate-bound (mTLS PoP) Azure managed-identity tokens for Node.js, over
// libmtlspop's C ABI through a small N-API addon. See index.d.ts for the API.

const binding = require('./binding.js');
const { MtlsPopError } = require('./error.js');
const { AuthenticationResult } = require('./result.js');
const { CallResponse } = require('./response.js');
const { ManagedIdentityClient, ConfidentialClient } = require('./client.js');
const { Verifier, verify } = require('./verify.js');

module.exports = {
  ManagedIdentityClient,
  ConfidentialClient,
  AuthenticationResult,
  CallResponse,
  MtlsPopError,
  Verifier,
  verify,
  /** The version of the loaded libmtlspop, e.g. "0.1.0". */
  version: binding.version,
};

// The addon itself, for this package's tests; not API.
Object.defineProperty(module.exports, Symbol.for('mtlspop.binding'), { value: binding });
