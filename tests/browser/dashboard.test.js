// The dashboard in a real browser: a gateway on a separate tstorage-server, records written
// with tstorage_client while the page is open, outages of TStorage and of the gateway, a
// series whose values are not numbers, and which events the page sends.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { startGateway, startTStorage, startWriter, ROOT } from '../../js/test/helpers.js';
import { connect, List } from '../../js/src/index.js';
import { openBrowser, waitInPage } from './browser.js';

const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const now = () => Date.now() / 1000;

let ts;
let gw;
let writer;
let browser;
/** Requests of the page that failed or were answered with an error status. */
const failed = [];
/** Names of the socket.io events the page sent (over polling and websocket). */
const sent = new Set();
const EVENT_NAME = /42\/znsocket,\d*\["([^"]+)"/g;
const noteEvents = (/** @type {string|null|undefined} */ text) => {
  for (const m of String(text ?? '').matchAll(EVENT_NAME)) sent.add(m[1]);
};

before(async () => {
  ts = await startTStorage();
  gw = await startGateway({ tstorage: { port: ts.port } });
  writer = startWriter(ts.port);
  const t = now() - 10;
  // Two series with history before the page opens; a third is written later.
  assert.deepEqual((await writer.write({ cid: 1, mid: 5, moid: 1, points: [[t, 1.5], [t + 1, 2.5], [t + 2, 3.5]] })).ok, true);
  const many = Array.from({ length: 5000 }, (_, i) => [t - 5000 + i, Math.sin(i / 100) * 10]);
  assert.equal((await writer.write({ cid: 1, mid: 5, moid: 2, points: many })).ok, true);
  browser = await openBrowser();
  browser.page.on('request', (r) => noteEvents(r.postData()));
  browser.page.on('requestfailed', (r) => failed.push(`${r.url()} (${r.failure()?.errorText})`));
  browser.page.on('response', (r) => {
    if (r.status() >= 400) failed.push(`${r.url()} (${r.status()})`);
  });
  browser.page.on('websocket', (ws) => ws.on('framesent', (f) => noteEvents(String(f.payload))));
});

after(async () => {
  await browser?.close();
  writer?.close();
  await gw?.stop();
  await ts?.stop();
});

test('the page lists the series; a picked series is drawn and new points show within 1 s', async () => {
  const { page } = browser;
  await page.goto(gw.url + '/');
  await page.locator('tr[data-key="meters/5/1"]').waitFor({ timeout: 10000 });
  await page.locator('tr[data-key="meters/5/2"]').waitFor({ timeout: 10000 });
  assert.equal(await page.locator('#status').getAttribute('data-state'), 'ok');
  assert.equal(await page.locator('tr[data-key="meters/5/1"] td.count').textContent(), '3');

  await page.locator('tr[data-key="meters/5/1"]').click();
  await waitInPage(page, () => window.dashboard.chartData().t.length === 3, 5000, 'the 3 records on the chart');
  const drawn = await page.evaluate(() => window.dashboard.chartData());
  assert.deepEqual(drawn.v, [1.5, 2.5, 3.5]);
  assert.equal(drawn.typed, true); // read as binary columns (typed arrays), not JSON
  assert.equal(await page.locator('#latest-value').textContent(), '3.5');
  // every resource of the page loads; its icon is inline, so a browser asks for no
  // /favicon.ico (a 404 in its console otherwise; headless Chromium asks for none anyway)
  assert.deepEqual(failed, []);
  assert.match(await page.evaluate(() => document.querySelector('link[rel=icon]')?.href ?? ''), /^data:image\/svg\+xml;base64,/);
  assert.equal(await page.locator('#latest-count').textContent(), '3');

  for (const [i, value] of [[0, 123.25], [1, -7.5], [2, 42]]) {
    const ack = await writer.write({ cid: 1, mid: 5, moid: 1, points: [[now(), value]] });
    assert.equal(ack.ok, true);
    const written = Date.now();
    await waitInPage(
      page,
      (v) => {
        const d = window.dashboard.chartData();
        return d.v[d.v.length - 1] === v && document.getElementById('latest-value').textContent === String(v);
      },
      1000,
      `value ${value} on the chart and in the latest-value display`,
      value,
    ).catch(async (e) => {
      throw new Error(`${e.message}; page shows ${JSON.stringify(await page.evaluate(() => window.dashboard.latest()))}`);
    });
    assert.ok(Date.now() - written <= 1000);
    assert.equal(await page.locator('#latest-count').textContent(), String(4 + i));
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png') });
  assert.deepEqual(browser.errors, []);
});

test('a large series is downsampled; zooming in reads raw records, zooming out buckets again', async () => {
  const { page } = browser;
  await page.locator('tr[data-key="meters/5/2"]').click();
  // Being written in the last hour, the series opens on a live hour; "all" shows all of it.
  await waitInPage(page, () => window.dashboard.state.range === '1h', 5000, 'the live hour');
  await page.locator('#reset').click();
  await waitInPage(page, () => window.dashboard.state.window?.mode === 'buckets' && window.dashboard.state.window.in_window === 5000, 5000, 'a downsampled chart');
  const full = await page.evaluate(() => window.dashboard.state.window);
  assert.equal(full.in_window, 5000);
  assert.ok(full.points < 5000 && full.points > 100, JSON.stringify(full));
  assert.match(await page.locator('#window-info').textContent(), /5,000 records in \d+ buckets/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-downsampled.png') });

  // Zoom in (keyboard) until the window holds few enough records to be drawn raw.
  for (let i = 0; i < 4; i++) await page.keyboard.press('+');
  await waitInPage(page, () => window.dashboard.state.window?.mode === 'raw', 5000, 'raw records after zooming in');
  const zoomed = await page.evaluate(() => window.dashboard.chartData());
  assert.ok(zoomed.t.length > 0 && zoomed.t.length < 5000);
  assert.ok(zoomed.t.every((t) => t >= zoomed.view.min - 1 && t <= zoomed.view.max + 1));
  assert.equal(await page.locator('#follow').isChecked(), false);

  // Pan: the visible range moves back in time and the records follow.
  const before = zoomed.view;
  await page.locator('#pan-left').click();
  await waitInPage(
    page,
    (min) => { const d = window.dashboard.chartData(); return d.view.min < min && d.t[0] < min; },
    5000,
    'records of the earlier range after panning',
    before.min,
  );
  const panned = await page.evaluate(() => window.dashboard.chartData());
  assert.ok(panned.view.min < before.min, `${panned.view.min} < ${before.min}`);

  await page.locator('#reset').click();
  await waitInPage(page, () => window.dashboard.state.window?.mode === 'buckets' && window.dashboard.state.window.in_window === 5000, 5000, 'the whole series downsampled again');
  assert.deepEqual(browser.errors, []);
});

test('a TStorage outage is shown on the page, and the page recovers when it is back', async () => {
  const { page } = browser;
  await page.locator('tr[data-key="meters/5/1"]').click();
  await waitInPage(page, () => document.getElementById('latest-value').textContent === '42', 5000, 'series 5/1');
  await ts.stop();
  await waitInPage(page, () => document.getElementById('status').dataset.state === 'tstorage-down', 8000, 'the TStorage outage status');
  const banner = await page.locator('#outage').textContent();
  assert.match(banner, /TStorage unreachable/);
  assert.equal(await page.locator('#outage').isVisible(), true);
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-tstorage-down.png') });

  ts = await startTStorage(ts.dir, ts.port);
  await waitInPage(page, () => document.getElementById('status').dataset.state === 'ok', 10000, 'recovery after TStorage is back');
  assert.equal(await page.locator('#outage').isVisible(), false);
  // Data written before the outage is still there, and new points appear again.
  const ack = await writer.write({ cid: 1, mid: 5, moid: 1, points: [[now(), 99.5]] });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  await waitInPage(page, () => document.getElementById('latest-value').textContent === '99.5', 2000, 'a point written after the outage');
  assert.equal(await page.locator('#latest-count').textContent(), '7');
});

test('a gateway outage is shown on the page, and the page reconnects when it is back', async () => {
  const { page } = browser;
  await gw.kill();
  await waitInPage(page, () => document.getElementById('status').dataset.state === 'gateway-down', 8000, 'the gateway outage status');
  assert.match(await page.locator('#outage').textContent(), /Gateway unreachable/);
  gw = await startGateway({ tstorage: { port: ts.port }, port: gw.port, dir: gw.dir });
  await waitInPage(page, () => document.getElementById('status').dataset.state === 'ok', 15000, 'reconnection');
  const ack = await writer.write({ cid: 1, mid: 5, moid: 1, points: [[now(), 5.25]] });
  assert.equal(ack.ok, true);
  await waitInPage(page, () => document.getElementById('latest-value').textContent === '5.25', 2000, 'a point written after reconnecting');
  assert.deepEqual(browser.errors, []);
});

test('a series of values that are not numbers is listed and shown raw, newest first', async () => {
  const { page } = browser;
  const client = await connect(gw.url);
  try {
    const t0 = Math.round((now() - 3600) * 1000);
    // 3,000 records: more than the chart draws raw, and not numbers, so not downsampled.
    const events = Array.from({ length: 3000 }, (_, i) => ({ t: (t0 + i) * 1e6, v: `state-${i}` }));
    await new List(client, 'events/7').extend(events);
  } finally {
    client.close();
  }
  await page.locator('tr[data-key="events/7"]').waitFor({ timeout: 10000 });
  assert.equal(await page.locator('tr[data-key="events/7"] td.count').textContent(), '3,000');
  await page.locator('tr[data-key="events/7"]').click();
  await page.locator('#reset').click();
  await waitInPage(page, () => window.dashboard.state.window?.in_window === 3000, 5000, 'all of the series');
  await waitInPage(page, () => document.getElementById('latest-value').textContent === 'state-2999', 5000, 'the newest value');
  const w = await page.evaluate(() => window.dashboard.state.window);
  assert.equal(w.mode, 'raw');
  assert.equal(w.in_window, 3000);
  assert.ok(w.points > 0 && w.points < 3000, JSON.stringify(w));
  assert.match(await page.locator('#window-info').textContent(), /records \(newest of 3,000\); values are not numbers/);
  assert.equal(await page.locator('#latest-count').textContent(), '3,000');
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-text-values.png') });
  assert.deepEqual(browser.errors, []);
});

test('the page reads through the documented ts:* events and its series listing only', () => {
  const allowed = new Set(['server_config', 'dashboard:series', 'ts:info', 'ts:range', 'ts:latest', 'ts:resume']);
  assert.ok(['dashboard:series', 'ts:info', 'ts:range', 'ts:latest'].every((e) => sent.has(e)), [...sent].join());
  assert.deepEqual([...sent].filter((e) => !allowed.has(e)), []);
});
