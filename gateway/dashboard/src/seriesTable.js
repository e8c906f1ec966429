// The list of mapped series: key, record count and latest value; a click picks a series,
// the check box beside it draws it over the picked one; a search box filters the rows.
import { formatCount, formatValue } from './format.js';

/** Most series drawn at once (the picked one and its overlays). */
export const MAX_LINES = 8;

export class SeriesTable {
  /**
   * @param {HTMLTableElement} table
   * @param {HTMLElement} empty Shown when there is no series.
   * @param {(key: string) => void} onPick
   * @param {(key: string, on: boolean) => void} onOverlay A check box was ticked or cleared.
   * @param {HTMLInputElement} search Filters the rows by the text typed (`*` matches anything).
   * @param {HTMLElement} shown Says how many rows the filter shows.
   */
  constructor(table, empty, onPick, onOverlay, search, shown) {
    this.body = /** @type {HTMLTableSectionElement} */ (table.tBodies[0]);
    this.empty = empty;
    this.search = search;
    this.shown = shown;
    /** @type {string|null} */
    this.selected = null;
    /** @type {Set<string>} */
    this.overlaid = new Set();
    /** @type {Map<string, HTMLTableRowElement>} */
    this.rows = new Map();
    this.body.addEventListener('click', (e) => {
      const target = /** @type {HTMLElement} */ (e.target);
      const row = target.closest('tr');
      if (!row?.dataset.key) return;
      if (target instanceof HTMLInputElement) onOverlay(row.dataset.key, target.checked);
      else onPick(row.dataset.key);
    });
    search.addEventListener('input', () => this.filter());
  }

  /** Show only the rows whose key matches the search text (a substring, or a glob with `*`). */
  filter() {
    const text = this.search.value.trim().toLowerCase();
    const glob = text.includes('*')
      ? new RegExp(`^${text.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`)
      : null;
    let n = 0;
    for (const [key, row] of this.rows) {
      const k = key.toLowerCase();
      const match = !text || (glob ? glob.test(k) : k.includes(text));
      row.hidden = !match;
      if (match) n++;
    }
    this.shown.textContent = text ? `${formatCount(n)} of ${formatCount(this.rows.size)}` : '';
  }

  /** @param {{key: string, count: number, latest: unknown}[]} series */
  update(series) {
    const keep = new Set();
    for (const s of series) {
      keep.add(s.key);
      let row = this.rows.get(s.key);
      if (!row) {
        row = document.createElement('tr');
        row.dataset.key = s.key;
        for (const cls of ['key', 'num count', 'num latest', 'overlay']) {
          const td = document.createElement('td');
          td.className = cls;
          row.appendChild(td);
        }
        /** @type {HTMLElement} */ (row.cells[0]).textContent = s.key;
        const box = document.createElement('input');
        box.type = 'checkbox';
        box.title = 'draw over the picked series';
        box.setAttribute('aria-label', `draw ${s.key} over the picked series`);
        /** @type {HTMLElement} */ (row.cells[3]).appendChild(box);
        this.rows.set(s.key, row);
      }
      this.body.appendChild(row); // keeps the server's order
      this.setCounts(s.key, s.count, s.latest);
    }
    for (const [key, row] of this.rows) {
      if (!keep.has(key)) {
        row.remove();
        this.rows.delete(key);
      }
    }
    this.empty.hidden = series.length > 0;
    this.select(this.selected);
    this.filter();
  }

  /**
   * @param {string} key
   * @param {number} count
   * @param {unknown} latest
   */
  setCounts(key, count, latest) {
    const row = this.rows.get(key);
    if (!row) return;
    /** @type {HTMLElement} */ (row.cells[1]).textContent = formatCount(count);
    /** @type {HTMLElement} */ (row.cells[2]).textContent = formatValue(latest);
  }

  /** @param {string|null} key */
  select(key) {
    this.selected = key;
    this._sync();
  }

  /** @param {string[]} keys The series drawn over the picked one. */
  setOverlays(keys) {
    this.overlaid = new Set(keys);
    this._sync();
  }

  _sync() {
    const full = this.overlaid.size + 1 >= MAX_LINES;
    for (const [k, row] of this.rows) {
      row.setAttribute('aria-selected', String(k === this.selected));
      const box = /** @type {HTMLInputElement} */ (row.querySelector('input'));
      box.checked = this.overlaid.has(k) || k === this.selected;
      box.disabled = k === this.selected || (full && !this.overlaid.has(k));
    }
  }
}
