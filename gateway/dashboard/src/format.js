// How numbers and times are shown on the page.

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
 * A unix time (seconds) as a local date and time with milliseconds.
 * @param {number|null|undefined} t
 * @returns {string}
 */
export function formatTime(t) {
  if (t === null || t === undefined) return '–';
  const d = new Date(t * 1000);
  const pad = (/** @type {number} */ n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}
