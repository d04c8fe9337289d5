'use strict';

// CallResponse: what a resource answered to client.call(). Shaped like fetch's Response where it
// can be: status, ok, headers (a Headers), text(), json(); the body is read already, as a Buffer.

class CallResponse {
  constructor(raw) {
    /** The HTTP status code. */
    this.status = raw.status;
    /** Whether the status is 2xx. */
    this.ok = raw.status >= 200 && raw.status < 300;
    /** The response headers. */
    this.headers = toHeaders(raw.headers === null ? {} : JSON.parse(raw.headers));
    /** The response body (at most 16 MiB; a longer one fails with code "response_too_large"). */
    this.body = raw.body;
  }

  /** The body decoded as UTF-8. */
  text() {
    return this.body.toString('utf8');
  }

  /** The body parsed as JSON. */
  json() {
    return JSON.parse(this.text());
  }
}

function toHeaders(obj) {
  const h = new Headers();
  for (const name of Object.keys(obj)) {
    for (const value of obj[name]) {
      try {
        h.append(name, value);
      } catch {
        // A header Headers refuses (never one a server can send over HTTP/1.1 or 2): dropped.
      }
    }
  }
  return h;
}

module.exports = { CallResponse };
