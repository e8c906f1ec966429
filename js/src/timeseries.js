/**
 * The gateway's time-series events (`docs/time-series-events.md`): `ts:info`, `ts:range`
 * (raw or downsampled to N buckets), `ts:latest` and `ts:resume`, on keys a `list` map rule
 * turns into a TStorage series. This is the JavaScript API for time-window reads; the
 * dashboard uses it too.
 *
 * Times in requests may be unix seconds (a number, the browser convention), a `Date`, an
 * ISO-8601 string, or TStorage nanoseconds as a `bigint` or a string of digits; they travel
 * as ISO strings or digit strings, so nanoseconds stay exact.
 *
 * Times in answers (`t`, `first`, `last`) are in `unit`: `"unix_s"` by default here (the
 * gateway's own default is `"unix_ns"`), or `"unix_ms"`, `"unix_ns"`, `"tstorage_ns"`.
 * The two nanosecond units are integers beyond a JavaScript number's exact range (2^53), so
 * they arrive rounded to about 100 ns; use them only when that is acceptable.
 *
 * Watermarks (`watermark`, `acq`) are decimal strings: pass them back unchanged (as
 * `since` of {@link resume} or `asOf`).
 *
 * Bulk reads: {@link rangeColumns} (raw) and {@link downsampleColumns} (buckets) ask for
 * binary columns (rules whose codec holds one number) and return typed arrays: times as a
 * `BigInt64Array` of exact nanoseconds, values as the codec's typed array (`Float64Array`
 * for `struct:<d`); {@link secondsOf} turns the times into a `Float64Array` of unix
 * seconds for charts.
 * @module timeseries
 */

/** Event names. */
export const EVENTS = Object.freeze({ INFO: 'ts:info', RANGE: 'ts:range', LATEST: 'ts:latest', RESUME: 'ts:resume' });

/** The units an answer's times may be given in. */
export const UNITS = Object.freeze(['unix_s', 'unix_ms', 'unix_ns', 'tstorage_ns']);

// TStorage time 0 (2001-01-01T00:00:00Z) in unix microseconds.
const EPOCH_US = 978307200000000n;
/**
 * @typedef {number | Date | string | bigint | null | undefined} TimeLike
 * A time: unix seconds (number), a `Date`, an ISO-8601 string, TStorage ns (`bigint` or a
 * string of digits, e.g. a watermark), or null/undefined for unbounded.
 */

/**
 * @typedef {'unix_s' | 'unix_ms' | 'unix_ns' | 'tstorage_ns'} Unit
 */

/**
 * @typedef {object} InfoAnswer
 * @property {string} key User key.
 * @property {number} count Records (distinct capture times) in the series.
 * @property {number|null} first Oldest capture time in `unit`, `null` when empty.
 * @property {number|null} last Newest capture time in `unit`, `null` when empty.
 * @property {string} watermark Every record with a lower `acq` is counted, no other.
 */

/**
 * @typedef {object} RawAnswer
 * @property {string} key
 * @property {'raw'} mode
 * @property {number} count Records in the window (more than `t.length` when truncated).
 * @property {boolean} truncated True when the window holds more than were returned.
 * @property {string|null} next Where the rest of a truncated window starts: TStorage ns as
 *   a digit string (pass it as `start`), `null` when not truncated. See {@link range}.
 * @property {number[]} t Capture times in `unit`, oldest first.
 * @property {unknown[]} v Values as the rule's codec decodes them (numbers for `struct:<d`).
 * @property {string} watermark
 */

/**
 * @typedef {object} BucketsAnswer
 * @property {string} key
 * @property {'buckets'} mode
 * @property {number} count Records in the window.
 * @property {number} buckets Slices asked for (empty ones are left out of the arrays).
 * @property {number[]} t Start of each non-empty slice in `unit`.
 * @property {number[]} n Records per slice.
 * @property {(number|null)[]} min
 * @property {(number|null)[]} max
 * @property {(number|null)[]} mean
 * @property {(number|null)[]} last Value of each slice's newest record.
 * @property {'rows'} [align] Set when the slices were aligned (`align: 'rows'`, or left
 *   out on a long window); the following fields are then given too.
 * @property {number[]} [t_end] End (exclusive) of each slice in `unit`: the slice holds the
 *   records with `t <= time < t_end`.
 * @property {number[]} [t_first] Time of each slice's oldest record.
 * @property {number[]} [t_last] Time of each slice's newest record.
 * @property {(number|null)[]} [first] Value of each slice's oldest record.
 * @property {string} watermark
 */

/**
 * @typedef {object} BucketColumnsAnswer
 * A {@link BucketsAnswer} whose arrays are typed: times (`t`, and aligned `t_end`,
 * `t_first`, `t_last`) a `BigInt64Array` of exact nanoseconds in `unit`, counts `n` a
 * `Float64Array`, statistics `Float64Array`s (NaN and infinities as they are, where the
 * JSON form shows `null`).
 * @property {string} key
 * @property {'buckets'} mode
 * @property {number} count
 * @property {number} buckets
 * @property {BigInt64Array} t
 * @property {Float64Array} n
 * @property {Float64Array} min
 * @property {Float64Array} max
 * @property {Float64Array} mean
 * @property {Float64Array} last
 * @property {'rows'} [align]
 * @property {BigInt64Array} [t_end]
 * @property {BigInt64Array} [t_first]
 * @property {BigInt64Array} [t_last]
 * @property {Float64Array} [first]
 * @property {string} watermark
 */

/**
 * @typedef {object} ResumeAnswer
 * @property {string} watermark Pass it as the next `since`.
 * @property {Record<string, {t: number[], v: unknown[], acq: string[]}>} changes Per key the
 *   records acquired in `[since, watermark)`, by capture time then acquisition time.
 */

/**
 * @typedef {object} ColumnsAnswer
 * @property {string} key
 * @property {'columns'} mode
 * @property {number} count Records in the window (more than `t.length` when truncated).
 * @property {boolean} truncated
 * @property {string|null} next As in {@link RawAnswer}.
 * @property {BigInt64Array} t Capture times in `unit` (`unix_ns` or `tstorage_ns`), exact.
 * @property {Float64Array|Float32Array|Int32Array|Int16Array|Int8Array|Uint32Array|Uint16Array|Uint8Array|BigInt64Array|BigUint64Array} v
 *   Values in the codec's type (`dtype`); NaN and infinities as stored, where the JSON form
 *   shows `null`.
 * @property {string} dtype The values' numpy dtype (`"<f8"` for `struct:<d`).
 * @property {string} watermark
 */

// numpy dtype (kind + size) -> typed array of that layout
const TYPED = Object.freeze({
  f8: Float64Array, f4: Float32Array, i8: BigInt64Array, u8: BigUint64Array, i4: Int32Array,
  u4: Uint32Array, i2: Int16Array, u2: Uint16Array, i1: Int8Array, u1: Uint8Array, b1: Uint8Array,
});
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The bytes of a binary attachment (an `ArrayBuffer` in browsers, a `Buffer` in Node.js).
 * @param {unknown} x
 * @returns {Uint8Array}
 */
function bytesOf(x) {
  if (x instanceof ArrayBuffer) return new Uint8Array(x);
  if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  throw new TypeError(`expected a binary column, got ${typeof x}`);
}

/**
 * A binary column as a typed array (copied when its bytes are not aligned or not in this
 * machine's byte order).
 * @param {unknown} raw The attachment.
 * @param {string} dtype A numpy dtype string: byte order (`<`, `>`, `|`, `=`), kind, size.
 * @returns {ColumnsAnswer['v']}
 * @throws {TypeError} For a dtype without a typed array, or bytes that do not fill it.
 */
export function typedColumn(raw, dtype) {
  const order = dtype[0];
  const Kind = TYPED[/** @type {keyof typeof TYPED} */ (dtype.slice(1))];
  if (Kind === undefined || !'<>|='.includes(order)) throw new TypeError(`no typed array for dtype ${dtype}`);
  let bytes = bytesOf(raw);
  const size = Kind.BYTES_PER_ELEMENT;
  if (bytes.byteLength % size) throw new TypeError(`${bytes.byteLength} bytes are not ${dtype} values`);
  if (size > 1 && (order === '>' ? LITTLE_ENDIAN : order === '<' ? !LITTLE_ENDIAN : false)) {
    bytes = bytes.slice();
    for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
  } else if (bytes.byteOffset % size) {
    bytes = bytes.slice(); // typed arrays need aligned offsets
  }
  return new Kind(bytes.buffer, bytes.byteOffset, bytes.byteLength / size);
}

/**
 * Nanosecond times as unix seconds (what `Date`-based charts take).
 * @param {BigInt64Array} t Times from {@link rangeColumns}.
 * @param {'unix_ns' | 'tstorage_ns'} [unit] Their unit (default `unix_ns`).
 * @returns {Float64Array}
 */
export function secondsOf(t, unit = 'unix_ns') {
  const out = new Float64Array(t.length);
  const epochNs = unit === 'tstorage_ns' ? EPOCH_US * 1000n : 0n;
  for (let i = 0; i < t.length; i++) {
    // whole seconds exactly, then the fraction: a float of ns would lose ~100 ns
    const ns = t[i] + epochNs;
    const s = ns / 1000000000n;
    out[i] = Number(s) + Number(ns - s * 1000000000n) / 1e9;
  }
  return out;
}

/**
 * A time as the events accept it: an ISO-8601 string, or TStorage ns as a digit string.
 * @param {TimeLike} t
 * @returns {string | null}
 * @throws {TypeError} For anything that is not a time.
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
 * A watermark as the events take it: a decimal string.
 * @param {unknown} w A watermark string from an answer, or a `bigint`.
 * @returns {string}
 * @throws {TypeError} For a number that is not exact (watermarks exceed 2^53) or anything else.
 */
export function wireWatermark(w) {
  if (typeof w === 'string') return w;
  if (typeof w === 'bigint') return w.toString();
  if (typeof w === 'number' && Number.isSafeInteger(w)) return String(w);
  throw new TypeError(`a watermark is the decimal string an answer carries, not ${String(w)}`);
}

/**
 * @param {Record<string, unknown>} kwargs
 * @returns {Record<string, unknown>} Without undefined entries.
 */
function defined(kwargs) {
  return Object.fromEntries(Object.entries(kwargs).filter(([, v]) => v !== undefined));
}

/** @param {{asOf?: TimeLike}} options */
function asOfOf(options) {
  return options.asOf === undefined ? undefined : wireTime(options.asOf);
}

/**
 * Count and first/last capture time of a series.
 * @param {import('./client.js').Client} client
 * @param {string} key User key (`meters/7/3`) or full key.
 * @param {{unit?: Unit}} [options]
 * @returns {Promise<InfoAnswer>}
 */
export async function info(client, key, options = {}) {
  return client.call(EVENTS.INFO, [key], { unit: options.unit ?? 'unix_s' });
}

/**
 * @typedef {object} RangeOptions
 * @property {TimeLike} [start] Inclusive start; unbounded when absent.
 * @property {TimeLike} [end] Exclusive end; unbounded when absent.
 * @property {number} [limit] Raw records at most (server default 10,000, at most 100,000);
 *   the oldest of the window come first, and when more remain the answer has
 *   `truncated: true` and `next` (continue with `start: next`).
 * @property {number} [buckets] Downsample to this many time slices (1..10,000): equal, or
 *   aligned over a long window (see `align`).
 * @property {'auto'|'rows'|'equal'} [align] With `buckets`: `'rows'` lets each inner slice
 *   edge move, by at most a quarter of a slice, to a boundary of the gateway's chunk
 *   summaries, so a long series is downsampled from them without reading its records (the
 *   answer gives each slice's real end and record times: `t_end`, `t_first`, `t_last`).
 *   `'auto'` (the default) does so once the window holds `index_chunk / 8` records per
 *   slice (512 by default); `'equal'` keeps equal slices, one read per edge of a long
 *   series.
 * @property {TimeLike} [asOf] Read the series as it was at this watermark/time.
 * @property {Unit} [unit] Unit of the times in the answer (default `unix_s`).
 */

/**
 * The `ts:range` call of every window read: the window, limit and `asOf` of `options`,
 * times in `options.unit` (else `unit`), and the read mode's own fields in `extra`.
 * @param {import('./client.js').Client} client
 * @param {string} key
 * @param {Omit<RangeOptions, 'buckets'>} options
 * @param {string} unit
 * @param {Record<string, unknown>} extra
 * @returns {Promise<any>}
 */
function callRange(client, key, options, unit, extra) {
  return client.call(
    EVENTS.RANGE,
    [key],
    defined({
      start: wireTime(options.start),
      end: wireTime(options.end),
      limit: options.limit,
      as_of: asOfOf(options),
      unit: options.unit ?? unit,
      ...extra,
    }),
  );
}

/**
 * Records of a time window `[start, end)`, raw (`mode: "raw"`) or, with `buckets`,
 * downsampled (`mode: "buckets"`).
 *
 * A truncated raw answer carries `next`, the exact `start` of the following page (TStorage
 * ns as a decimal string): pages neither skip nor repeat records.
 * @param {import('./client.js').Client} client
 * @param {string} key
 * @param {RangeOptions} [options]
 * @returns {Promise<RawAnswer | BucketsAnswer>}
 */
export async function range(client, key, options = {}) {
  return callRange(client, key, options, 'unix_s', { buckets: options.buckets, align: options.align });
}

/**
 * Raw records of a window `[start, end)` as binary columns: typed arrays, no JSON per
 * record. Only for rules whose codec holds one number (else the gateway answers
 * `DataError`). `limit` may be up to 1,048,576 (a page of 8 MiB of times and 8 MiB of
 * float64 values); a truncated answer continues with `start: next`.
 * @param {import('./client.js').Client} client
 * @param {string} key
 * @param {Omit<RangeOptions, 'buckets' | 'align' | 'unit'> & {unit?: 'unix_ns' | 'tstorage_ns'}} [options]
 *   `unit` of the times (default `unix_ns`).
 * @returns {Promise<ColumnsAnswer>}
 */
export async function rangeColumns(client, key, options = {}) {
  const answer = await callRange(client, key, options, 'unix_ns', { columns: true });
  return {
    ...answer,
    t: /** @type {BigInt64Array} */ (typedColumn(answer.t, '<i8')),
    v: typedColumn(answer.v, answer.dtype),
  };
}

/**
 * A window downsampled to `buckets` slices of equal duration (min/max/mean/last/n each),
 * or, aligned (`align: 'rows'`, and by default over a long window), slices whose inner
 * edges moved to the gateway's chunk summaries (see {@link RangeOptions}). An unbounded side of the window ends at the first/last
 * record. Values must be numbers, else the gateway answers `DataError`.
 * @param {import('./client.js').Client} client
 * @param {string} key
 * @param {number} buckets 1..10,000.
 * @param {Omit<RangeOptions, 'buckets' | 'limit'>} [options]
 * @returns {Promise<BucketsAnswer>}
 */
export async function downsample(client, key, buckets, options = {}) {
  return /** @type {Promise<BucketsAnswer>} */ (range(client, key, { ...options, buckets }));
}

/**
 * {@link downsample} with the answer in binary columns: typed arrays, no JSON number per
 * bucket (see {@link BucketColumnsAnswer}).
 * @param {import('./client.js').Client} client
 * @param {string} key
 * @param {number} buckets 1..10,000.
 * @param {Omit<RangeOptions, 'buckets' | 'limit' | 'unit'> & {unit?: 'unix_ns' | 'tstorage_ns'}} [options]
 *   `unit` of the times (default `unix_ns`).
 * @returns {Promise<BucketColumnsAnswer>}
 */
export async function downsampleColumns(client, key, buckets, options = {}) {
  const answer = await callRange(client, key, options, 'unix_ns', { buckets, align: options.align, columns: true });
  const out = { ...answer };
  for (const name of ['t', 't_end', 't_first', 't_last']) {
    if (name in answer) out[name] = typedColumn(answer[name], '<i8');
  }
  for (const name of ['min', 'max', 'mean', 'last', 'first']) {
    if (name in answer) out[name] = typedColumn(answer[name], answer.dtype);
  }
  out.n = Float64Array.from(/** @type {BigInt64Array} */ (typedColumn(answer.n, '<i8')), Number);
  return /** @type {BucketColumnsAnswer} */ (out);
}

/**
 * The newest `n` records, oldest first (raw answer shape).
 * @param {import('./client.js').Client} client
 * @param {string} key
 * @param {number} [n] Default 1 (at most 100,000).
 * @param {{asOf?: TimeLike, unit?: Unit}} [options]
 * @returns {Promise<RawAnswer>}
 */
export async function latest(client, key, n = 1, options = {}) {
  return client.call(EVENTS.LATEST, [key], defined({ n, as_of: asOfOf(options), unit: options.unit ?? 'unix_s' }));
}

/**
 * The records TStorage acquired since a watermark, per key: pass each answer's
 * `watermark` as the next `since` and nothing is missed or repeated (a correction shows up
 * as a record whose `t` is already known).
 * @param {import('./client.js').Client} client
 * @param {string[]} keys At most 100.
 * @param {string | bigint | Record<string, string | bigint>} since A watermark (from any
 *   `ts:*` answer), or one per key.
 * @param {{unit?: Unit}} [options]
 * @returns {Promise<ResumeAnswer>}
 */
export async function resume(client, keys, since, options = {}) {
  const wire =
    since !== null && typeof since === 'object'
      ? Object.fromEntries(Object.entries(since).map(([k, w]) => [k, wireWatermark(w)]))
      : wireWatermark(since);
  return client.call(EVENTS.RESUME, [], { keys, since: wire, unit: options.unit ?? 'unix_s' });
}
