/**
 * The dashboard's own read: the list of mapped series (`dashboard:series`, documented in
 * `gateway/dashboard.py`). Everything else about a series (windows, downsampling, the
 * newest records, resume) is read with the gateway's time-series events: see
 * `timeseries.js`.
 * @module dashboard
 */

/** Event that lists the mapped series. */
export const SERIES_EVENT = 'dashboard:series';

/**
 * @typedef {object} SeriesInfo
 * @property {string} key User key, e.g. `"meters/7/3"`.
 * @property {string} full_key `znsocket.List:<key>`.
 * @property {string} pattern The map rule's pattern.
 * @property {number} cid
 * @property {number} mid
 * @property {number} moid
 * @property {number} count Number of records (distinct capture times), as `ts:info` counts them.
 * @property {number|null} first_time Oldest capture time (unix s), `null` when empty.
 * @property {number|null} last_time Newest capture time (unix s), `null` when empty.
 * @property {unknown} latest The newest value, as `ts:latest` gives it (`null` when empty).
 * @property {string|null} unit The map rule's unit of the values (e.g. `"V"`), if it names one.
 * @property {string|null} label The map rule's label for the values, if it names one.
 */

/**
 * @typedef {object} ListingOptions
 * @property {string} [prefix] Only the keys starting with it.
 * @property {string} [match] Only the keys matching this glob (`*`, `?`, `[...]`).
 * @property {number} [limit] At most this many series, in key order (the rest from `next`).
 * @property {string} [after] Only the keys after this one (a previous answer's `next`).
 */

/** The arguments of `dashboard:series` that are set (an empty object lists everything). */
function listingArgs(options = {}) {
  /** @type {Record<string, unknown>} */
  const kwargs = {};
  for (const name of ['prefix', 'match', 'limit', 'after']) {
    if (options[name] !== undefined && options[name] !== null) kwargs[name] = options[name];
  }
  return kwargs;
}

/**
 * Every mapped series with records (and the fixed keys of the configuration) that the
 * connection's token may read; with options, one page of them (see {@link listing}).
 * @param {import('./client.js').Client} client
 * @param {ListingOptions} [options]
 * @returns {Promise<SeriesInfo[]>}
 */
export async function listSeries(client, options = {}) {
  const data = await client.call(SERIES_EVENT, [], listingArgs(options));
  return data.series;
}

/**
 * The listing with, beside the series, one writable List key per list rule (`examples`),
 * which the dashboard uses to show how to add data when nothing is listed yet. With
 * `limit`, `next` is the key to pass as `after` for the next page (`null` on the last).
 * @param {import('./client.js').Client} client
 * @param {ListingOptions} [options]
 * @returns {Promise<{series: SeriesInfo[], examples: string[], next: string|null}>}
 */
export async function listing(client, options = {}) {
  const data = await client.call(SERIES_EVENT, [], listingArgs(options));
  return { series: data.series, examples: data.examples ?? [], next: data.next ?? null };
}
