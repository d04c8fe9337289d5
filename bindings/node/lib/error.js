'use strict';

// MtlsPopError: the one error class of the package. It is defined here, in JavaScript, and handed
// to the addon at load (binding.js), so the addon throws and rejects with real instances of it.

// The C ABI's status codes (include/mtlspop.h, enum mtlspop_status): the category of each, and
// the code used when the library gave no error object (it gives one for everything but
// MTLSPOP_E_FORKED and MTLSPOP_E_NOMEM). Numbers never change; new ones may appear, and any
// number not listed here becomes category "unknown", code "unknown_error": never a crash.
const STATUSES = new Map([
  [-1, ['invalid_argument', 'invalid_argument']],
  [-2, ['forked', 'forked']],
  [-3, ['timeout', 'request_timeout']],
  [-4, ['canceled', 'canceled']],
  [-5, ['closed', 'client_closed']],
  [-6, ['network', 'network_error']],
  [-7, ['identity', 'managed_identity_request_failed']],
  [-8, ['protocol', 'invalid_managed_identity_response']],
  [-9, ['unsupported', 'unsupported']],
  [-10, ['invalid_token', 'invalid_token']],
  [-11, ['not_found', 'not_found']],
  [-12, ['out_of_memory', 'out_of_memory']],
  [-13, ['internal', 'internal_error']],
]);

const UNKNOWN = ['unknown', 'unknown_error'];

class MtlsPopError extends Error {
  /**
   * @param {string} message
   * @param {{errno?: number, code?: string, status?: number, correlationId?: string, cause?: unknown}} [details]
   */
  constructor(message, details) {
    const d = details === undefined || details === null ? {} : details;
    super(String(message), d.cause === undefined ? undefined : { cause: d.cause });
    const errno = Number.isInteger(d.errno) ? d.errno : 0;
    const [category, fallback] = STATUSES.get(errno) ?? UNKNOWN;
    /** The stable reason, e.g. "invalid_client", "request_timeout": the C ABI's code string. */
    this.code = typeof d.code === 'string' && d.code !== '' ? d.code : fallback;
    /** The C ABI's status (a negative mtlspop_status), 0 when not from the library. */
    this.errno = errno;
    /** The status's category, for control flow: "timeout", "network", "identity", ... */
    this.category = category;
    /** The HTTP status of the failing response, 0 when there was none. */
    this.status = Number.isInteger(d.status) ? d.status : 0;
    /** The request's correlation id (x-ms-client-request-id), "" when none. */
    this.correlationId = typeof d.correlationId === 'string' ? d.correlationId : '';
  }
}

Object.defineProperty(MtlsPopError.prototype, 'name', {
  value: 'MtlsPopError', writable: true, configurable: true, enumerable: false,
});

const CANCELED = -4;
const CLOSED = -5;

function closedError() {
  return new MtlsPopError('mtlspop: client_closed: the client is closed', { errno: CLOSED, code: 'client_closed' });
}

function abortedError(signal) {
  return new MtlsPopError('mtlspop: canceled: the operation was aborted', {
    errno: CANCELED, code: 'canceled', cause: signal.reason,
  });
}

module.exports = { MtlsPopError, closedError, abortedError, CANCELED };
