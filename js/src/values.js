/**
 * Stored values <-> JavaScript values for the List and Dict proxies (spec §7.2, §7.3):
 * JSON text written like Python's `json.dumps`; a List or Dict stored inside another is
 * its full key, read back as a proxy.
 * @module values
 */

import { errorFromEnvelope, isErrorEnvelope } from './errors.js';
import { dumps, loads } from './json.js';

/** Key prefix of List objects. */
export const LIST_PREFIX = 'znsocket.List:';
/** Key prefix of Dict objects. */
export const DICT_PREFIX = 'znsocket.Dict:';

/**
 * @typedef {object} Proxy
 * @property {string} key The full key.
 */

/** @type {{List?: any, Dict?: any}} */
const proxies = {};

/**
 * Register the proxy classes (called by list.js and dict.js; avoids an import cycle).
 * @param {'List' | 'Dict'} name
 * @param {any} cls
 * @returns {void}
 */
export function registerProxy(name, cls) {
  proxies[name] = cls;
}

/**
 * Encode a value for storage: a proxy becomes its full key, anything else Python-style JSON.
 * @param {unknown} value
 * @returns {string}
 */
export function encodeValue(value) {
  if (value !== null && typeof value === 'object' && 'key' in value && isProxy(value)) {
    return dumps(/** @type {Proxy} */ (value).key);
  }
  return dumps(value);
}

/**
 * Decode a stored value; full keys of Lists/Dicts become proxies on `client`, and a stored
 * error object is raised as upstream's proxies do.
 * @param {import('./client.js').Client} client
 * @param {string} text
 * @returns {unknown}
 */
export function decodeValue(client, text) {
  const value = loads(text);
  if (isErrorEnvelope(value)) throw errorFromEnvelope(/** @type {any} */ (value));
  if (typeof value === 'string') {
    if (value.startsWith(LIST_PREFIX) && proxies.List) {
      return new proxies.List(client, value.slice(LIST_PREFIX.length));
    }
    if (value.startsWith(DICT_PREFIX) && proxies.Dict) {
      return new proxies.Dict(client, value.slice(DICT_PREFIX.length));
    }
  }
  return value;
}

/** @param {object} value */
function isProxy(value) {
  return (
    (proxies.List !== undefined && value instanceof proxies.List) ||
    (proxies.Dict !== undefined && value instanceof proxies.Dict)
  );
}
