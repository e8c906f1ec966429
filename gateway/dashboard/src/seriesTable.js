// The list of mapped series: key, record count and latest value; a click picks a series.
import { formatCount, formatValue } from './format.js';

export class SeriesTable {
  /**
   * @param {HTMLTableElement} table
   * @param {HTMLElement} empty Shown when there is no series.
   * @param {(key: string) => void} onPick
   */
  constructor(table, empty, onPick) {
    this.body = /** @type {HTMLTableSectionElement} */ (table.tBodies[0]);
    this.empty = empty;
    /** @type {string|null} */
    this.selected = null;
    /** @type {Map<string, HTMLTableRowElement>} */
    this.rows = new Map();
    this.body.addEventListener('click', (e) => {
      const row = /** @type {HTMLElement} */ (e.target).closest('tr');
      if (row?.dataset.key) onPick(row.dataset.key);
    });
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
        for (const cls of ['key', 'num count', 'num latest']) {
          const td = document.createElement('td');
          td.className = cls;
          row.appendChild(td);
        }
        /** @type {HTMLElement} */ (row.cells[0]).textContent = s.key;
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
    for (const [k, row] of this.rows) row.setAttribute('aria-selected', String(k === key));
  }
}
