/**
 * Values as upstream's Python proxies store them: `json.dumps(value)` text, with
 * `", "`/`": "` separators and non-ASCII characters escaped, and NaN/Infinity refused.
 * Writing the same text as the Python client keeps stored bytes identical whichever
 * client wrote them (a JavaScript number has no int/float distinction: `5.0` is written `5`).
 * @module json
 */

import { DataError } from './errors.js';

/**
 * Encode a value like Python's `json.dumps(value)` (default separators, `ensure_ascii`).
 * @param {unknown} value A JSON-compatible value (objects, arrays, strings, finite numbers,
 *   booleans, null).
 * @returns {string} The JSON text.
 * @throws {DataError} For NaN, ±Infinity, `undefined`, functions, symbols or bigints.
 */
export function dumps(value) {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) {
        throw new DataError(`Out of range float values are not JSON compliant: ${value}`);
      }
      return JSON.stringify(value);
    case 'string':
      return asciiString(value);
    case 'object': {
      if (typeof (/** @type {any} */ (value)).toJSON === 'function') {
        return dumps((/** @type {any} */ (value)).toJSON());
      }
      if (Array.isArray(value)) return `[${value.map(dumps).join(', ')}]`;
      const parts = Object.entries(value).map(([k, v]) => `${asciiString(k)}: ${dumps(v)}`);
      return `{${parts.join(', ')}}`;
    }
    default:
      throw new DataError(`Object of type ${typeof value} is not JSON serializable`);
  }
}

/**
 * @param {string} s
 * @returns {string} A JSON string literal with every non-ASCII code unit as `\uXXXX`.
 */
function asciiString(s) {
  return JSON.stringify(s).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/**
 * Decode stored JSON text.
 * @param {string} text The stored value.
 * @returns {unknown} The decoded value.
 * @throws {DataError} When the text is not JSON (the value was not written by a proxy).
 */
export function loads(text) {
  try {
    return JSON.parse(text);
  } catch (exc) {
    throw new DataError(`stored value is not JSON: ${String(text).slice(0, 80)} (${exc})`);
  }
}
