// The dashboard's first chart in a real browser: which requests it waits on, and the aligned
// buckets of the whole series. The page's socket traffic is logged in the page itself, in
// the order the page sends and receives it (whatever the transport: polling, then
// websocket), so the test sees whether a read was sent before or after another's answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { startGateway, startTStorage, startWriter, ROOT } from '../../js/test/helpers.js';
import { connect, timeseries } from '../../js/src/index.js';
import { openBrowser, waitInPage } from './browser.js';

const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const nowS = () => Date.now() / 1000;

// Runs in the page before its scripts: logs each socket.io packet sent and each one
// received, before the page's handlers see it, with the page's clock.
function logWire() {
  /** @type {{dir: 'sent'|'got', text: string, at: number}[]} */
  const log = [];
  // @ts-ignore
  window.__wire = log;
  const note = (/** @type {'sent'|'got'} */ dir, /** @type {unknown} */ data) =>
    log.push({ dir, text: typeof data === 'string' ? data : '', at: performance.now() });
  const xhrSend = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (body) {
    note('sent', body);
    const handler = this.onreadystatechange;
    const xhr = this;
    this.onreadystatechange = function (ev) {
      if (xhr.readyState === 4) note('got', xhr.responseText);
      return handler?.call(this, ev);
    };
    return xhrSend.call(this, body);
  };
  const wsSend = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    note('sent', data);
    return wsSend.call(this, data);
  };
  const onmessage = /** @type {PropertyDescriptor} */ (Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage'));
  Object.defineProperty(WebSocket.prototype, 'onmessage', {
    configurable: true,
    get() { return onmessage.get?.call(this); },
    set(fn) {
      onmessage.set?.call(this, (/** @type {MessageEvent} */ ev) => {
        note('got', ev.data);
        return fn(ev);
      });
    },
  });
}

const HOLD_MS = 1500;

// Runs in the page before its scripts when the address asks for it (`?hold-raw`): holds
// the answer of the first raw read in binary columns, and every message after it, for
// HOLD_MS, then hands them to the page in order (over the WebSocket or, before the
// upgrade, in a polling answer). What the page draws meanwhile did not wait for it.
function holdRawAnswer(/** @type {number} */ ms) {
  if (!location.search.includes('hold-raw')) return;
  /** @type {{from: number|null, until: number|null, held: number}} */
  const hold = { from: null, until: null, held: 0 };
  // @ts-ignore
  window.__hold = hold;
  /** @type {(() => void)[]} */
  const queue = [];
  const columns = /(^|\x1e)46\d+-\/znsocket,\d+\[\{"data":\{[^}]*"mode":"columns"/;
  /** Hand `deliver` over now, or queue it while the hold lasts. @param {unknown} data @param {() => void} deliver */
  const pass = (data, deliver) => {
    if (hold.from === null && typeof data === 'string' && columns.test(data)) {
      hold.from = performance.now();
      setTimeout(() => {
        hold.until = performance.now();
        for (const held of queue.splice(0)) held();
      }, ms);
    }
    if (hold.from === null || hold.until !== null) return deliver();
    hold.held++;
    queue.push(deliver);
  };
  const onmessage = /** @type {PropertyDescriptor} */ (Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage'));
  Object.defineProperty(WebSocket.prototype, 'onmessage', {
    configurable: true,
    get() { return onmessage.get?.call(this); },
    set(fn) {
      onmessage.set?.call(this, (/** @type {MessageEvent} */ ev) => pass(ev.data, () => fn(ev)));
    },
  });
  const xhrSend = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (body) {
    const handler = this.onreadystatechange;
    const xhr = this;
    this.onreadystatechange = function (ev) {
      if (xhr.readyState !== 4) return handler?.call(this, ev);
      pass(xhr.responseText, () => handler?.call(this, ev));
    };
    return xhrSend.call(this, body);
  };
}

/**
 * The page's calls and answers in order: `{dir, event?, id, at, text}` per socket.io packet
 * (a polling payload holds several).
 * @param {{dir: string, text: string, at: number}[]} wire
 */
function packets(wire) {
  const out = [];
  for (const { dir, text, at } of wire) {
    for (const part of text.split('\x1e')) {
      const call = /^42\/znsocket,(\d+)\["([^"]+)"/.exec(part);
      const answer = /^4(?:3|6\d+-)\/znsocket,(\d+)/.exec(part);
      if (dir === 'sent' && call) out.push({ dir, event: call[2], id: Number(call[1]), at, text: part });
      else if (dir === 'got' && answer) out.push({ dir, event: null, id: Number(answer[1]), at, text: part });
    }
  }
  return out;
}

let ts;
let gw;
let writer;
let browser;
const T_OLD = Math.floor(nowS()) - 30 * 86400; // series last written a month ago

before(async () => {
  ts = await startTStorage();
  // Chunks of 16 records: the whole series' buckets are aligned to many chunk boundaries.
  gw = await startGateway({ tstorage: { port: ts.port, settings: 'index_chunk = 16' } });
  writer = startWriter(ts.port);
  const points = Array.from({ length: 20000 }, (_, i) => [T_OLD + i * 0.1, Math.sin(i / 300) + (i % 7) * 0.01]);
  assert.equal((await writer.write({ cid: 1, mid: 40, moid: 1, points })).ok, true);
  assert.equal((await writer.write({ cid: 1, mid: 41, moid: 1, points: [[T_OLD, 1.5], [T_OLD + 1, 2.5]] })).ok, true);
  // being written: one record two hours ago, three in the last minute
  const t = nowS();
  const live = [[t - 7200, 1], [t - 50, 2], [t - 20, 3], [t - 5, 4]];
  assert.equal((await writer.write({ cid: 1, mid: 42, moid: 1, points: live })).ok, true);
  browser = await openBrowser();
  await browser.page.addInitScript(logWire);
  await browser.page.addInitScript(holdRawAnswer, HOLD_MS);
});

after(async () => {
  await browser?.close();
  writer?.close();
  await gw?.stop();
  await ts?.stop();
});

/**
 * Load the page afresh (not a change of the address's fragment) and wait for its first
 * chart and its listing.
 * @param {string} address
 */
async function open(address) {
  const { page } = browser;
  await page.goto('about:blank');
  await page.goto(`${gw.url}/${address}`);
  await waitInPage(page, () => window.dashboard.state.firstDrawMs !== null && window.dashboard.state.window !== null, 10000, 'the first chart');
  await waitInPage(page, () => document.querySelector('tr[data-key="meters/40/1"]') !== null, 10000, 'the listing');
  return packets(await page.evaluate(() => /** @type {any} */ (window).__wire));
}

for (const [what, address, range, shown] of [
  ['named without a range', '#series=meters/40/1', 'all', 20000],
  ['named with range=all', '#series=meters/40/1&range=all', 'all', 20000],
  ['a small series named without a range', '#series=meters/41/1', 'all', 2],
  // read whole, then shown on its live hour: the records of the hour, not read again
  ['a small series being written, named without a range', '#series=meters/42/1', '1h', 3],
]) {
  test(`the first chart (${what}) is read in one round trip, then the series listing`, async () => {
    const { page } = browser;
    const log = await open(address);
    const drawnAt = await page.evaluate(() => window.dashboard.state.firstDrawMs);
    const calls = log.filter((p) => p.dir === 'sent');
    const firstRange = calls.find((p) => p.event === 'ts:range');
    assert.ok(firstRange, JSON.stringify(calls));
    // The chart's reads waited on no answer: the first went out before any answer came
    // back, and no other window read went out between the first answer and the chart.
    const firstAnswer = log.find((p) => p.dir === 'got' && calls.some((c) => c.id === p.id && c.event !== 'server_config'));
    assert.ok(firstAnswer && log.indexOf(firstRange) < log.indexOf(firstAnswer), 'the first window read waited on an answer');
    const late = calls.filter((p) => p.event === 'ts:range' && p.at <= drawnAt && log.indexOf(p) > log.indexOf(firstAnswer));
    const order = JSON.stringify(log.map((p) => [p.dir, p.event, p.id]));
    assert.deepEqual(late.map((p) => p.id), [], `a window read sent after an answer, before the chart: ${order}`);
    // The listing is asked only once the chart's reads are answered: it does not compete
    // with them in the gateway.
    const listing = calls.find((p) => p.event === 'dashboard:series');
    assert.ok(listing && log.indexOf(listing) > log.indexOf(firstAnswer), `the listing after the window's answers: ${order}`);
    assert.equal((await page.evaluate(() => window.dashboard.state.window)).in_window, shown);
    assert.equal(await page.evaluate(() => window.dashboard.state.range), range);
    const drawn = await page.evaluate(() => window.dashboard.chartData());
    assert.equal(drawn.t.length, drawn.mode === 'raw' ? shown : (await page.evaluate(() => window.dashboard.state.window)).points);
    assert.deepEqual(browser.errors, []);
  });
}

test('the first chart of a long whole series does not wait for its raw read', async () => {
  const { page } = browser;
  await page.goto('about:blank');
  await page.goto(`${gw.url}/?hold-raw#series=meters/40/1&range=all`);
  const state = () => window.dashboard.state;
  await waitInPage(page, () => window.dashboard.state.firstDrawMs !== null && window.dashboard.state.window !== null, 10000, 'the first chart');
  const hold = await page.evaluate(() => /** @type {any} */ (window).__hold);
  assert.ok(hold.from !== null && hold.held > 0, 'the raw answer was held');
  const { firstDrawMs, window: shown } = await page.evaluate(state);
  assert.ok(hold.until === null || firstDrawMs < hold.until, `drawn at ${firstDrawMs} ms, the raw answer handed over at ${hold.until} ms`);
  assert.equal(shown.mode, 'buckets');
  assert.equal(shown.in_window, 20000);
  // the held answers, handed over later, change nothing and raise nothing
  await waitInPage(page, () => /** @type {any} */ (window).__hold.until !== null, 10000, 'the held answers');
  assert.deepEqual(await page.evaluate(() => window.dashboard.state.window), shown);
  assert.deepEqual(browser.errors, []);
});

test('the whole series is drawn from aligned buckets, each at its own start', async () => {
  const { page } = browser;
  const log = await open('#series=meters/40/1&range=all');
  const asked = log.find((p) => p.dir === 'sent' && p.event === 'ts:range' && p.text.includes('"align":"rows"'));
  assert.ok(asked, 'an aligned ts:range');
  const answer = log.find((p) => p.dir === 'got' && p.id === asked.id);
  // binary columns: the answer's text holds the fields, its arrays come as attachments
  const head = JSON.parse(answer.text.slice(answer.text.indexOf('['))) [0].data;
  assert.ok(/^46\d+-/.test(answer.text), 'a binary answer');
  assert.deepEqual([head.align, head.columns, head.count, head.t._placeholder], ['rows', true, 20000, true]);
  // its columns, as a client asking the same read gets them
  const [[key], request] = JSON.parse(asked.text.slice(asked.text.indexOf('['))).slice(1)[0];
  assert.equal(request.columns, true);
  const client = await connect(gw.url);
  let b;
  try {
    const got = await timeseries.downsampleColumns(client, key, request.buckets, { align: 'rows' });
    const secs = (/** @type {BigInt64Array} */ t) => Array.from(timeseries.secondsOf(t));
    b = { ...got, n: Array.from(got.n), t: secs(got.t), t_end: secs(got.t_end), min: Array.from(got.min), max: Array.from(got.max), mean: Array.from(got.mean) };
  } finally {
    client.close();
  }
  assert.equal(b.n.reduce((a, x) => a + x, 0), 20000);
  // buckets edge to edge (no hole in this series), some of them moved off equal slices
  assert.deepEqual(b.t_end.slice(0, -1), b.t.slice(1));
  const widths = b.t.map((t, i) => b.t_end[i] - t);
  const nominal = (b.t_end[b.t_end.length - 1] - b.t[0]) / b.buckets;
  assert.ok(widths.every((w) => w >= 0.5 * nominal - 1e-6 && w <= 1.5 * nominal + 1e-6), JSON.stringify(widths.slice(0, 20)));
  assert.ok(widths.some((w) => Math.abs(w - nominal) > 0.01), 'edges moved to chunk boundaries');
  // the chart holds the answer's buckets at their starts: mean between min and max
  const d = await page.evaluate(() => window.dashboard.chartData());
  assert.equal(d.mode, 'buckets');
  assert.deepEqual(d.t, b.t);
  assert.deepEqual(d.v, b.mean);
  assert.deepEqual([d.min, d.max], [b.min, b.max]);
  assert.match(await page.locator('#window-info').textContent(), new RegExp(`20,000 records in ${b.t.length.toLocaleString('en-US')} buckets`));
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-aligned.png') });
  assert.deepEqual(browser.errors, []);
});

test('once listed as longer than a raw read returns, a whole series is read again without its raw read', async () => {
  const { page } = browser;
  const first = await open('#series=meters/40/1&range=all'); // the listing holds its count now
  const seen = first.length;
  const drawn = await page.evaluate(() => window.dashboard.state.firstDrawMs);
  await page.click('[data-range="all"]');
  await waitInPage(page, () => window.dashboard.state.loading === 0 && /** @type {any} */ (window).__wire.length > 0, 10000, 'the reload');
  await waitInPage(page, () => {
    const w = /** @type {any} */ (window).__wire;
    return w.some((/** @type {any} */ p, /** @type {number} */ i) => i > 0 && p.dir === 'got' && p.text.includes('"align":"rows"'));
  }, 10000, 'the aligned answer');
  const after = packets(await page.evaluate(() => /** @type {any} */ (window).__wire)).slice(seen);
  const reads = after.filter((p) => p.dir === 'sent' && p.event.startsWith('ts:'));
  assert.ok(reads.some((p) => p.event === 'ts:range' && p.text.includes('"align":"rows"')), JSON.stringify(reads));
  assert.deepEqual(reads.filter((p) => p.event === 'ts:range' && !p.text.includes('"buckets"')), [], 'no raw read');
  assert.equal((await page.evaluate(() => window.dashboard.state.window)).in_window, 20000);
  assert.ok(drawn !== null);
  assert.deepEqual(browser.errors, []);
});
