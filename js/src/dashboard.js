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
 * Every mapped series with records (and the fixed keys of the configuration) that the
 * connection's token may read.
 * @param {import('./client.js').Client} client
 * @returns {Promise<SeriesInfo[]>}
 */
export async function listSeries(client) {
  const data = await client.call(SERIES_EVENT, [], {});
  return data.series;
}

/**
 * The listing with, beside the series, one writable List key per list rule (`examples`),
 * which the dashboard uses to show how to add data when nothing is listed yet.
 * @param {import('./client.js').Client} client
 * @returns {Promise<{series: SeriesInfo[], examples: string[]}>}
 */
export async function listing(client) {
  const data = await client.call(SERIES_EVENT, [], {});
  return { series: data.series, examples: data.examples ?? [] };
}
