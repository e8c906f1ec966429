// The dashboard: connects to the gateway that served the page, lists the mapped series,
// draws the chosen one and keeps it live. What is on screen is also readable from
// `window.dashboard` (tests and benchmarks use it).
import {
  connect, List, TStorageUnavailable, ConnectionError, DataError, dashboard, timeseries,
} from '../../../js/src/index.js';
import { SeriesChart } from './chart.js';
import { SeriesTable } from './seriesTable.js';
import { StatusView } from './status.js';
import { formatCount, formatTime, formatValue } from './format.js';
import './style.css';

const POLL_MS = 250; // new points show within a poll plus the gateway's 100 ms staleness bound
const SERIES_MS = 2000;
const RAW_LIMIT = 20000; // new records read at most per poll (more: the view is reloaded)

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const params = new URLSearchParams(location.hash.slice(1));

const state = {
  /** @type {import('../../../js/src/client.js').ZnClient | null} */
  client: null,
  /** @type {string|null} */
  key: null,
  follow: true,
  /** @type {{min: number, max: number} | null} null = the whole series */
  view: null,
  /** @type {number|null} newest time held by the chart */
  lastT: null,
  loadSeq: 0,
  /** Reads of the window in flight. */
  loading: 0,
  polling: false,
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
const table = new SeriesTable(/** @type {HTMLTableElement} */ ($('series')), $('series-empty'), pick);
const chart = new SeriesChart($('chart'), (min, max) => {
  state.follow = false;
  /** @type {HTMLInputElement} */ ($('follow')).checked = false;
  state.view = { min, max };
  void load();
});
chart.onDraw = () => {
  if (state.firstDrawMs === null) state.firstDrawMs = performance.now();
};

/**
 * Run a gateway call; report TStorage outages on the page instead of throwing.
 * @template T
 * @param {() => Promise<T>} fn
 * @returns {Promise<T | undefined>}
 */
async function guarded(fn) {
  try {
    const out = await fn();
    status.setTStorage(null);
    return out;
  } catch (exc) {
    if (exc instanceof TStorageUnavailable) status.setTStorage(exc.message);
    else if (!(exc instanceof ConnectionError)) console.error(exc);
    return undefined;
  }
}

async function refreshSeries() {
  const client = state.client;
  if (!client?.connected) return;
  const series = await guarded(() => dashboard.listSeries(client));
  if (series) table.update(series);
}

/** @param {string} key */
function pick(key) {
  if (key === state.key) return;
  state.key = key;
  state.view = null;
  state.follow = true;
  state.lastT = null;
  state.window = null;
  state.count = null;
  /** @type {HTMLInputElement} */ ($('follow')).checked = true;
  table.select(key);
  $('chart-title').textContent = key;
  location.hash = new URLSearchParams({ ...Object.fromEntries(params), series: key }).toString();
  state.offRefresh?.();
  // Writes announced by other clients (or the gateway) fetch new points at once.
  state.offRefresh = state.client ? new List(state.client, key).onRefresh(() => void poll()) : null;
  chart.set({ mode: 'raw', t: [], v: [], min: [], max: [] }, null);
  void load();
}

/**
 * @param {unknown[] | ArrayLike<number>} v Values as the codec gives them (a typed array
 *   from binary columns is numbers already): the chart draws numbers only.
 */
const numbers = (v) => (ArrayBuffer.isView(v) ? v : /** @type {unknown[]} */ (v).map((x) => (typeof x === 'number' ? x : null)));

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
 * The records of a view, through the gateway's ts:* events: raw when they fit one per
 * pixel twice over, else downsampled to one bucket per pixel.
 * @param {import('../../../js/src/client.js').Client} client
 * @param {string} key
 * @param {{min: number, max: number} | null} view
 * @returns {Promise<any>} `{count, last_time, mode, in_window, truncated, t, v | min/max/mean/last}`
 *   (`v` as the codec gives the values)
 */
async function readWindow(client, key, view) {
  const start = view?.min ?? null;
  const end = view?.max ?? null;
  const [info, raw] = await Promise.all([
    timeseries.info(client, key),
    readRaw(client, key, { start, end, limit: 2 * chart.pixels }),
  ]);
  const head = { count: info.count, last_time: info.last };
  if (raw.mode !== 'raw') throw new Error(`unexpected ${raw.mode} answer`);
  if (!raw.truncated) {
    return { ...head, mode: 'raw', truncated: false, in_window: raw.count, t: raw.t, v: raw.v };
  }
  try {
    const b = await timeseries.downsample(client, key, chart.pixels, { start, end });
    return { ...head, mode: 'buckets', in_window: b.count, t: b.t, min: b.min, max: b.max, mean: b.mean, last: b.last };
  } catch (exc) {
    if (!(exc instanceof DataError)) throw exc;
  }
  // Values that are not numbers cannot be downsampled: show raw records, the newest ones
  // when following the series.
  const shown = view === null ? await timeseries.latest(client, key, 2 * chart.pixels) : raw;
  const part = view === null ? 'newest' : 'first';
  return { ...head, mode: 'raw', truncated: true, part, in_window: raw.count, t: shown.t, v: shown.v };
}

/** (Re)load the visible window: downsampled to one bucket per pixel when large. */
async function load() {
  const client = state.client;
  const key = state.key;
  if (!client?.connected || key === null) return;
  const seq = ++state.loadSeq;
  const view = state.follow ? null : state.view;
  state.loading++;
  const w = await guarded(() => readWindow(client, key, view)).finally(() => state.loading--);
  if (!w || seq !== state.loadSeq || key !== state.key) return;
  const data =
    w.mode === 'raw'
      ? { mode: 'raw', t: w.t, v: numbers(w.v), min: new Array(w.t.length).fill(null), max: new Array(w.t.length).fill(null) }
      : { mode: 'buckets', t: w.t, v: w.mean, min: w.min, max: w.max };
  chart.set(/** @type {any} */ (data), view);
  state.window = {
    mode: w.mode,
    in_window: w.in_window,
    points: w.t.length,
    numeric: w.mode === 'buckets' || w.v.length === 0 || ArrayBuffer.isView(w.v) || w.v.some((/** @type {unknown} */ x) => typeof x === 'number'),
    truncated: Boolean(w.truncated),
    part: w.part ?? 'newest',
  };
  if (view === null || (w.last_time !== null && view.max >= w.last_time)) state.lastT = w.last_time;
  showWindowInfo();
  if (view === null && w.count > 0) {
    // The newest value of the series: the last raw record or bucket of the whole series.
    showLatest(w.count, w.mode === 'raw' ? w.v[w.v.length - 1] : w.last[w.last.length - 1], w.last_time);
  } else if (view === null || w.count === 0) {
    showLatest(w.count, undefined, null);
  } else {
    showCount(w.count);
  }
  if (view === null || state.lastT === null) await poll();
}

/** Say what the chart shows: raw records, or records in buckets. */
function showWindowInfo() {
  const w = state.window;
  if (!w) return;
  $('window-info').textContent =
    w.mode === 'raw'
      ? `${formatCount(w.points)} records${w.truncated ? ` (${w.part} of ${formatCount(w.in_window)})` : ''}` +
        (w.numeric ? '' : '; values are not numbers, so not charted')
      : `${formatCount(w.in_window)} records in ${formatCount(w.points)} buckets (min/mean/max)`;
}

/**
 * @param {number} count
 * @param {unknown} value
 * @param {number|null} t
 */
function showLatest(count, value, t) {
  showCount(count);
  $('latest-value').textContent = formatValue(value);
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
  if (!client?.connected || key === null || state.polling) return;
  if (state.window === null) {
    // The first read of this series failed (e.g. TStorage was down): try it again.
    if (state.loading === 0) void load();
    return;
  }
  state.polling = true;
  try {
    const since = state.lastT;
    const info = await guarded(() => timeseries.info(client, key));
    if (!info || key !== state.key) return;
    if (info.count === 0 || info.last === null) {
      showLatest(0, undefined, null);
      return;
    }
    if (since !== null && info.last <= since) {
      if (info.count !== state.count) showCount(info.count); // records added before the newest
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
        chart.append(t, v, state.follow ? null : state.view);
        if (state.window) {
          state.window.points += t.length;
          state.window.in_window += t.length;
          showWindowInfo();
        }
      }
      showLatest(info.count, w.v[w.v.length - 1], state.lastT);
    } else if (info.count !== state.count) {
      showCount(info.count);
    }
  } finally {
    state.polling = false;
  }
}

function wireControls() {
  const setFollow = (/** @type {boolean} */ on) => {
    state.follow = on;
    /** @type {HTMLInputElement} */ ($('follow')).checked = on;
    if (on) state.view = null;
    void load();
  };
  $('follow').addEventListener('change', (e) => setFollow(/** @type {HTMLInputElement} */ (e.target).checked));
  $('reset').addEventListener('click', () => setFollow(true));
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

async function start() {
  wireControls();
  for (;;) {
    try {
      state.client = await connect(location.origin, { token: params.get('token') ?? undefined });
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
  // A series named in the address is drawn at once; the listing (a scan of TStorage the
  // first time) runs alongside.
  const wanted = params.get('series');
  if (wanted) pick(wanted);
  await refreshSeries();
  setInterval(refreshSeries, SERIES_MS);
  setInterval(poll, POLL_MS);
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
  latest: () => ({
    value: $('latest-value').textContent,
    count: $('latest-count').textContent,
  }),
};

void start();
