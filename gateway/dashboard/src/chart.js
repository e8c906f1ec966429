// The live chart (uPlot): a time axis, the values (or, when downsampled, the bucket means
// between thin min and max lines: a filled band costs frames in software rendering), zoom
// by dragging or with the wheel, pan with buttons/keys. Holes in the data break the line.
// Only the user's gestures change the view; data updates keep it (or follow the data).
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { formatTick, formatTime, formatWithUnit } from './format.js';
import { breakGaps } from './gaps.js';

/**
 * @typedef {object} ChartData
 * @property {'raw'|'buckets'} mode
 * @property {number[] | Float64Array} t Times (unix s): a typed array from binary columns
 *   while the data has no hole, else an array with a null row inside each hole.
 * @property {(number|null)[] | Float64Array} v Values, or bucket means.
 * @property {(number|null)[]} min Bucket minima (null for raw points).
 * @property {(number|null)[]} max Bucket maxima (null for raw points).
 * @property {number} [maxStep] Longest step (s) between two rows that is not a hole.
 */

/** @typedef {{label: string|null, unit: string|null}} SeriesMeta */

/**
 * Another series drawn over the first, on the same time axis (its values or bucket means).
 * @typedef {object} Overlay
 * @property {string} key
 * @property {SeriesMeta} meta
 * @property {number[]} t
 * @property {(number|null)[]} v
 * @property {number} [maxStep]
 */

const HEIGHT = 360;
/** Line colours: the first series, then up to seven overlays. */
export const COLOURS = ['#2563eb', '#d9480f', '#2b8a3e', '#7048e8', '#c2255c', '#0b7285', '#e67700', '#495057'];

export class SeriesChart {
  /**
   * @param {HTMLElement} el
   * @param {(min: number, max: number) => void} onUserView Called (debounced) when the user
   *   zooms or pans, with the new time range.
   */
  constructor(el, onUserView) {
    this.el = el;
    this.onUserView = onUserView;
    /** @type {ChartData} */
    this.data = { mode: 'raw', t: [], v: [], min: [], max: [], maxStep: Infinity };
    /** @type {SeriesMeta} */
    this.meta = { label: null, unit: null };
    /** @type {Overlay[]} */
    this.overlays = [];
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this._debounce = undefined;
    /** @type {string[]} The time axis's tick labels as last drawn (axes are canvas pixels). */
    this.ticks = [];
    /** Called after each redraw with data (for the time-to-first-chart figure). */
    this.onDraw = () => {};
    this.plot = new uPlot(this._options(), this._columns(), el);
    new ResizeObserver(() => this._resize()).observe(el);
    el.addEventListener('wheel', (e) => this._wheel(e), { passive: false });
  }

  _options() {
    const width = Math.max(300, this.el.clientWidth || 800);
    const { label, unit } = this.meta;
    const name = label ?? 'value';
    const valueOf = (/** @type {string|null} */ u) => (/** @type {uPlot} */ _u, /** @type {number|null} */ v) => formatWithUnit(v, u);
    const withUnit = valueOf(unit);
    // Overlays in the first series' unit share its axis; the others share a second axis on
    // the right, titled with their units.
    const others = [...new Set(this.overlays.map((o) => o.meta.unit).filter((u) => u !== unit))];
    const scaleOf = (/** @type {string|null} */ u) => (u === unit ? 'y' : 'y2');
    const overlaySeries = this.overlays.map((o, i) => ({
      label: o.meta.label ? `${o.key} (${o.meta.label})` : o.key,
      stroke: COLOURS[(i + 1) % COLOURS.length],
      width: 1.5,
      spanGaps: false,
      scale: scaleOf(o.meta.unit),
      value: valueOf(o.meta.unit),
    }));
    const rightAxis = others.length
      ? [{ scale: 'y2', side: 1, grid: { show: false }, size: 60, label: others.map((u) => u ?? 'no unit').join(', ') }]
      : [];
    return {
      width,
      height: HEIGHT,
      scales: { x: { time: true }, ...(others.length ? { y2: { auto: true } } : {}) },
      cursor: { drag: { x: true, y: false, setScale: false } },
      legend: { live: true },
      axes: [
        {
          // labels with milliseconds are wider: space them so that they never touch
          space: (/** @type {uPlot} */ _u, /** @type {number} */ _i, /** @type {number} */ min, /** @type {number} */ max, /** @type {number} */ dim) =>
            dim > 0 && ((max - min) / dim) * 70 < 1 ? 110 : 70,
          size: 44,
          values: (/** @type {uPlot} */ _u, /** @type {number[]} */ splits, /** @type {number} */ _i, /** @type {number} */ _space, /** @type {number} */ step) =>
            (this.ticks = splits.map((t, i) => formatTick(t, step, i === 0 ? null : splits[i - 1]))),
        },
        { label: unit ? `${name} (${unit})` : name, size: 60 },
        ...rightAxis,
      ],
      series: [
        { label: 'time', value: (/** @type {uPlot} */ _u, /** @type {number|null} */ t) => formatTime(t) },
        { label: name, stroke: '#2563eb', width: 1.5, spanGaps: false, value: withUnit },
        { label: 'min', stroke: 'rgba(37,99,235,0.25)', width: 1, points: { show: false }, value: withUnit },
        { label: 'max', stroke: 'rgba(37,99,235,0.25)', width: 1, points: { show: false }, value: withUnit },
        ...overlaySeries,
      ],
      hooks: {
        // A drag across the plot selects a time range: zoom to it (uPlot's own zoom is off
        // so that only the user's gestures, never data updates, count as a new view).
        setSelect: [
          (/** @type {uPlot} */ u) => {
            if (u.select.width < 3) return;
            const min = u.posToVal(u.select.left, 'x');
            const max = u.posToVal(u.select.left + u.select.width, 'x');
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            this.showView({ min, max });
          },
        ],
        draw: [() => { if (this.data.t.length) this.onDraw(); }],
      },
    };
  }

  /**
   * Name the values (legend, axis) and their unit; redraws the chart empty.
   * @param {SeriesMeta} meta
   */
  setMeta(meta) {
    if (meta.label === this.meta.label && meta.unit === this.meta.unit) return;
    this.meta = meta;
    this._rebuild();
  }

  /**
   * Draw these series over the first one (replacing the overlays before).
   * @param {Overlay[]} overlays
   * @param {{min: number, max: number} | null} view
   */
  setOverlays(overlays, view) {
    const shape = (/** @type {Overlay[]} */ list) => JSON.stringify(list.map((o) => [o.key, o.meta]));
    const same = shape(overlays) === shape(this.overlays);
    this.overlays = overlays.map((o) => {
      const { t, cols } = breakGaps(o.t, [o.v], o.maxStep ?? Infinity);
      return { ...o, t, v: cols[0] };
    });
    if (!same) this._rebuild();
    this._apply(view);
  }

  _rebuild() {
    const view = this.view();
    this.plot.destroy();
    this.plot = new uPlot(this._options(), this._columns(), this.el);
    if (view !== null && this.data.t.length) this.plot.setScale('x', view);
  }

  /** The columns uPlot draws: the first series and the overlays joined on their times. */
  _columns() {
    const d = this.data;
    /** @type {any[]} */
    const own = [d.t, d.v, d.min, d.max];
    if (!this.overlays.length) return own;
    return uPlot.join([own, ...this.overlays.map((o) => [o.t, o.v])]);
  }

  /** The value axes' titles (left, then right when there is one), as drawn. */
  get valueAxisLabels() {
    return this.plot.axes.slice(1).map((a) => /** @type {string} */ (a.label));
  }

  /** Width of the plotting area in CSS pixels (one bucket per pixel). */
  get pixels() {
    return Math.max(100, Math.round(this.plot.bbox.width / devicePixelRatio) || this.el.clientWidth || 800);
  }

  /** @returns {{min: number, max: number} | null} The visible time range. */
  view() {
    const { min, max } = this.plot.scales.x;
    return min === undefined || max === undefined || min === null || max === null ? null : { min, max };
  }

  /**
   * Replace the data; steps longer than `data.maxStep` become holes.
   * @param {ChartData} data
   * @param {{min: number, max: number} | null} view Time range to show; null = all data.
   */
  set(data, view) {
    const maxStep = data.maxStep ?? Infinity;
    const { t, cols } = breakGaps(data.t, [data.v, data.min, data.max], maxStep);
    this.data = { mode: data.mode, t, v: cols[0], min: cols[1], max: cols[2], maxStep };
    this._apply(view);
  }

  /**
   * Append raw points (newer than the last one held).
   * @param {ArrayLike<number>} t
   * @param {ArrayLike<number|null>} v
   * @param {{min: number, max: number} | null} view Time range to show; null = all data.
   */
  append(t, v, view) {
    const d = this.data;
    // columns arrive as typed arrays (uPlot draws them as they are); appending needs arrays
    if (!Array.isArray(d.t)) d.t = Array.from(d.t);
    if (!Array.isArray(d.v)) d.v = Array.from(d.v);
    const last = d.t.length ? d.t[d.t.length - 1] : null;
    const add = breakGaps(t, [v], d.maxStep ?? Infinity, last);
    for (let i = 0; i < add.t.length; i++) {
      d.t.push(add.t[i]);
      d.v.push(add.cols[0][i]);
      d.min.push(null);
      d.max.push(null);
    }
    this._apply(view);
  }

  /** @param {{min: number, max: number} | null} view */
  _apply(view) {
    this.plot.setData(this._columns(), view === null);
    if (view !== null) this.plot.setScale('x', view);
  }

  /**
   * Show a time range chosen by the page (a sliding live window), not by the user.
   * @param {{min: number, max: number}} view
   */
  slide(view) {
    this.plot.setScale('x', view);
  }

  /**
   * Zoom by `factor` (< 1 zooms in) around time `center` (default: the middle).
   * @param {number} factor
   * @param {number} [center]
   */
  zoom(factor, center) {
    const v = this.view();
    if (!v) return;
    const c = center ?? (v.min + v.max) / 2;
    this.showView({ min: c - (c - v.min) * factor, max: c + (v.max - c) * factor });
  }

  /** @param {number} fraction Share of the visible range to move (negative = back in time). */
  pan(fraction) {
    const v = this.view();
    if (!v) return;
    const dx = (v.max - v.min) * fraction;
    this.showView({ min: v.min + dx, max: v.max + dx });
  }

  /**
   * Show a time range the user asked for and report it (debounced) to `onUserView`.
   * @param {{min: number, max: number}} view
   */
  showView(view) {
    this.plot.setScale('x', view);
    clearTimeout(this._debounce);
    this._debounce = setTimeout(() => this.onUserView(view.min, view.max), 120);
  }

  /**
   * The rows on screen as CSV: ISO-8601 time (UTC), unix seconds, then the value (raw) or
   * mean/min/max (buckets). Holes are not rows.
   * @returns {string}
   */
  csv() {
    if (this.overlays.length) return this._joinedCsv();
    const d = this.data;
    const v = this.view();
    const head = d.mode === 'raw' ? ['time', 'unix_s', 'value'] : ['time', 'unix_s', 'mean', 'min', 'max'];
    const lines = [head.join(',')];
    const cell = (/** @type {number|null} */ x) => (x === null || x === undefined ? '' : String(x));
    for (let i = 0; i < d.t.length; i++) {
      const t = d.t[i];
      if (d.v[i] === null && d.min[i] === null && d.max[i] === null) continue;
      if (v && (t < v.min || t > v.max)) continue;
      const row = [new Date(t * 1000).toISOString(), String(t), cell(d.v[i])];
      if (d.mode === 'buckets') row.push(cell(d.min[i]), cell(d.max[i]));
      lines.push(row.join(','));
    }
    return `${lines.join('\n')}\n`;
  }

  /** With overlays: one column per series (bucket means where downsampled), on their joined times. */
  _joinedCsv() {
    const cols = this._columns();
    const names = [this.meta.label ?? 'value', ...this.overlays.map((o) => o.key)];
    const v = this.view();
    const lines = [['time', 'unix_s', ...names].map((n) => (/[",\n]/.test(n) ? `"${n.replace(/"/g, '""')}"` : n)).join(',')];
    const valueCols = [cols[1], ...cols.slice(4)];
    for (let i = 0; i < cols[0].length; i++) {
      const t = cols[0][i];
      if (v && (t < v.min || t > v.max)) continue;
      const cells = valueCols.map((c) => (c[i] === null || c[i] === undefined ? '' : String(c[i])));
      if (cells.every((c) => c === '')) continue;
      lines.push([new Date(t * 1000).toISOString(), String(t), ...cells].join(','));
    }
    return `${lines.join('\n')}\n`;
  }

  /**
   * The chart as a PNG image (axes, lines and a legend line of what is shown).
   * @param {string} caption Written above the plot (series and time range).
   * @returns {Promise<Blob>}
   */
  png(caption) {
    const src = this.plot.ctx.canvas;
    const out = document.createElement('canvas');
    const pad = 28 * devicePixelRatio;
    out.width = src.width;
    out.height = src.height + pad;
    const ctx = /** @type {CanvasRenderingContext2D} */ (out.getContext('2d'));
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.fillStyle = '#1d2433';
    ctx.font = `${14 * devicePixelRatio}px system-ui, sans-serif`;
    ctx.fillText(caption, 8 * devicePixelRatio, 19 * devicePixelRatio);
    ctx.drawImage(src, 0, pad);
    return new Promise((resolve, reject) =>
      out.toBlob((b) => (b ? resolve(b) : reject(new Error('the browser made no PNG'))), 'image/png'),
    );
  }

  /** @param {WheelEvent} e */
  _wheel(e) {
    if (!this.data.t.length) return;
    e.preventDefault();
    const rect = this.plot.over.getBoundingClientRect();
    const center = this.plot.posToVal(e.clientX - rect.left, 'x');
    this.zoom(e.deltaY < 0 ? 0.8 : 1.25, center);
  }

  _resize() {
    const width = Math.max(300, this.el.clientWidth);
    if (Math.abs(width - this.plot.width) > 2) this.plot.setSize({ width, height: HEIGHT });
  }
}
