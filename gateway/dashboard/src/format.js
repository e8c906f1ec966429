// How numbers and times are shown on the page: one time format (local time, the zone shown
// beside it) for the header, the axis, the legend and downloads.

const pad = (/** @type {number} */ n, w = 2) => String(n).padStart(w, '0');

/**
 * A value as shown in the table and the latest-value display.
 * @param {unknown} v
 * @returns {string}
 */
export function formatValue(v) {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return String(v);
    const abs = Math.abs(v);
    if (abs !== 0 && (abs >= 1e9 || abs < 1e-4)) return v.toExponential(4);
    return String(Number(v.toPrecision(8)));
  }
  if (typeof v === 'object' && v !== null && 'v' in v) return formatValue(/** @type {any} */ (v).v);
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 39)}…` : s;
}

/**
 * A count with thousands separators.
 * @param {number|null|undefined} n
 * @returns {string}
 */
export function formatCount(n) {
  return n === null || n === undefined ? '–' : n.toLocaleString('en-US');
}

/**
 * A count and its noun, singular for one: `1 record`, `2 records`.
 * @param {number} n
 * @param {string} noun The singular.
 * @returns {string}
 */
export function counted(n, noun) {
  return `${formatCount(n)} ${n === 1 ? noun : `${noun}s`}`;
}

/**
 * A unix time (seconds) as a local date and time with milliseconds.
 * @param {number|null|undefined} t
 * @returns {string}
 */
export function formatTime(t) {
  if (t === null || t === undefined) return '–';
  const d = new Date(t * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/**
 * A tick label of the time axis, as precise as the distance between ticks needs, in the
 * same local time as {@link formatTime}: a date for days apart, minutes for minutes apart,
 * seconds, then milliseconds when zoomed in further. The date is repeated where it changes.
 * @param {number} t Unix seconds.
 * @param {number} step Seconds between two ticks.
 * @param {number|null} prev The tick before (unix s), or null for the first one.
 * @returns {string}
 */
export function formatTick(t, step, prev) {
  const d = new Date(t * 1000);
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  if (step >= 86400) return date;
  const newDay = prev === null || new Date(prev * 1000).toDateString() !== d.toDateString();
  let clock = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (step < 60) clock += `:${pad(d.getSeconds())}`;
  if (step < 1) clock += `.${pad(d.getMilliseconds(), 3)}`;
  return newDay ? `${clock}\n${date}` : clock;
}

/**
 * The page's time zone, as shown beside the times: its name and offset from UTC.
 * @param {Date} [at] When (offsets change with daylight saving time).
 * @returns {string} e.g. `"Europe/Berlin (UTC+01:00)"`.
 */
export function timeZoneLabel(at = new Date()) {
  const name = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
  const minutes = -at.getTimezoneOffset();
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return `${name} (UTC${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)})`;
}

/**
 * A value with its unit, when the series names one.
 * @param {unknown} v
 * @param {string|null|undefined} unit
 * @returns {string}
 */
export function formatWithUnit(v, unit) {
  const text = formatValue(v);
  return unit && text !== '–' ? `${text} ${unit}` : text;
}
