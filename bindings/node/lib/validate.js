'use strict';

// Argument checks. Everything the addon receives has been checked here first, so a mistake is a
// precise TypeError or RangeError naming the argument, thrown before any native code runs.

function typeError(message, code = 'ERR_INVALID_ARG_TYPE') {
  const e = new TypeError(message);
  e.code = code;
  return e;
}

function rangeError(message) {
  const e = new RangeError(message);
  e.code = 'ERR_OUT_OF_RANGE';
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

function string(v, name, { nonEmpty = true } = {}) {
  if (typeof v !== 'string') {
    throw typeError(`The "${name}" option must be a string. Received ${describe(v)}`);
  }
  if (nonEmpty && v.trim() === '') {
    throw typeError(`The "${name}" option must be a non-empty string`, 'ERR_INVALID_ARG_VALUE');
  }
  if (v.includes('\0')) {
    throw typeError(`The "${name}" option must not contain the character U+0000`, 'ERR_INVALID_ARG_VALUE');
  }
  return v;
}

function boolean(v, name) {
  if (typeof v !== 'boolean') {
    throw typeError(`The "${name}" option must be a boolean. Received ${describe(v)}`);
  }
  return v;
}

function integer(v, name, min, max) {
  if (typeof v !== 'number') {
    throw typeError(`The "${name}" option must be a number. Received ${describe(v)}`);
  }
  if (!Number.isInteger(v) || v < min || v > max) {
    throw rangeError(`The "${name}" option must be an integer from ${min} to ${max}. Received ${v}`);
  }
  return v;
}

const MAX_TIMEOUT_MS = 86400000;

function timeoutMs(v, name = 'timeoutMs') {
  return integer(v, name, 1, MAX_TIMEOUT_MS);
}

// resource checks the resource argument of acquireToken: an App ID URI or URL.
function resource(v) {
  if (typeof v !== 'string') {
    throw typeError(`The "resource" argument must be a string. Received ${describe(v)}`);
  }
  if (v.trim() === '') {
    throw typeError('The "resource" argument must be a non-empty string', 'ERR_INVALID_ARG_VALUE');
  }
  return v;
}

module.exports = {
  typeError, rangeError, describe, isPlainObject, options, string, boolean, integer, timeoutMs, resource,
  EMPTY, MAX_TIMEOUT_MS,
};
