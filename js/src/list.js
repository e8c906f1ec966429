/**
 * `List`: a znsocket list (`znsocket.List:<key>`) of JSON values; on the gateway a mapped
 * key is one TStorage series in capture-time order.
 * @module list
 */

import { IndexError } from './errors.js';
import { LIST_PREFIX, decodeValue, encodeValue, registerProxy } from './values.js';

/** A proxy for the list stored under `znsocket.List:<key>`. */
export class List {
  /**
   * @param {import('./client.js').Client} client A connected client.
   * @param {string} key The user key (without prefix), e.g. `"meters/7/3"`.
   */
  constructor(client, key) {
    this.client = client;
    /** The user key. */
    this.name = key;
    /** The full key, `znsocket.List:<key>`. */
    this.key = LIST_PREFIX + key;
  }

  /**
   * Number of elements.
   * @returns {Promise<number>}
   */
  async length() {
    return Number(await this.client.call('llen', [this.key]));
  }

  /**
   * The element at `index` (negative counts from the end).
   * @param {number} index
   * @returns {Promise<unknown>}
   * @throws {IndexError} When there is no such element.
   */
  async get(index) {
    const text = await this.client.call('lindex', [this.key, index]);
    if (text === null || text === undefined) throw new IndexError('list index out of range', 'IndexError');
    return decodeValue(this.client, text);
  }

  /**
   * Elements `start` to `stop` (exclusive), with Python slice semantics for negatives.
   * @param {number} [start] Default 0.
   * @param {number} [stop] Default: the length.
   * @returns {Promise<unknown[]>}
   */
  async slice(start = 0, stop) {
    const n = await this.length();
    const lo = clamp(start < 0 ? n + start : start, n);
    const hi = clamp(stop === undefined ? n : stop < 0 ? n + stop : stop, n);
    if (hi <= lo) return [];
    const texts = await this.client.call('lrange', [this.key, lo, hi - 1]);
    return texts.map((/** @type {string} */ t) => decodeValue(this.client, t));
  }

  /**
   * Every element.
   * @returns {Promise<unknown[]>}
   */
  async toArray() {
    return this.slice();
  }

  /**
   * Append one value; tells other clients with a refresh `{indices: [newLength - 1]}`.
   * @param {unknown} value Any JSON value (or a List/Dict proxy, stored as a reference).
   * @returns {Promise<number>} The new length.
   */
  async push(value) {
    const length = Number(await this.client.call('rpush', [this.key, encodeValue(value)]));
    this.client.sendRefresh(this.key, { indices: [length - 1] });
    return length;
  }

  /**
   * Append several values in one pipeline; one refresh `{start: oldLength, stop: null}`.
   * @param {unknown[]} values
   * @returns {Promise<number>} The new length.
   */
  async extend(values) {
    if (values.length === 0) return this.length();
    const pipe = this.client.pipeline();
    for (const v of values) pipe.add('rpush', [this.key, encodeValue(v)]);
    const lengths = await pipe.execute();
    const length = Number(lengths[lengths.length - 1]);
    this.client.sendRefresh(this.key, { start: length - values.length, stop: null });
    return length;
  }

  /**
   * Replace the element at `index`; refresh `{indices: [index]}`.
   * @param {number} index
   * @param {unknown} value
   * @returns {Promise<void>}
   */
  async set(index, value) {
    await this.client.call('lset', [this.key, index, encodeValue(value)]);
    this.client.sendRefresh(this.key, { indices: [index] });
  }

  /**
   * Run `callback(data)` when another client announces a change of this list.
   * @param {(data: {indices?: number[], start?: number, stop?: number|null}) => void} callback
   * @returns {() => void} Removes the callback.
   */
  onRefresh(callback) {
    return this.client.onRefresh(this.key, callback);
  }

  /**
   * Iterate over the elements (one slice read).
   * @returns {AsyncGenerator<unknown>}
   */
  async *[Symbol.asyncIterator]() {
    for (const v of await this.slice()) yield v;
  }
}

/** @param {number} i @param {number} n */
function clamp(i, n) {
  return Math.max(0, Math.min(i, n));
}

registerProxy('List', List);
