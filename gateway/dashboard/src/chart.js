// The live chart (uPlot): a time axis, the values (or, when downsampled, the bucket means
// between thin min and max lines: a filled band costs frames in software rendering), zoom
// by dragging or with the wheel, pan with buttons/keys.
// Only the user's gestures change the view; data updates keep it (or follow the data).
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

/**
 * @typedef {object} ChartData
 * @property {'raw'|'buckets'} mode
 * @property {number[] | Float64Array} t Times (unix s); a typed array from binary columns.
 * @property {(number|null)[] | Float64Array} v Values, or bucket means.
 * @property {(number|null)[]} min Bucket minima (null for raw points).
 * @property {(number|null)[]} max Bucket maxima (null for raw points).
 */

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
    this.data = { mode: 'raw', t: [], v: [], min: [], max: [] };
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this._debounce = undefined;
    /** Called after each redraw with data (for the time-to-first-chart figure). */
    this.onDraw = () => {};
    this.plot = new uPlot(this._options(), [[], [], [], []], el);
    new ResizeObserver(() => this._resize()).observe(el);
    el.addEventListener('wheel', (e) => this._wheel(e), { passive: false });
  }

  _options() {
    const width = Math.max(300, this.el.clientWidth || 800);
    return {
      width,
      height: 360,
      scales: { x: { time: true } },
      cursor: { drag: { x: true, y: false, setScale: false } },
      legend: { live: true },
      series: [
        {},
        { label: 'value', stroke: '#2563eb', width: 1.5, spanGaps: false },
        { label: 'min', stroke: 'rgba(37,99,235,0.25)', width: 1, points: { show: false } },
        { label: 'max', stroke: 'rgba(37,99,235,0.25)', width: 1, points: { show: false } },
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
   * Replace the data.
   * @param {ChartData} data
   * @param {{min: number, max: number} | null} view Time range to show; null = all data.
   */
  set(data, view) {
    this.data = data;
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
    for (let i = 0; i < t.length; i++) {
      d.t.push(t[i]);
      d.v.push(v[i]);
      d.min.push(null);
      d.max.push(null);
    }
    this._apply(view);
  }

  /** @param {{min: number, max: number} | null} view */
  _apply(view) {
    const d = this.data;
    this.plot.setData([d.t, d.v, d.min, d.max], view === null);
    if (view !== null) this.plot.setScale('x', view);
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
    if (Math.abs(width - this.plot.width) > 2) this.plot.setSize({ width, height: 360 });
  }
}
