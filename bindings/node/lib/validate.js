'use strict';

// What JavaScript has to check before it can build the C ABI's JSON (include/mtlspop.h): the
// types and shapes of arguments, and option names (an unknown name would otherwise be dropped
// without a word, since only known names are translated). A mistake there is a TypeError naming
// the argument. Values are the library's to judge: an empty string, a timeout out of range, a
// header name with a space in it come back from the library as an MtlsPopError with its code
// ("invalid_argument", ...), the same answer every binding of the ABI gets.

function typeError(message, code = 'ERR_INVALID_ARG_TYPE') {
  const e = new TypeError(message);
  e.code = code;
  return e;
}

function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return `an instance of ${v.constructor && v.constructor.name ? v.constructor.name : 'Object'}`;
  if (typeof v === 'string') return `type string (${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v)})`;
  return `type ${typeof v} (${String(v)})`;
}

function isPlainObject(v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

// normalize folds case and drops "_" and "-": how a misspelt option is matched to the right one.
function normalize(k) {
  return k.toLowerCase().replace(/[_-]/g, '');
}

// distance is the Levenshtein distance of two short strings.
function distance(a, b) {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

// suggest returns the allowed key k most likely stands for: the same but for case, "_" and "-",
// or one or two edits away ("uri" for "url", "audience" for "audiences").
function suggest(k, allowed) {
  const n = normalize(k);
  const same = allowed.find((a) => normalize(a) === n);
  if (same) return same;
  let best;
  let bestD = n.length <= 4 ? 1 : 2;
  for (const a of allowed) {
    const d = distance(n, normalize(a));
    if (d <= bestD && (best === undefined || d < distance(n, normalize(best)))) {
      best = a;
      bestD = d;
    }
  }
  return best;
}

// options checks that opts is undefined or a plain object with only the allowed keys, and
// returns it (or an empty object). Unknown keys are errors, with a suggestion when the key is a
// misspelling of an allowed one ("clientID", "mtls_pop"), or a note when it belongs elsewhere.
function options(opts, where, allowed, elsewhere) {
  if (opts === undefined) return EMPTY;
  if (!isPlainObject(opts)) {
    throw typeError(`The "${where}" argument must be an object. Received ${describe(opts)}`);
  }
  for (const k of Object.keys(opts)) {
    if (allowed.includes(k)) continue;
    const hint = suggest(k, allowed);
    const note = elsewhere && elsewhere[k];
    throw typeError(
      `Unknown option "${k}" in ${where}` +
        (hint ? `; did you mean "${hint}"?` : note ? `; ${note}` : `; expected one of: ${allowed.join(', ')}`),
      'ERR_INVALID_ARG_VALUE',
    );
  }
  return opts;
}

const EMPTY = Object.freeze({});

// string checks a value that goes into the JSON as a string. JSON escapes U+0000 (\u0000), so
// nothing is cut short on the way: whether the library accepts it is its call.
function string(v, name) {
  if (typeof v !== 'string') {
    throw typeError(`The "${name}" option must be a string. Received ${describe(v)}`);
  }
  return v;
}

function boolean(v, name) {
  if (typeof v !== 'boolean') {
    throw typeError(`The "${name}" option must be a boolean. Received ${describe(v)}`);
  }
  return v;
}

// number checks a value that goes into the JSON as a number (timeoutMs, leewaySeconds). The
// range, and whether it must be an integer, the library checks (NaN and Infinity become null in
// JSON, which it refuses too).
function number(v, name) {
  if (typeof v !== 'number') {
    throw typeError(`The "${name}" option must be a number. Received ${describe(v)}`);
  }
  return v;
}

// resource checks the resource argument of acquireToken: an App ID URI or URL, passed to the
// library as a C string (the addon refuses U+0000 in it, which would cut it short).
function resource(v) {
  if (typeof v !== 'string') {
    throw typeError(`The "resource" argument must be a string. Received ${describe(v)}`);
  }
  return v;
}

module.exports = { typeError, describe, isPlainObject, options, string, boolean, number, resource, EMPTY };
