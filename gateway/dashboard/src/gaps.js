// Holes in a series: where no record (or no bucket) lies, the chart breaks its line with a
// null point instead of drawing a slope across time nothing was measured in.

/**
 * The largest step between two neighbouring raw records that still counts as one run:
 * five times the median step, so a steady stream with jitter stays one line while a pause
 * of a few intervals breaks it. `Infinity` with fewer than three records (nothing to judge by).
 * @param {ArrayLike<number>} t Times, ascending.
 * @returns {number}
 */
export function rawMaxStep(t) {
  if (t.length < 3) return Infinity;
  const steps = [];
  for (let i = 1; i < t.length; i++) steps.push(t[i] - t[i - 1]);
  steps.sort((a, b) => a - b);
  const median = steps[steps.length >> 1];
  return median > 0 ? 5 * median : Infinity;
}

/**
 * The rows with a null row inserted inside every step longer than `maxStep`; the columns as
 * given (typed arrays stay typed) when there is no such step.
 * @template {ArrayLike<number>} T
 * @template {ArrayLike<number|null>} C
 * @param {T} t Times, ascending.
 * @param {C[]} cols Columns beside `t` (values, minima, ...), as long as `t`.
 * @param {number} maxStep
 * @param {number|null} [before] Time of the row held before these (appending): a hole
 *   between it and the first new row is broken too.
 * @returns {{t: T | number[], cols: (C | (number|null)[])[]}}
 */
export function breakGaps(t, cols, maxStep, before = null) {
  let holes = t.length > 0 && before !== null && t[0] - before > maxStep;
  for (let i = 1; !holes && i < t.length; i++) holes = t[i] - t[i - 1] > maxStep;
  if (!holes) return { t, cols };
  const outT = [];
  const outCols = cols.map(() => /** @type {(number|null)[]} */ ([]));
  let prev = before;
  for (let i = 0; i < t.length; i++) {
    if (prev !== null && t[i] - prev > maxStep) {
      outT.push((prev + t[i]) / 2);
      for (const c of outCols) c.push(null);
    }
    outT.push(t[i]);
    cols.forEach((c, j) => outCols[j].push(c[i]));
    prev = t[i];
  }
  return { t: outT, cols: outCols };
}

/**
 * Aligned buckets (each with its own end): a null row inside every hole, i.e. where a
 * bucket starts after the end of the one before (buckets with no record are not sent).
 * @param {number[]} t Bucket starts, ascending.
 * @param {number[]} ends Bucket ends (exclusive), as long as `t`.
 * @param {(number|null)[][]} cols Columns beside `t`.
 * @returns {{t: number[], cols: (number|null)[][]}}
 */
export function breakAtEnds(t, ends, cols) {
  const outT = [];
  const outCols = cols.map(() => /** @type {(number|null)[]} */ ([]));
  for (let i = 0; i < t.length; i++) {
    if (i > 0 && t[i] > ends[i - 1]) {
      outT.push((ends[i - 1] + t[i]) / 2);
      for (const c of outCols) c.push(null);
    }
    outT.push(t[i]);
    cols.forEach((c, j) => outCols[j].push(c[i]));
  }
  return { t: outT, cols: outCols };
}
