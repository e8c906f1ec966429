/**
 * The gateway's time-series events (`docs/time-series-events.md`): `ts:info`, `ts:range`
 * (raw or downsampled to N buckets), `ts:latest` and `ts:resume`, on keys a `list` map rule
 * turns into a TStorage series.
 *
 * Times in requests may be unix seconds (a number, the browser convention), a `Date`, an
 * ISO-8601 string, or TStorage nanoseconds as a `bigint` or a string of digits; they travel
 * as ISO strings or digit strings, so nanoseconds stay exact. Answers use `unit`
 * (`"unix_s"` by default here; `"tstorage_ns"` and `"unix_ns"` answers hold integers beyond
 * JavaScript's exact range). Watermarks are decimal strings: pass them back unchanged.
 * @module timeseries
 */

/** Event names. */
export const EVENTS = Object.freeze({ INFO: 'ts:info', RANGE: 'ts:range', LATEST: 'ts:latest', RESUME: 'ts:resume' });

// TStorage time 0 (2001-01-01T00:00:00Z) in unix microseconds.
const EPOCH_US = 978307200000000n;

/**
 * @typedef {number | Date | string | bigint | null | undefined} TimeLike
 * A time: unix seconds (number), a `Date`, an ISO-8601 string, TStorage ns (`bigint` or a
 * string of digits), or null/undefined for unbounded.
 */

/**
 * @typedef {'unix_s' | 'unix_ms' | 'unix_ns' | 'tstorage_ns'} Unit
 */

/**
 * A time as the events accept it: an ISO-8601 string, or TStorage ns as a digit string.
 * @param {TimeLike} t
 * @returns {string | null}
 */
export function wireTime(t) {
  if (t === null || t === undefined) return null;
  if (typeof t === 'bigint') return t.toString();
  if (typeof t === 'string') return t;
  if (t instanceof Date) return t.toISOString();
  if (typeof t === 'number' && Number.isFinite(t)) {
    // Microseconds are what a float of unix seconds holds reliably today.
    return ((BigInt(Math.round(t * 1e6)) - EPOCH_US) * 1000n).toString();
  }
  throw new TypeError(`not a time: ${String(t)}`);
}

/**
 * @param {Record<string, unknown>} kwargs
 * @returns {Record<string, unknown>} Without undefined entries.
 */
function defined(kwargs) {
  return Object.fromEntries(Object.entries(kwargs).filter(([, v]) => v !== undefined));
}

/**
 * Count and first/last capture time of a series.
 * @param {import('./client.js').Client} client
 * @param {string} key User key (`meters/7/3`) or full key.
 * @param {{unit?: Unit}} [options]
 * @returns {Promise<{key: string, count: number, first: number|null, last: number|null, watermark: string}>}
 */
export async function info(client, key, options = {}) {
  return client.call(EVENTS.INFO, [key], { unit: options.unit ?? 'unix_s' });
}

/**
 * @typedef {object} RangeOptions
 * @property {TimeLike} [start] Inclusive start; unbounded when absent.
 * @property {TimeLike} [end] Exclusive end; unbounded when absent.
 * @property {number} [limit] Raw records at most (server default 10,000, at most 100,000);
 *   when more remain the answer has `truncated: true` and `next`, a digit string of TStorage
 *   ns (continue with `start: next`).
 * @property {number} [buckets] Downsample to this many equal time slices (1..10,000).
 * @property {TimeLike} [asOf] Read the series as it was at this watermark/time.
 * @property {Unit} [unit] Unit of the times in the answer (default `unix_s`).
 */

/**
 * Records of a time window, raw (`mode: "raw"`, `t`, `v`) or downsampled
 * (`mode: "buckets"`, `t`, `n`, `min`, `max`, `mean`, `last`).
 * @param {import('./client.js').Client} client
 * @param {string} key
 * @param {RangeOptions} [options]
 * @returns {Promise<any>}
 */
export async function range(client, key, options = {}) {
  const answer = await client.call(
    EVENTS.RANGE,
    [key],
    defined({
      start: wireTime(options.start),
      end: wireTime(options.end),
      limit: options.limit,
      buckets: options.buckets,
      as_of: options.asOf === undefined ? undefined : wireTime(options.asOf),
      unit: options.unit ?? 'unix_s',
    }),
  );
  // `next` arrives as an integer of TStorage ns, beyond a JavaScript number's exact range
  // (it may be off by up to 64 ns): hand it on as a digit string, which `start` takes as ns.
  if (answer && typeof answer.next === 'number') answer.next = BigInt(answer.next).toString();
  return answer;
}

/**
 * A window downsampled to `buckets` slices of equal duration (min/max/mean/last/n each).
 * @param {import('./client.js').Client} client
 * @param {string} key
 * @param {number} buckets 1..10,000.
 * @param {Omit<RangeOptions, 'buckets'>} [options]
 * @returns {Promise<any>}
 */
export async function downsample(client, key, buckets, options = {}) {
  return range(client, key, { ...options, buckets });
}

/**
 * The newest `n` records, oldest first (raw answer shape).
 * @param {import('./client.js').Client} client
 * @param {string} key
 * @param {number} [n] Default 1 (at most 100,000).
 * @param {{asOf?: TimeLike, unit?: Unit}} [options]
 * @returns {Promise<any>}
 */
export async function latest(client, key, n = 1, options = {}) {
  return client.call(
    EVENTS.LATEST,
    [key],
    defined({ n, as_of: options.asOf === undefined ? undefined : wireTime(options.asOf), unit: options.unit ?? 'unix_s' }),
  );
}

/**
 * The records TStorage acquired since a watermark, per key: pass each answer's
 * `watermark` as the next `since` and nothing is missed or repeated.
 * @param {import('./client.js').Client} client
 * @param {string[]} keys At most 100.
 * @param {string | Record<string, string>} since A watermark (from any `ts:*` answer), or one per key.
 * @param {{unit?: Unit}} [options]
 * @returns {Promise<{watermark: string, changes: Record<string, {t: number[], v: unknown[], acq: string[]}>}>}
 */
export async function resume(client, keys, since, options = {}) {
  return client.call(EVENTS.RESUME, [], { keys, since, unit: options.unit ?? 'unix_s' });
}
