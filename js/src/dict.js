/**
 * `Dict`: a znsocket hash (`znsocket.Dict:<key>`) of JSON values; on the gateway a mapped
 * key is one meter whose fields show each series' latest value.
 * @module dict
 */

import { DICT_PREFIX, decodeValue, encodeValue, registerProxy } from './values.js';

/** A proxy for the hash stored under `znsocket.Dict:<key>`. */
export class Dict {
  /**
   * @param {import('./client.js').Client} client A connected client.
   * @param {string} key The user key (without prefix), e.g. `"meters/7"`.
   */
  constructor(client, key) {
    this.client = client;
    /** The user key. */
    this.name = key;
    /** The full key, `znsocket.Dict:<key>`. */
    this.key = DICT_PREFIX + key;
  }

  /**
   * The value of `field`, or `undefined` when the field does not exist.
   * @param {string} field
   * @returns {Promise<unknown>}
   */
  async get(field) {
    const text = await this.client.call('hget', [this.key, field]);
    return text === null || text === undefined ? undefined : decodeValue(this.client, text);
  }

  /**
   * Set one field; refresh `{keys: [field]}`.
   * @param {string} field
   * @param {unknown} value Any JSON value (or a List/Dict proxy, stored as a reference).
   * @returns {Promise<void>}
   */
  async set(field, value) {
    await this.client.call('hset', [this.key, field, encodeValue(value)]);
    this.client.sendRefresh(this.key, { keys: [field] });
  }

  /**
   * Set several fields in one pipeline; one refresh `{keys: [...]}`.
   * @param {Record<string, unknown>} fields
   * @returns {Promise<void>}
   */
  async update(fields) {
    const names = Object.keys(fields);
    if (names.length === 0) return;
    const pipe = this.client.pipeline();
    for (const k of names) pipe.add('hset', [this.key, k, encodeValue(fields[k])]);
    await pipe.execute();
    this.client.sendRefresh(this.key, { keys: names });
  }

  /**
   * Remove a field; refresh `{keys: [field]}`.
   * @param {string} field
   * @returns {Promise<boolean>} Whether the field existed.
   */
  async delete(field) {
    const removed = Number(await this.client.call('hdel', [this.key, field])) === 1;
    if (removed) this.client.sendRefresh(this.key, { keys: [field] });
    return removed;
  }

  /**
   * Whether `field` exists.
   * @param {string} field
   * @returns {Promise<boolean>}
   */
  async has(field) {
    return Number(await this.client.call('hexists', [this.key, field])) === 1;
  }

  /**
   * Field names in insertion order.
   * @returns {Promise<string[]>}
   */
  async keys() {
    return (await this.client.call('hkeys', [this.key])).map(String);
  }

  /**
   * Values in field order.
   * @returns {Promise<unknown[]>}
   */
  async values() {
    const texts = await this.client.call('hvals', [this.key]);
    return texts.map((/** @type {string} */ t) => decodeValue(this.client, t));
  }

  /**
   * `[field, value]` pairs in field order.
   * @returns {Promise<[string, unknown][]>}
   */
  async entries() {
    const all = await this.client.call('hgetall', [this.key]);
    return Object.entries(all).map(([k, t]) => [k, decodeValue(this.client, /** @type {string} */ (t))]);
  }

  /**
   * Number of fields.
   * @returns {Promise<number>}
   */
  async length() {
    return Number(await this.client.call('hlen', [this.key]));
  }

  /**
   * Every field as a plain object.
   * @returns {Promise<Record<string, unknown>>}
   */
  async toObject() {
    return Object.fromEntries(await this.entries());
  }

  /**
   * Run `callback(data)` when another client announces a change of this dict.
   * @param {(data: {keys?: string[]}) => void} callback
   * @returns {() => void} Removes the callback.
   */
  onRefresh(callback) {
    return this.client.onRefresh(this.key, callback);
  }
}

registerProxy('Dict', Dict);
