'use strict';

// MtlsPopError: the one error class of the package. It is defined here, in JavaScript, and handed
// to the addon at load (binding.js), so the addon throws and rejects with real instances of it.

// The C ABI's status codes (include/mtlspop.h, enum mtlspop_status) and the category of each.
// Numbers never change; new ones may appear, and any number not listed here becomes category
// "unknown": never a crash.
const CATEGORIES = new Map([
  [-1, 'invalid_argument'],
  [-2, 'forked'],
  [-3, 'timeout'],
  [-4, 'canceled'],
  [-5, 'closed'],
  [-6, 'network'],
  [-7, 'identity'],
  [-8, 'protocol'],
  [-9, 'unsupported'],
  [-10, 'invalid_token'],
  [-11, 'not_found'],
  [-12, 'out_of_memory'],
  [-13, 'internal'],
]);

// The code of an error that comes without one: the library gives an error object (and so a
// code) for every failure but MTLSPOP_E_FORKED and MTLSPOP_E_NOMEM (convention 2), and the addon
// reports MTLSPOP_E_CLOSED itself for a client closed before the call. Anything else without a
// code (made in JavaScript, say) is "unknown_error".
const CODES_WITHOUT_ERROR_OBJECT = new Map([
  [-2, 'forked'],
  [-5, 'client_closed'],
  [-12, 'out_of_memory'],
]);

class MtlsPopError extends Error {
  /**
   * @param {string} message
   * @param {{errno?: number, code?: string, status?: number, correlationId?: string, cause?: unknown}} [details]
   */
  constructor(message, details) {
    const d = details === undefined || details === null ? {} : details;
    super(String(message), d.cause === undefined ? undefined : { cause: d.cause });
    const errno = Number.isInteger(d.errno) ? d.errno : 0;
    /** The stable reason, e.g. "invalid_client", "request_timeout": the C ABI's code string. */
    this.code = typeof d.code === 'string' && d.code !== ''
      ? d.code
      : CODES_WITHOUT_ERROR_OBJECT.get(errno) ?? 'unknown_error';
    /** The C ABI's status (a negative mtlspop_status), 0 when not from the library. */
    this.errno = errno;
    /** The status's category, for control flow: "timeout", "network", "identity", ... */
    this.category = CATEGORIES.get(errno) ?? 'unknown';
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
