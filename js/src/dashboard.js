/**
 * The dashboard's reads: the list of mapped series, and windows of one series shaped for
 * a chart (the newest records when a window is too large for raw reading, or the window
 * downsampled to N time buckets with min/max/mean/last).
 *
 * They use the gateway's `dashboard:series` and `dashboard:window` events (documented in
 * `gateway/dashboard.py`). Times are unix seconds (floats), the chart convention. For the
 * general time-series events (`ts:*`) see `timeseries.js`.
 * @module dashboard
 */

import { ZnSocketError } from './errors.js';

/** Event that lists the mapped series. */
export const SERIES_EVENT = 'dashboard:series';
/** Event that reads a time window of one series. */
export const WINDOW_EVENT = 'dashboard:window';

/**
 * @typedef {object} SeriesInfo
 * @property {string} key User key, e.g. `"meters/7/3"`.
 * @property {string} full_key `znsocket.List:<key>`.
 * @property {string} pattern The map rule's pattern.
 * @property {number} cid
 * @property {number} mid
 * @property {number} moid
 * @property {number} count Number of records (distinct capture times).
 * @property {number|null} first_time Oldest capture time (unix s), `null` when empty.
 * @property {number|null} last_time Newest capture time (unix s), `null` when empty.
 * @property {unknown} [latest] The newest element (as the List shows it).
 */

/**
 * @typedef {object} RawWindow
 * @property {'raw'} mode
 * @property {string} key
 * @property {number} count Records in the whole series.
 * @property {number|null} first_time Oldest capture time of the series (unix s).
 * @property {number|null} last_time Newest capture time of the series (unix s).
 * @property {number} in_window Records in the requested window.
 * @property {boolean} truncated True when only the newest `limit` records were returned.
 * @property {number[]} t Capture times (unix s), ascending.
 * @property {(number|null)[]} v Values (`null` where not numeric).
 */

/**
 * @typedef {object} BucketWindow
 * @property {'buckets'} mode
 * @property {string} key
 * @property {number} count
 * @property {number|null} first_time
 * @property {number|null} last_time
 * @property {number} in_window
 * @property {number[]} t Start of each non-empty bucket (unix s).
 * @property {(number|null)[]} min
 * @property {(number|null)[]} max
 * @property {(number|null)[]} mean
 * @property {(number|null)[]} last Value of the newest record of each bucket.
 * @property {number[]} n Records per bucket.
 */

/**
 * @typedef {object} WindowOptions
 * @property {number|null} [start] Window start, unix seconds (inclusive); unbounded when absent.
 * @property {number|null} [end] Window end, unix seconds (exclusive); unbounded when absent.
 * @property {number} [limit] Most raw points to return (default 10000, newest kept).
 */

/**
 * @param {import('./client.js').Client} client
 * @param {Record<string, unknown>} kwargs
 * @returns {Promise<any>}
 */
async function window(client, kwargs) {
  const data = await client.call(WINDOW_EVENT, [], kwargs);
  if (data === null || typeof data !== 'object') throw new ZnSocketError('malformed window answer');
  return data;
}

/**
 * Every mapped series with records (and the fixed keys of the configuration).
 * @param {import('./client.js').Client} client
 * @returns {Promise<SeriesInfo[]>}
 */
export async function listSeries(client) {
  const data = await client.call(SERIES_EVENT, [], {});
  return data.series;
}

/**
 * Count and first/last capture time of one series.
 * @param {import('./client.js').Client} client
 * @param {string} key User key or full key of the List.
 * @returns {Promise<{key: string, count: number, first_time: number|null, last_time: number|null}>}
 */
export async function info(client, key) {
  const w = await window(client, { key, latest: 1 });
  return { key: w.key, count: w.count, first_time: w.first_time, last_time: w.last_time };
}

/**
 * The raw records of a time window.
 * @param {import('./client.js').Client} client
 * @param {string} key User key or full key of the List.
 * @param {WindowOptions} [options]
 * @returns {Promise<RawWindow>}
 */
export async function range(client, key, options = {}) {
  return window(client, { key, start: options.start ?? null, end: options.end ?? null, ...limitOf(options) });
}

/**
 * The newest `n` records (optionally of those before `end`).
 * @param {import('./client.js').Client} client
 * @param {string} key User key or full key of the List.
 * @param {number} n How many.
 * @param {{end?: number|null}} [options]
 * @returns {Promise<RawWindow>}
 */
export async function latest(client, key, n, options = {}) {
  return window(client, { key, latest: n, end: options.end ?? null, limit: n });
}

/**
 * A time window downsampled to `buckets` equal slices (min/max/mean/last per slice); when
 * the window holds no more than `2 * buckets` records the raw records come back instead.
 * @param {import('./client.js').Client} client
 * @param {string} key User key or full key of the List.
 * @param {number} buckets Number of slices (1..10000).
 * @param {WindowOptions} [options]
 * @returns {Promise<RawWindow | BucketWindow>}
 */
export async function downsample(client, key, buckets, options = {}) {
  return window(client, {
    key,
    start: options.start ?? null,
    end: options.end ?? null,
    buckets,
    ...limitOf(options),
  });
}

/** @param {WindowOptions} options */
function limitOf(options) {
  return options.limit === undefined ? {} : { limit: options.limit };
}
