// Dashboard figures, in headless Chromium against a real gateway on a separate tstorage-server:
//  1. time from page load (navigation start) to the first drawn chart of a 1,000,000-record
//     series: cold (fresh gateway: the series index is built by that first read) and warm
//     (the page loaded again);
//  2. frames dropped while 100 points/s stream into the displayed series (10 points every
//     100 ms, written with tstorage_client), for the 1M-record series (downsampled view) and
//     for a small one (raw view). A frame counts as dropped for every 16.7 ms beyond the
//     first in a requestAnimationFrame interval.
// Usage: node bench/dashboard_bench.mjs [--records N] [--seconds S] [--reloads R]
// (--reloads: how many warm loads after the cold one, default 1; the median is the warm
// figure, each load is listed)
// (after scripts/bootstrap-js.sh --with-test-deps). Prints a JSON summary, and writes it to
// bench/results/dashboard.json.
// On a series already in a running TStorage (e.g. one loaded by bench/scale_bench.py --keep,
// served by `tstorage-server --data-dir DIR --port P`): --tstorage 127.0.0.1:P [--key KEY]
// [--index-cid C] times only figure 1 (cold and warm) of KEY (default meters/1/1: cid 1 mid 1
// moid 1), writing nothing into that TStorage; --index-cid points the fresh gateway at chunk
// summaries saved earlier under that cid (scale_bench.py prints its run's index_cid).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startGateway, startTStorage, startWriter, python, ROOT } from '../js/test/helpers.js';
import { openBrowser, waitInPage } from '../tests/browser/browser.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const text = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const RECORDS = arg('--records', 1_000_000);
const SECONDS = arg('--seconds', 10);
const RELOADS = Math.max(1, arg('--reloads', 1));
const EXISTING = text('--tstorage', null); // HOST:PORT of a TStorage holding the series
const INDEX_CID = arg('--index-cid', null);
if (EXISTING !== null && !/^(127\.0\.0\.1:)?\d+$/.test(EXISTING)) {
  throw new Error(`--tstorage takes 127.0.0.1:PORT (a local server), got ${EXISTING}`);
}
const now = () => Date.now() / 1000;

async function firstDraw(browser, url) {
  const { page } = browser;
  await page.goto('about:blank');
  await page.goto(url);
  const ms = await waitInPage(page, () => window.dashboard.state.firstDrawMs, 120000, 'the first drawn chart');
  const w = await page.evaluate(() => window.dashboard.state.window);
  return { ms: Math.round(ms), window: w };
}

/** The page loaded again RELOADS times: the median first chart and each one. */
async function warmDraws(browser, url) {
  const all = [];
  let last;
  for (let i = 0; i < RELOADS; i++) {
    last = await firstDraw(browser, url);
    all.push(last.ms);
  }
  const sorted = [...all].sort((a, b) => a - b);
  return { ms: sorted[Math.floor((sorted.length - 1) / 2)], all, window: last.window };
}

async function framesWhileStreaming(browser, writer, mid, moid) {
  const { page } = browser;
  const before = await page.evaluate(() => window.dashboard.latest().count);
  await page.evaluate(() => {
    const f = (window.__frames = { times: [], run: true });
    const tick = (t) => {
      f.times.push(t);
      if (f.run) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  const start = Date.now();
  let written = 0;
  while (Date.now() - start < SECONDS * 1000) {
    const t = now();
    const points = Array.from({ length: 10 }, (_, i) => [t + i * 1e-3, Math.sin(written + i)]);
    const ack = await writer.write({ cid: 1, mid, moid, points });
    if (!ack.ok) throw new Error(JSON.stringify(ack));
    written += 10;
    const next = start + (written / 100) * 1000;
    await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
  }
  await new Promise((r) => setTimeout(r, 1000)); // let the last points arrive
  const f = await page.evaluate(() => {
    window.__frames.run = false;
    return window.__frames.times;
  });
  const after = await page.evaluate(() => window.dashboard.latest().count);
  const gaps = f.slice(1).map((t, i) => t - f[i]);
  const dropped = gaps.reduce((n, g) => n + Math.max(0, Math.round(g / (1000 / 60)) - 1), 0);
  const sorted = [...gaps].sort((a, b) => a - b);
  return {
    written,
    count_before: before,
    count_after: after,
    frames: f.length,
    expected_frames: Math.round(((f[f.length - 1] - f[0]) / 1000) * 60),
    dropped_frames: dropped,
    longest_frame_ms: Math.round(sorted[sorted.length - 1] ?? 0),
    p99_frame_ms: Math.round((sorted[Math.floor(sorted.length * 0.99)] ?? 0) * 10) / 10,
  };
}

/** Figure 1 alone, on the series KEY of a TStorage that already holds it. */
async function existingSeries() {
  const port = Number(EXISTING.split(':').pop());
  const key = text('--key', 'meters/1/1');
  // the long reads of a huge series on a cold gateway (as bench/scale_bench.py allows them)
  const settings = `timeout = 600\n${INDEX_CID === null ? '' : `index_cid = ${INDEX_CID}\n`}`;
  const gw = await startGateway({ tstorage: { port, settings } });
  let browser;
  try {
    browser = await openBrowser();
    const url = `${gw.url}/#series=${encodeURIComponent(key)}&range=all`;
    const cold = await firstDraw(browser, url);
    const coldCount = await browser.page.evaluate(() => window.dashboard.latest().count);
    const warm = await warmDraws(browser, url);
    return {
      tstorage: `127.0.0.1:${port}`,
      key,
      index_cid: INDEX_CID,
      count_on_page: coldCount,
      first_chart_ms: { cold: cold.ms, warm: warm.ms, warm_each: warm.all, window: warm.window },
      chromium: await browser.page.evaluate(() => navigator.userAgent),
    };
  } finally {
    await browser?.close();
    await gw.stop();
  }
}

if (EXISTING !== null) {
  const result = await existingSeries();
  console.log(JSON.stringify(result, null, 2));
  mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(path.join(ROOT, 'bench', 'results', 'dashboard-existing.json'), JSON.stringify(result, null, 2));
  process.exit(0);
}

const ts = await startTStorage();
const gw = await startGateway({ tstorage: { port: ts.port } });
const writer = startWriter(ts.port);
let browser;
try {
  const t0 = now() - RECORDS * 0.01 - 60;
  let t = Date.now();
  await python('tstorage_put.py', { port: ts.port, cid: 1, mid: 9, moid: 1, generate: { count: RECORDS, start: t0, step: 0.01 } });
  const writeS = (Date.now() - t) / 1000;
  await writer.write({ cid: 1, mid: 9, moid: 2, points: Array.from({ length: 200 }, (_, i) => [now() - 200 + i, i % 10]) });
  browser = await openBrowser();
  const big = `${gw.url}/#series=${encodeURIComponent('meters/9/1')}&range=all`; // all 1M records, as before the live-hour default
  const cold = await firstDraw(browser, big);
  const warm = await warmDraws(browser, big);
  const streamBig = await framesWhileStreaming(browser, writer, 9, 1);
  const small = await firstDraw(browser, `${gw.url}/#series=${encodeURIComponent('meters/9/2')}`);
  const streamSmall = await framesWhileStreaming(browser, writer, 9, 2);
  const result = {
    records: RECORDS,
    write_seconds: writeS,
    first_chart_ms: { cold: cold.ms, warm: warm.ms, warm_each: warm.all, window: warm.window },
    streaming_100_per_s: { seconds: SECONDS, big_series: streamBig, small_series: { ...streamSmall, first_chart_ms: small.ms } },
    chromium: await browser.page.evaluate(() => navigator.userAgent),
  };
  console.log(JSON.stringify(result, null, 2));
  mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(path.join(ROOT, 'bench', 'results', 'dashboard.json'), JSON.stringify(result, null, 2));
} finally {
  await browser?.close();
  writer.close();
  await gw.stop();
  await ts.stop();
}
