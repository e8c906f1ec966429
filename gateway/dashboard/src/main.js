// The dashboard: connects to the gateway that served the page, lists the mapped series,
// draws the chosen one and keeps it live. What is on screen is also readable from
// `window.dashboard` (tests and benchmarks use it).
import {
  connect, List, TStorageUnavailable, ConnectionError, DataError, KeyMappingError, PermissionDeniedError,
  dashboard, timeseries,
} from '../../../js/src/index.js';
import { SeriesChart } from './chart.js';
import { SeriesTable, MAX_LINES } from './seriesTable.js';
import { StatusView } from './status.js';
import { counted, formatCount, formatTime, formatValue, timeZoneLabel } from './format.js';
import { breakAtEnds, rawMaxStep } from './gaps.js';
import './style.css';

const POLL_MS = 250; // new points show within a poll plus the gateway's 100 ms staleness bound
const SERIES_MS = 2000;
/** The listing waits at most this long for the first chart's reads (a slow first read). */
const LISTING_WAIT_MS = 1000;
const RAW_LIMIT = 20000; // new records read at most per poll (more: the view is reloaded)
/** The time range presets (seconds back from now); `all` is the whole series. */
const RANGES = /** @type {Record<string, number|null>} */ ({ '5m': 300, '1h': 3600, '24h': 86400, '7d': 604800, all: null });
/** A series whose newest record is younger than this opens on a live window of this span. */
const LIVE_DEFAULT = '1h';
const nowS = () => Date.now() / 1000;

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
let params = new URLSearchParams(location.hash.slice(1));

const state = {
  /** @type {import('../../../js/src/client.js').ZnClient | null} */
  client: null,
  /** @type {string|null} */
  key: null,
  follow: true,
  /** @type {string} a key of RANGES, or 'custom' (a range the user zoomed or panned to) */
  range: 'all',
  /** The range was not chosen: the first read of the whole series picks it (live or all). */
  defaultPending: false,
  /** @type {{min: number, max: number} | null} the custom range */
  view: null,
  /** @type {import('./chart.js').SeriesMeta} */
  meta: { label: null, unit: null },
  /** @type {Map<string, import('../../../js/src/dashboard.js').SeriesInfo>} the last listing */
  listed: new Map(),
  /** When the window on screen was last read (a live window is read again as it slides). */
  loadedAt: 0,
  /** @type {string[]} series drawn over the picked one */
  overlays: [],
  /** @type {Map<string, number|null>} newest time read of each overlay */
  overlayLast: new Map(),
  /** @type {number|null} newest time held by the chart */
  lastT: null,
  /** @type {number|null} oldest time of the series */
  firstT: null,
  loadSeq: 0,
  /** Reads of the window in flight. */
  loading: 0,
  polling: false,
  /** @type {string|null} the picked key when the gateway refused it (not asked again) */
  refused: null,
  /** Records appended to the chart since the window was last read. */
  appended: 0,
  /** @type {(() => void) | null} */
  offRefresh: null,
  /** @type {number|null} ms from navigation start to the first chart drawn with data */
  firstDrawMs: null,
  /** @type {{mode: string, in_window: number, points: number, numeric: boolean, truncated: boolean, part: string} | null} */
  window: null,
  /** @type {number|null} the series' record count last shown */
  count: null,
};

const status = new StatusView($('status'), $('outage'));
const table = new SeriesTable(
  /** @type {HTMLTableElement} */ ($('series')),
  $('series-empty'),
  (key) => void pick(key),
  (key, on) => setOverlays(on ? [...state.overlays, key] : state.overlays.filter((k) => k !== key)),
  /** @type {HTMLInputElement} */ ($('series-search')),
  $('series-shown'),
);
const chart = new SeriesChart($('chart'), (min, max) => {
  setRange('custom', { min, max });
});
chart.onDraw = () => {
  if (state.firstDrawMs === null) state.firstDrawMs = performance.now();
};

/**
 * Run a gateway call; report TStorage outages on the page instead of throwing.
 * @template T
 * @param {() => Promise<T>} fn
 * @param {string} [key] The picked series the call reads: a refusal of it (no such
 *   series, or not this token's) is shown on the page, and the page stops asking.
 * @returns {Promise<T | undefined>}
 */
async function guarded(fn, key) {
  try {
    const out = await fn();
    status.setTStorage(null);
    return out;
  } catch (exc) {
    if (exc instanceof TStorageUnavailable) status.setTStorage(exc.message);
    else if (key !== undefined && (exc instanceof KeyMappingError || exc instanceof PermissionDeniedError)) {
      if (key === state.key) {
        state.refused = key;
        $('window-info').textContent = exc.message;
      }
    } else if (!(exc instanceof ConnectionError)) console.error(exc);
    return undefined;
  }
}

async function refreshSeries() {
  const client = state.client;
  if (!client?.connected) return;
  const found = await guarded(() => dashboard.listing(client));
  if (!found) return;
  state.listed = new Map(found.series.map((s) => [s.key, s]));
  table.update(found.series);
  showEmptyHint(found.series.length, found.examples);
  if (state.key !== null) setMeta(state.listed.get(state.key));
  else {
    // Nothing picked yet (the address named no series): show the newest series.
    const newest = newestListed();
    if (newest !== null) void pick(newest);
  }
}

/**
 * With nothing listed, say the exact command that adds a record to this gateway.
 * @param {number} listed
 * @param {string[]} examples
 */
function showEmptyHint(listed, examples) {
  const cmd = $('empty-command');
  if (listed > 0 || examples.length === 0) {
    cmd.textContent = '';
    return;
  }
  cmd.textContent =
    `.venv/bin/python -c "import znsocket; c = znsocket.Client.from_url('znsocket://${location.host}'); ` +
    `znsocket.List(c, '${examples[0]}').append(1.5); c.close()"`;
}

/**
 * @param {import('../../../js/src/dashboard.js').SeriesInfo | undefined} info
 * @returns {import('./chart.js').SeriesMeta}
 */
const metaOf = (info) => ({ label: info?.label ?? null, unit: info?.unit ?? null });

/** @param {import('../../../js/src/dashboard.js').SeriesInfo | undefined} info */
function setMeta(info) {
  const meta = metaOf(info);
  state.meta = meta;
  if (meta.label !== chart.meta.label || meta.unit !== chart.meta.unit) {
    chart.setMeta(meta);
    if (state.window !== null) void load();
  }
  $('chart-label').textContent = meta.label ? ` (${meta.label})` : '';
}

/** The newest series of the listing: what the page shows when the address names none. */
function newestListed() {
  let best = null;
  for (const s of state.listed.values()) {
    if (s.last_time !== null && (best === null || s.last_time > /** @type {number} */ (best.last_time))) best = s;
  }
  return best?.key ?? null;
}

/**
 * @param {string} key
 * @param {{range?: string, view?: {min: number, max: number} | null, overlays?: string[]}} [how]
 *   The range to open on (by default a live window when the series is being written, else
 *   all of it), and the series to draw over it (by default those drawn already).
 * @returns {Promise<void>} settled once the first read of the series is sent
 */
async function pick(key, how = {}) {
  if (key === state.key) return;
  state.key = key;
  state.refused = null;
  state.lastT = null;
  state.firstT = null;
  state.window = null;
  state.count = null;
  table.select(key);
  $('chart-title').textContent = key;
  if (how.overlays !== undefined) state.overlays = how.overlays;
  state.overlays = state.overlays.filter((k) => k !== key).slice(0, MAX_LINES - 1);
  table.setOverlays(state.overlays);
  state.offRefresh?.();
  // Writes announced by other clients (or the gateway) fetch new points at once.
  state.offRefresh = state.client ? new List(state.client, key).onRefresh(() => void poll()) : null;
  setMeta(state.listed.get(key));
  chart.set({ mode: 'raw', t: [], v: [], min: [], max: [] }, null);
  if (how.range !== undefined) setRange(how.range, how.view ?? null);
  else {
    // A live window for a series written within its span, else all of it. Not listed
    // yet, the series is read whole at once (no round trip to ask first): its newest
    // time then decides, and a live series is read again on the live window.
    const last = state.listed.get(key)?.last_time;
    setRange(last === undefined ? 'all' : defaultRange(last));
    state.defaultPending = last === undefined;
  }
}

/**
 * A live window for a series written within its span, else all of it.
 * @param {number|null} last The series' newest time (unix s), null when empty.
 * @returns {string}
 */
function defaultRange(last) {
  const live = /** @type {number} */ (RANGES[LIVE_DEFAULT]);
  return last !== null && nowS() - last < live ? LIVE_DEFAULT : 'all';
}

/**
 * Draw these series over the picked one (at most MAX_LINES - 1, none twice, not the picked one).
 * @param {string[]} keys
 */
function setOverlays(keys) {
  state.overlays = [...new Set(keys)].filter((k) => k !== state.key).slice(0, MAX_LINES - 1);
  state.overlayLast = new Map();
  table.setOverlays(state.overlays);
  writeAddress();
  void load();
}

/**
 * Show a preset range (following new points) or a custom one (not following).
 * @param {string} range A key of RANGES, or 'custom'.
 * @param {{min: number, max: number} | null} [view] The custom range.
 */
function setRange(range, view = null) {
  showRange(range, view);
  void load();
}

/**
 * Take a range as {@link setRange} does, without reading it (the records are read already).
 * @param {string} range
 * @param {{min: number, max: number} | null} [view]
 */
function showRange(range, view = null) {
  state.defaultPending = false;
  const custom = range === 'custom' && view !== null;
  state.range = custom ? 'custom' : range in RANGES ? range : 'all';
  state.view = custom ? view : null;
  state.follow = !custom;
  /** @type {HTMLInputElement} */ ($('follow')).checked = state.follow;
  for (const b of document.querySelectorAll('[data-range]')) {
    b.setAttribute('aria-pressed', String(/** @type {HTMLElement} */ (b).dataset.range === state.range));
  }
  writeAddress();
}

/**
 * What the chart shows of the whole series: its first to last record, padded a little (and
 * to a minute at least, so records written in one burst are not one vertical bar).
 * @returns {{min: number, max: number} | null}
 */
function wholeView() {
  if (state.firstT === null || state.lastT === null) return null;
  const pad = Math.max((state.lastT - state.firstT) * 0.02, 30 - (state.lastT - state.firstT) / 2);
  return { min: state.firstT - pad, max: state.lastT + pad };
}

/** The window to read and show now: null = the whole series. */
function currentView() {
  if (state.range === 'custom') return state.view;
  const span = RANGES[state.range];
  if (span === null || span === undefined) return null;
  const now = nowS();
  return { min: now - span, max: now };
}

/** Keep the series and the range in the address, so a view can be sent to someone. */
function writeAddress() {
  const p = new URLSearchParams();
  const token = params.get('token');
  if (state.key !== null) p.set('series', state.key);
  for (const k of state.overlays) p.append('with', k);
  if (state.range === 'custom' && state.view) {
    p.set('from', state.view.min.toFixed(3));
    p.set('to', state.view.max.toFixed(3));
  } else {
    p.set('range', state.range);
  }
  if (token !== null) p.set('token', token);
  history.replaceState(null, '', `#${p.toString()}`);
}

/**
 * @param {unknown[] | ArrayLike<number>} v Values as the codec gives them (a typed array
 *   from binary columns is numbers already): the chart draws finite numbers only, others
 *   as gaps.
 */
const numbers = (v) => (ArrayBuffer.isView(v) ? drawable(/** @type {Float64Array} */ (v)) : /** @type {unknown[]} */ (v).map((x) => (typeof x === 'number' && Number.isFinite(x) ? x : null)));

/**
 * Values from binary columns as the chart draws them: NaN and infinities (which JSON
 * answers show as null) become gaps, as there; the typed array itself when all are finite.
 * @param {Float64Array} v
 * @returns {Float64Array | (number|null)[]}
 */
function drawable(v) {
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) return Array.from(v, (x) => (Number.isFinite(x) ? x : null));
  }
  return v;
}

/** Keys whose rule has no binary columns (values that are not one number): JSON reads. */
const jsonOnly = new Set();

/**
 * Raw records of `[start, end)`: binary columns (typed arrays: no JSON per record) where
 * the key's rule holds one number, else the JSON answer. Times are unix seconds.
 * @param {import('../../../js/src/client.js').Client} client
 * @param {string} key
 * @param {{start?: number|null, end?: number|null, limit: number}} options
 * @returns {Promise<any>} `{mode: 'raw', count, truncated, t, v}`
 */
async function readRaw(client, key, options) {
  if (!jsonOnly.has(key)) {
    try {
      const c = await timeseries.rangeColumns(client, key, options);
      const v = c.v instanceof Float64Array ? c.v : Float64Array.from(/** @type {ArrayLike<any>} */ (c.v), Number);
      return { ...c, mode: 'raw', t: timeseries.secondsOf(c.t), v };
    } catch (exc) {
      if (!(exc instanceof DataError)) throw exc;
      jsonOnly.add(key);
    }
  }
  return timeseries.range(client, key, options);
}

/**
 * `chart.pixels` buckets of `[start, end)` aligned to the gateway's summary rows, in binary
 * columns (typed arrays: no JSON number per bucket); times as unix seconds.
 * @param {import('../../../js/src/client.js').Client} client
 * @param {string} key
 * @param {{start?: number|null, end?: number|null}} window
 * @returns {Promise<any>} `{count, t, t_end, n, min, max, mean, last}`
 */
async function readBuckets(client, key, window) {
  const b = await timeseries.downsampleColumns(client, key, chart.pixels, { ...window, align: 'rows' });
  return { ...b, t: timeseries.secondsOf(b.t), t_end: b.t_end && timeseries.secondsOf(b.t_end) };
}

/**
 * The records of a view, through the gateway's ts:* events: raw when they fit one per
 * pixel twice over, else downsampled to one bucket per pixel, in buckets aligned to the
 * gateway's chunk summaries (`align: 'rows'`): a long series is drawn from them without
 * reading its records, each bucket at its own start. The whole series (no view) is asked
 * raw and downsampled at once, one round trip whatever its size.
 * @param {import('../../../js/src/client.js').Client} client
 * @param {string} key
 * @param {{min: number, max: number} | null} view
 * @returns {Promise<any>} `{count, last_time, mode, in_window, truncated, t, v | min/max/mean/last}`
 *   (`v` as the codec gives the values)
 */
async function readWindow(client, key, view) {
  const start = view?.min ?? null;
  const end = view?.max ?? null;
  // Asked with the raw read, not after it; a failure is seen only if the buckets are used.
  const overview = view === null
    ? readBuckets(client, key, {}).then((b) => ({ b }), (error) => ({ error }))
    : null;
  const limit = 2 * chart.pixels;
  // Once the listing says the whole series holds more records than a raw read returns,
  // the raw read is not asked: only its buckets are drawn.
  const knownLong = overview !== null && (state.listed.get(key)?.count ?? 0) > limit;
  const askedInfo = timeseries.info(client, key);
  const asked = knownLong ? null : readRaw(client, key, { start, end, limit });
  asked?.catch(() => {}); // a failure is seen below, where the raw answer is waited for
  const info = await askedInfo;
  // A whole series of more records than the raw read returns is drawn from its buckets:
  // its raw answer (truncated, answered after the buckets) is not waited for.
  const truncated = overview !== null && info.count > limit;
  const raw = truncated
    ? { mode: 'raw', truncated: true, count: info.count }
    : await (asked ?? readRaw(client, key, { start, end, limit }));
  const head = { count: info.count, last_time: info.last, first_time: info.first };
  if (raw.mode !== 'raw') throw new Error(`unexpected ${raw.mode} answer`);
  if (!raw.truncated) {
    return { ...head, mode: 'raw', truncated: false, in_window: raw.count, t: raw.t, v: raw.v };
  }
  try {
    let b;
    if (overview) {
      const got = await overview;
      if ('error' in got) throw got.error;
      b = got.b;
    } else {
      b = await readBuckets(client, key, { start, end });
    }
    const lo = start ?? info.first;
    const hi = end ?? info.last;
    const width = lo !== null && hi !== null && hi > lo ? (hi - lo) / chart.pixels : Infinity;
    const stats = { in_window: b.count, points: b.t.length };
    if (b.t_end) {
      // Aligned buckets are half to one and a half slices wide: a hole is where one starts
      // after the end of the one before.
      const { t, cols } = breakAtEnds(b.t, b.t_end, [b.min, b.max, b.mean, b.last]);
      const [min, max, mean, last] = cols;
      return { ...head, ...stats, mode: 'buckets', t, min, max, mean, last, maxStep: 2 * width };
    }
    // Slices are equal (a gateway without aligned buckets): a step of more than one and a
    // half slices skipped empty ones.
    return { ...head, ...stats, mode: 'buckets', t: b.t, min: b.min, max: b.max, mean: b.mean, last: b.last, maxStep: 1.5 * width };
  } catch (exc) {
    if (!(exc instanceof DataError)) throw exc;
  }
  // Values that are not numbers cannot be downsampled: show raw records, the newest ones
  // when the window reaches the end of the series.
  const newest = view === null || (info.last !== null && view.max >= info.last);
  const shown = newest ? await timeseries.latest(client, key, 2 * chart.pixels) : raw;
  const part = newest ? 'newest' : 'first';
  return { ...head, mode: 'raw', truncated: true, part, in_window: raw.count, t: shown.t, v: shown.v };
}

/** Called once a window read was answered (or failed, or could not be sent). */
let windowAnswered = () => {};
/** Settles when the page's first window read was answered: the listing waits for it. */
const firstWindow = new Promise((resolve) => {
  windowAnswered = () => resolve(undefined);
});

/** (Re)load the visible window: downsampled to one bucket per pixel when large. */
async function load() {
  const client = state.client;
  const key = state.key;
  if (!client?.connected || key === null) return windowAnswered();
  const seq = ++state.loadSeq;
  let view = currentView();
  state.loading++;
  state.loadedAt = nowS();
  let w = await guarded(() => readWindow(client, key, view), key).finally(() => {
    state.loading--;
    windowAnswered();
  });
  if (!w || seq !== state.loadSeq || key !== state.key) return;
  state.appended = 0;
  if (state.defaultPending) {
    state.defaultPending = false;
    const range = defaultRange(w.last_time);
    if (range !== state.range && w.mode === 'raw' && !w.truncated) {
      // A live series whose every record was read: its live window is a part of them.
      showRange(range);
      view = /** @type {{min: number, max: number}} */ (currentView());
      let i = 0;
      while (i < w.t.length && w.t[i] < view.min) i++;
      w = { ...w, t: w.t.slice(i), v: w.v.slice(i), in_window: w.t.length - i };
    } else if (range !== state.range) {
      setRange(range); // a long live series: its live window is read instead of this
      return;
    }
  }
  const data =
    w.mode === 'raw'
      ? { mode: 'raw', t: w.t, v: numbers(w.v), min: new Array(w.t.length).fill(null), max: new Array(w.t.length).fill(null), maxStep: rawMaxStep(w.t) }
      : { mode: 'buckets', t: w.t, v: numbers(w.mean), min: numbers(w.min), max: numbers(w.max), maxStep: w.maxStep };
  const reachesEnd = view === null || (w.last_time !== null && view.max >= w.last_time);
  if (reachesEnd) state.lastT = w.last_time;
  state.firstT = w.first_time;
  chart.set(/** @type {any} */ (data), view ?? wholeView());
  state.window = {
    mode: w.mode,
    in_window: w.in_window,
    points: w.points ?? w.t.length,
    numeric: w.mode === 'buckets' || w.v.length === 0 || ArrayBuffer.isView(w.v) || w.v.some((/** @type {unknown} */ x) => typeof x === 'number'),
    truncated: Boolean(w.truncated),
    part: w.part ?? 'newest',
  };
  // The whole series: its count is the window's, so the header and the window line agree.
  const count = view === null ? w.in_window : w.count;
  showWindowInfo();
  if (reachesEnd && w.t.length > 0 && !(w.mode === 'raw' && w.truncated && w.part !== 'newest')) {
    // The newest value of the series: the last raw record or bucket of the window.
    showLatest(count, w.mode === 'raw' ? w.v[w.v.length - 1] : w.last[w.last.length - 1], w.last_time);
  } else if (w.count === 0) {
    showLatest(0, undefined, null);
  } else {
    showCount(count);
  }
  await loadOverlays(client, view, seq);
  if (reachesEnd || state.lastT === null) await poll();
}

/**
 * Read the overlays' part of the window: raw values when few, else bucket means (values that
 * are not numbers are not drawn).
 * @param {import('../../../js/src/client.js').Client} client
 * @param {{min: number, max: number} | null} view
 * @param {number} seq The load this belongs to (a newer load wins).
 */
async function loadOverlays(client, view, seq) {
  const keys = state.overlays;
  if (!keys.length) {
    if (chart.overlays.length) chart.setOverlays([], view ?? wholeView());
    return;
  }
  const read = await guarded(() =>
    Promise.all(
      keys.map(async (key) => {
        const w = await readWindow(client, key, view);
        const v = numbers(w.mode === 'raw' ? w.v : w.mean);
        const maxStep = w.mode === 'raw' ? rawMaxStep(w.t) : w.maxStep;
        return { key, meta: metaOf(state.listed.get(key)), t: w.t, v, maxStep, last: w.last_time };
      }),
    ),
  );
  if (!read || seq !== state.loadSeq) return;
  for (const o of read) state.overlayLast.set(o.key, o.last);
  chart.setOverlays(read, view ?? wholeView());
}

/**
 * Read the overlays again when one of them has records newer than those drawn.
 * @param {import('../../../js/src/client.js').Client} client
 */
async function pollOverlays(client) {
  if (!state.overlays.length || state.loading) return;
  const infos = await guarded(() => Promise.all(state.overlays.map((k) => timeseries.info(client, k))));
  if (!infos) return;
  const newer = infos.some((info, i) => info.last !== null && info.last !== state.overlayLast.get(state.overlays[i]));
  if (newer) await loadOverlays(client, currentView(), state.loadSeq);
}

/** Say what the chart shows: raw records, or records in buckets. */
function showWindowInfo() {
  const w = state.window;
  if (!w) return;
  const none = state.range === 'all' ? 'no records yet' : 'no records in this range';
  $('window-info').textContent =
    w.mode === 'raw' && w.points === 0 && !w.truncated
      ? none
      : w.mode === 'raw'
        ? `${counted(w.points, 'record')}${w.truncated ? ` (${w.part} of ${formatCount(w.in_window)})` : ''}` +
          (w.numeric ? '' : '; values are not numbers, so not charted')
        : `${counted(w.in_window, 'record')} in ${counted(w.points, 'bucket')} (min/mean/max)`;
}

/**
 * @param {number} count
 * @param {unknown} value
 * @param {number|null} t
 */
function showLatest(count, value, t) {
  showCount(count);
  $('latest-value').textContent = formatValue(value);
  $('latest-unit').textContent = state.meta.unit && value !== undefined && value !== null ? state.meta.unit : '';
  $('latest-time').textContent = formatTime(t);
  if (state.key) table.setCounts(state.key, count, value);
}

/** @param {number} count */
function showCount(count) {
  state.count = count;
  $('latest-count').textContent = formatCount(count);
}

/**
 * Check the series (`ts:info`, read from the gateway's index) and append the records newer
 * than the newest shown (`ts:range` from there).
 */
async function poll() {
  const client = state.client;
  const key = state.key;
  if (!client?.connected || key === null || state.polling || state.refused === key) return;
  void pollOverlays(client);
  if (state.window === null) {
    // The first read of this series failed (e.g. TStorage was down): try it again.
    if (state.loading === 0) void load();
    return;
  }
  state.polling = true;
  try {
    const since = state.lastT;
    const info = await guarded(() => timeseries.info(client, key), key);
    if (!info || key !== state.key) return;
    if (info.count === 0 || info.last === null) {
      showLatest(0, undefined, null);
      return;
    }
    if (since !== null && info.last <= since) {
      if (info.count !== state.count) {
        // Records added before the newest shown (late data, another writer): read again.
        if (state.range === 'all') void load();
        else showCount(info.count);
      }
      return;
    }
    const w = await guarded(() =>
      since === null
        ? timeseries.latest(client, key, 1)
        : readRaw(client, key, { start: since, limit: RAW_LIMIT }),
    );
    if (!w || w.mode !== 'raw' || key !== state.key) return;
    if (w.truncated) {
      // Far behind (e.g. after an outage): reload the window instead of appending.
      void load();
      return;
    }
    let first = 0;
    while (first < w.t.length && since !== null && w.t[first] <= since) first++;
    const t = w.t.slice(first);
    const v = numbers(w.v.slice(first));
    if (t.length) {
      state.lastT = t[t.length - 1];
      if (since !== null) {
        chart.append(t, v, currentView() ?? wholeView());
        if (state.window) {
          state.window.points += t.length;
          state.window.in_window += t.length;
          showWindowInfo();
        }
        state.appended += t.length; // (see condense)
      }
      showLatest(info.count, w.v[w.v.length - 1], state.lastT);
    } else if (info.count !== state.count) {
      showCount(info.count);
    }
  } finally {
    state.polling = false;
  }
}

/**
 * New records are drawn raw; past an eighth of the chart's width of them the window is read
 * again (downsampled), so a view left open does not grow without bound: at most every 5 s
 * (a steady stream keeps its frames), at once past four widths of them.
 */
function condense() {
  if (state.appended <= chart.pixels / 8 || state.loading !== 0) return;
  if (nowS() - state.loadedAt >= 5 || state.appended > 4 * chart.pixels) void load();
}

/** A live window slides with now; it is read again once it moved a tenth of its span. */
function slide() {
  if (!state.follow || state.key === null || state.window === null) return;
  const view = currentView();
  if (view === null) return;
  if (nowS() - state.loadedAt > (view.max - view.min) / 10 && state.loading === 0) void load();
  else chart.slide(view);
}

/**
 * Hand `blob` to the browser as a download.
 * @param {Blob} blob
 * @param {string} name
 */
function save(blob, name) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

/**
 * File name of a download: the series and the range on screen.
 * @param {string} ext
 */
function fileName(ext) {
  const v = chart.view();
  const stamp = (/** @type {number} */ t) => new Date(t * 1000).toISOString().replace(/[:.]/g, '-');
  const span = v ? `_${stamp(v.min)}_${stamp(v.max)}` : '';
  return `${(state.key ?? 'series').replace(/[^\w.-]+/g, '_')}${span}.${ext}`;
}

function wireControls() {
  $('tz').textContent = `times in ${timeZoneLabel()}`;
  $('follow').addEventListener('change', (e) => {
    const on = /** @type {HTMLInputElement} */ (e.target).checked;
    const v = chart.view();
    if (on) setRange(state.range === 'custom' ? 'all' : state.range);
    else if (v) setRange('custom', v);
  });
  for (const b of document.querySelectorAll('[data-range]')) {
    b.addEventListener('click', () => setRange(/** @type {string} */ (/** @type {HTMLElement} */ (b).dataset.range)));
  }
  $('download-csv').addEventListener('click', () => save(new Blob([chart.csv()], { type: 'text/csv' }), fileName('csv')));
  $('download-png').addEventListener('click', async () => {
    const v = chart.view();
    const caption = `${state.key ?? ''}${state.meta.unit ? ` (${state.meta.unit})` : ''}` +
      (v ? `  ${formatTime(v.min)} – ${formatTime(v.max)}, ${timeZoneLabel()}` : '');
    save(await chart.png(caption), fileName('png'));
  });
  $('zoom-in').addEventListener('click', () => chart.zoom(0.5));
  $('zoom-out').addEventListener('click', () => chart.zoom(2));
  $('pan-left').addEventListener('click', () => chart.pan(-0.5));
  $('pan-right').addEventListener('click', () => chart.pan(0.5));
  document.addEventListener('keydown', (e) => {
    if (e.target instanceof HTMLInputElement) return;
    if (e.key === 'ArrowLeft') chart.pan(-0.25);
    else if (e.key === 'ArrowRight') chart.pan(0.25);
    else if (e.key === '+' || e.key === '=') chart.zoom(0.5);
    else if (e.key === '-') chart.zoom(2);
  });
}

/** @returns {{range?: string, view?: {min: number, max: number}, overlays: string[]}} What the address names. */
function addressRange() {
  const overlays = params.getAll('with');
  const from = Number(params.get('from'));
  const to = Number(params.get('to'));
  if (params.has('from') && params.has('to') && Number.isFinite(from) && Number.isFinite(to) && from < to) {
    return { range: 'custom', view: { min: from, max: to }, overlays };
  }
  const range = params.get('range');
  return range !== null && range in RANGES ? { range, overlays } : { overlays };
}

async function start() {
  wireControls();
  for (;;) {
    try {
      // A WebSocket at once (no polling handshake and upgrade before the first read: three
      // HTTP round trips fewer per page load), polling where something refuses WebSockets.
      state.client = await connect(location.origin, {
        token: params.get('token') ?? undefined,
        transports: ['websocket', 'polling'],
        tryAllTransports: true,
      });
      break;
    } catch (exc) {
      status.setGateway(exc instanceof Error ? exc.message : String(exc));
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  const client = state.client;
  status.setGateway(null);
  client.onStatus((s, reason) => {
    status.setGateway(s === 'connected' ? null : `connection lost: ${reason ?? 'unknown'}`);
    if (s === 'connected') {
      void refreshSeries();
      void load();
    }
  });
  // A series named in the address is drawn at once, in the range the address names; the
  // listing (reads of TStorage, a scan the first time) is asked once the window's reads
  // are answered (or after LISTING_WAIT_MS), so that it does not compete with them.
  const wanted = params.get('series');
  const picked = wanted ? pick(wanted, addressRange()) : Promise.resolve();
  // A link pasted into this tab changes only the address's fragment: follow it.
  window.addEventListener('hashchange', () => {
    params = new URLSearchParams(location.hash.slice(1));
    const series = params.get('series');
    const how = addressRange();
    if (series && series !== state.key) void pick(series, how);
    else {
      state.overlays = how.overlays.filter((k) => k !== state.key).slice(0, MAX_LINES - 1);
      table.setOverlays(state.overlays);
      if (how.range !== undefined) setRange(how.range, how.view ?? null);
      else void load();
    }
  });
  await picked;
  if (wanted) await Promise.race([firstWindow, new Promise((r) => setTimeout(r, LISTING_WAIT_MS))]);
  await refreshSeries();
  setInterval(refreshSeries, SERIES_MS);
  setInterval(() => {
    slide();
    condense();
    void poll();
  }, POLL_MS);
}

/** What the page shows, for tests and benchmarks. */
window.dashboard = {
  state,
  status,
  // plain arrays, whether the chart holds typed arrays (binary columns) or not
  chartData: () => ({
    ...chart.data,
    t: Array.from(chart.data.t),
    v: Array.from(chart.data.v),
    typed: ArrayBuffer.isView(chart.data.t),
    view: chart.view(),
  }),
  overlays: () => chart.overlays.map((o) => ({ key: o.key, meta: o.meta, t: Array.from(o.t), v: Array.from(o.v) })),
  csv: () => chart.csv(),
  axes: () => ({ ticks: chart.ticks, valueLabels: chart.valueAxisLabels }),
  latest: () => ({
    value: $('latest-value').textContent,
    count: $('latest-count').textContent,
  }),
};

void start();
