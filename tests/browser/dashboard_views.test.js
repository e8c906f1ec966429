// The dashboard's views in a real browser: time-range presets and the live window, holes in
// the data, units and labels, one time format, the first view, the address as shared state,
// and downloads of what is on screen. A gateway on its embedded TStorage; records written
// through the JavaScript client with explicit times.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { startGateway, python, ROOT, VENV_BIN } from '../../js/test/helpers.js';
import { connect, List } from '../../js/src/index.js';
import { openBrowser, waitInPage } from './browser.js';

const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const run = promisify(execFile);
const nowS = () => Date.now() / 1000;
/** A time in unix seconds as the unix ns a timestamped element takes (ms precision). */
const ns = (/** @type {number} */ t) => Math.round(t * 1e3) * 1e6;

let gw;
let browser;
let client;

/**
 * Append records with explicit times (unix s) to a key of the timestamped `events/*` rule.
 * @param {string} key
 * @param {[number, number][]} points
 */
async function write(key, points) {
  await new List(client, key).extend(points.map(([t, v]) => ({ t: ns(t), v })));
}

before(async () => {
  gw = await startGateway();
  client = await connect(gw.url);
  browser = await openBrowser();
});

after(async () => {
  client?.close();
  await browser?.close();
  await gw?.stop();
});

test('with nothing stored, the page shows a command that adds a series, and it works', async () => {
  const { page } = browser;
  await page.goto(gw.url + '/');
  await page.locator('#empty-command').waitFor({ timeout: 10000 });
  await waitInPage(page, () => document.getElementById('empty-command').textContent.includes('append'), 10000, 'the command');
  const command = await page.locator('#empty-command').textContent();
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-empty.png') });
  // The command as the page prints it, run from the repository as a user would.
  const m = /^\.venv\/bin\/python -c "(.*)"$/.exec(command);
  assert.ok(m, command);
  await run(path.join(VENV_BIN, 'python'), ['-c', m[1]], { cwd: ROOT, timeout: 30000 });
  // The new series is listed and, the newest one, drawn without a click.
  await waitInPage(page, () => window.dashboard.state.key !== null && window.dashboard.chartData().v.includes(1.5), 10000, 'the new series drawn');
  assert.equal(await page.locator('#series-empty').isVisible(), false);
  assert.deepEqual(browser.errors, []);
});

test('the newest series opens on a live hour that slides with now; presets change the span', async () => {
  const { page } = browser;
  const t = nowS();
  await write('events/1', [[t - 7200, 1], [t - 100, 2], [t - 50, 3]]);
  await write('events/2', [[t - 1, 10], [t, 11]]); // newer than the series of the test before
  await page.goto(gw.url + '/');
  await waitInPage(page, () => window.dashboard.state.key === 'events/2', 10000, 'the newest series picked');
  await waitInPage(page, () => window.dashboard.state.range === '1h' && window.dashboard.chartData().t.length === 2, 5000, 'the live hour');
  assert.equal(await page.locator('button[data-range="1h"]').getAttribute('aria-pressed'), 'true');
  const first = await page.evaluate(() => window.dashboard.chartData().view);
  assert.ok(Math.abs(first.max - first.min - 3600) < 1, JSON.stringify(first));
  assert.ok(Math.abs(first.max - nowS()) < 5, JSON.stringify(first));
  // The window slides: half a second later it ends later.
  await waitInPage(page, (max) => window.dashboard.chartData().view.max > max + 0.4, 3000, 'the window sliding', first.max);

  await page.locator('tr[data-key="events/1"]').click();
  await waitInPage(page, () => window.dashboard.state.key === 'events/1' && window.dashboard.chartData().t.length === 2, 5000, 'events/1 in its live hour (2 of 3 records)');
  await page.locator('button[data-range="5m"]').click();
  await waitInPage(page, () => { const v = window.dashboard.chartData().view; return Math.abs(v.max - v.min - 300) < 1; }, 5000, 'a 5-minute window');
  assert.match(await page.evaluate(() => location.hash), /range=5m/);
  await page.locator('#reset').click();
  await waitInPage(page, () => window.dashboard.state.window?.in_window === 3, 5000, 'all 3 records');
  assert.equal(await page.locator('#latest-count').textContent(), '3');
  assert.match(await page.locator('#window-info').textContent(), /^3 records/);
  assert.deepEqual(browser.errors, []);
});

test('a pause in the data breaks the line, raw and downsampled', async () => {
  const { page } = browser;
  const t0 = Math.floor(nowS()) - 4000;
  const points = [];
  for (let i = 0; i < 1500; i++) points.push([t0 + i, Math.sin(i / 10)]);
  for (let i = 0; i < 1500; i++) points.push([t0 + 1620 + i, Math.cos(i / 10)]); // a 2-minute pause
  await write('events/3', points);
  await page.goto(`${gw.url}/#series=events/3&range=all`);
  await waitInPage(page, () => window.dashboard.state.window?.in_window === 3000, 10000, 'the series');
  const d = await page.evaluate(() => window.dashboard.chartData());
  // 3,000 records on ~1,000 pixels: buckets; the empty buckets of the pause are a hole.
  assert.equal(d.mode, 'buckets');
  const inPause = (/** @type {number} */ t) => t > t0 + 1490 && t < t0 + 1630;
  assert.ok(d.t.some((t, i) => d.v[i] === null && inPause(t)), 'a null row inside the pause');
  assert.ok(!d.t.some((t, i) => d.v[i] === null && !inPause(t)), 'no hole elsewhere');
  // Zoomed in to raw records around the pause: still a hole, and only there.
  await page.goto(`${gw.url}/#series=events/3&from=${t0 + 1400}&to=${t0 + 1700}`);
  await waitInPage(page, () => window.dashboard.state.window?.mode === 'raw' && window.dashboard.state.range === 'custom', 10000, 'raw records');
  const raw = await page.evaluate(() => window.dashboard.chartData());
  const nulls = raw.t.filter((_, i) => raw.v[i] === null);
  assert.equal(nulls.length, 1, JSON.stringify(nulls));
  assert.ok(nulls[0] > t0 + 1499 && nulls[0] < t0 + 1620);
  assert.ok(Math.abs(raw.view.min - (t0 + 1400)) < 0.01 && Math.abs(raw.view.max - (t0 + 1700)) < 0.01, 'the range from the address');
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-gap.png') });
  assert.deepEqual(browser.errors, []);
});

test('values that are not finite are gaps in the chart, downsampled and raw', async () => {
  const { page } = browser;
  const t0 = Math.floor(nowS()) - 5000;
  /** @type {[number, number | string][]} */
  const points = Array.from({ length: 3000 }, (_, i) => [t0 + i, Math.sin(i / 50)]);
  points[1000][1] = 'inf';
  points[2000][1] = '-inf';
  points[2500][1] = 'nan';
  await python('tstorage_put.py', { port: gw.tstoragePort, cid: 1, mid: 62, moid: 1, points });
  await page.goto(`${gw.url}/#series=meters/62/1&range=all`);
  await waitInPage(page, () => window.dashboard.state.window?.in_window === 3000, 10000, 'the series');
  const d = await page.evaluate(() => window.dashboard.chartData());
  assert.equal(d.mode, 'buckets');
  const finite = (/** @type {(number|null)[]} */ col) => col.every((x) => x === null || Number.isFinite(x));
  assert.ok(finite(d.v) && finite(d.min) && finite(d.max), 'only numbers and gaps are drawn');
  const near = (/** @type {number} */ t, /** @type {number} */ at) => Math.abs(t - at) < 60;
  assert.ok(d.t.some((t, i) => d.v[i] === null && near(t, t0 + 1000)), 'the bucket holding inf is a gap');
  // zoomed in to the raw records around one: that record is a gap
  await page.goto(`${gw.url}/#series=meters/62/1&from=${t0 + 990}&to=${t0 + 1010}`);
  await waitInPage(page, () => window.dashboard.state.window?.mode === 'raw' && window.dashboard.state.range === 'custom', 10000, 'raw records');
  const raw = await page.evaluate(() => window.dashboard.chartData());
  assert.deepEqual(raw.t.filter((_, i) => raw.v[i] === null).map((t) => Math.round(t - t0)), [1000]);
  assert.deepEqual(browser.errors, []);
});

test('a rule\'s unit and label show on the axis, the legend and the latest value', async () => {
  const { page } = browser;
  await new List(client, 'power/4').extend([12.5, 13.25]);
  await page.goto(`${gw.url}/#series=power/4`);
  await waitInPage(page, () => document.getElementById('latest-value').textContent === '13.25', 10000, 'the latest value');
  await waitInPage(page, () => document.getElementById('latest-unit').textContent === 'kW', 5000, 'the unit beside it');
  assert.match(await page.locator('#chart-label').textContent(), /active power/);
  const legend = await page.locator('.u-legend').textContent();
  assert.match(legend, /active power/);
  assert.deepEqual((await page.evaluate(() => window.dashboard.axes())).valueLabels, ['active power (kW)']);
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-unit.png') });
  assert.deepEqual(browser.errors, []);
});

test('times read alike in the header, the legend and on the axis, with the time zone shown', async () => {
  const { page } = browser;
  await page.goto(`${gw.url}/#series=events/3&range=all`);
  await waitInPage(page, () => window.dashboard.state.window?.in_window === 3000, 10000, 'the series');
  assert.match(await page.locator('#tz').textContent(), /^times in .+ \(UTC[+-]\d\d:\d\d\)$/);
  const FULL = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/;
  assert.match(await page.locator('#latest-time').textContent(), FULL);
  // Hover the plot: the legend's time has the same format.
  const box = await page.locator('.u-over').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  const legendTime = await page.locator('.u-legend .u-series:first-child .u-value').textContent();
  assert.match(legendTime, FULL);
  // Zoomed to a few seconds, axis ticks carry seconds (and the date where it changes).
  const t = await page.evaluate(() => window.dashboard.chartData().t[0]);
  await page.goto(`${gw.url}/#series=events/3&from=${t + 10}&to=${t + 14}`);
  await waitInPage(page, () => window.dashboard.state.window?.mode === 'raw', 10000, 'raw records');
  const { ticks } = await page.evaluate(() => window.dashboard.axes());
  assert.ok(ticks.length > 1 && ticks.every((x) => /^\d\d:\d\d:\d\d(\.\d{3})?(\n\d{4}-\d\d-\d\d)?$/.test(x)), JSON.stringify(ticks));
  assert.match(ticks[0], /\n\d{4}-\d\d-\d\d$/); // the first tick says the date
  assert.deepEqual(browser.errors, []);
});

test('the records on screen download as CSV, and the chart as PNG', async () => {
  const { page } = browser;
  await page.goto(`${gw.url}/#series=events/1&range=all`);
  await waitInPage(page, () => window.dashboard.state.window?.in_window === 3, 10000, 'the series');
  const [csv] = await Promise.all([page.waitForEvent('download'), page.locator('#download-csv').click()]);
  assert.match(csv.suggestedFilename(), /^events_1_.*\.csv$/);
  const lines = readFileSync(await csv.path(), 'utf8').trim().split('\n');
  assert.equal(lines[0], 'time,unix_s,value');
  assert.deepEqual(lines.slice(1).map((l) => l.split(',')[2]), ['1', '2', '3']);
  for (const l of lines.slice(1)) {
    const [iso, unix] = l.split(',');
    assert.ok(Math.abs(new Date(iso).getTime() / 1000 - Number(unix)) < 0.001, l); // ISO keeps ms
  }
  const [png] = await Promise.all([page.waitForEvent('download'), page.locator('#download-png').click()]);
  assert.match(png.suggestedFilename(), /\.png$/);
  const bytes = readFileSync(await png.path());
  assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.ok(bytes.length > 2000, `${bytes.length} bytes`);
  assert.deepEqual(browser.errors, []);
});

test('series drawn over the picked one share its time axis, another unit gets its own axis, the search box filters', async () => {
  const { page } = browser;
  await page.goto(`${gw.url}/#series=events/1&range=all`);
  await waitInPage(page, () => window.dashboard.state.window?.in_window === 3, 10000, 'events/1');
  const visible = async () => page.evaluate(() => [...document.querySelectorAll('#series tbody tr')].filter((r) => !r.hidden).map((r) => r.dataset.key));
  await page.locator('#series-search').fill('power');
  assert.deepEqual(await visible(), ['power/4']);
  assert.match(await page.locator('#series-shown').textContent(), /^1 of \d+$/);
  await page.locator('#series-search').fill('events/*');
  assert.deepEqual((await visible()).sort(), ['events/1', 'events/2', 'events/3']);
  await page.locator('#series-search').fill('');

  await page.locator('tr[data-key="power/4"] input[type=checkbox]').check();
  await waitInPage(page, () => window.dashboard.overlays().length === 1, 5000, 'the overlay drawn');
  const [o] = await page.evaluate(() => window.dashboard.overlays());
  assert.equal(o.key, 'power/4');
  assert.deepEqual(o.v.filter((x) => x !== null), [12.5, 13.25]);
  // events/1 has no unit, power/4 is in kW: a second axis on the right says so.
  assert.deepEqual((await page.evaluate(() => window.dashboard.axes())).valueLabels, ['value', 'kW']);
  assert.match(await page.evaluate(() => location.hash), /with=power%2F4/);
  const csv = (await page.evaluate(() => window.dashboard.csv())).trim().split('\n');
  assert.equal(csv[0], 'time,unix_s,value,power/4');
  assert.deepEqual(csv.slice(1).map((l) => l.split(',').slice(2).join('|')).filter((c) => !c.startsWith('|')), ['1|', '2|', '3|']);
  assert.equal(csv.filter((l) => l.endsWith(',13.25')).length, 1);
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-overlay.png') });

  // The address brings the same view back in a fresh page.
  const url = page.url();
  await page.goto('about:blank');
  await page.goto(url);
  await waitInPage(page, () => window.dashboard.overlays().length === 1, 10000, 'the overlay from the address');
  assert.equal(await page.locator('tr[data-key="power/4"] input[type=checkbox]').isChecked(), true);
  // Cleared, it is gone from the chart and the address.
  await page.locator('tr[data-key="power/4"] input[type=checkbox]').uncheck();
  await waitInPage(page, () => window.dashboard.overlays().length === 0, 5000, 'no overlay');
  assert.doesNotMatch(await page.evaluate(() => location.hash), /with=/);
  assert.deepEqual(browser.errors, []);
});

test('a link to a key that is no series says so once; an empty series and a single record read as such; millisecond ticks never touch', async () => {
  const { page } = browser;
  // not a series: the page says why and stops asking (it asked 4 times a second, each a console error)
  await page.goto(`${gw.url}/#series=nope&range=1h`);
  await waitInPage(page, () => /is not a series/.test(document.querySelector('#window-info')?.textContent ?? ''), 5000, 'the refusal shown');
  await page.waitForTimeout(1500);
  assert.deepEqual(browser.errors, []);
  // a mapped key with no records yet, then one with a single record
  await page.goto(`${gw.url}/#series=events/90&range=all`);
  await waitInPage(page, () => document.querySelector('#window-info')?.textContent === 'no records yet', 5000, 'no records yet');
  const t = Math.floor(nowS()) - 10;
  await write('events/91', [[t, 1.5]]);
  await page.goto(`${gw.url}/#series=events/91&range=all`);
  await waitInPage(page, () => document.querySelector('#window-info')?.textContent === '1 record', 5000, '1 record');
  // two seconds of records 10 ms apart: tick labels carry milliseconds and keep apart
  await write('events/92', Array.from({ length: 300 }, (_, i) => [t + i / 100, Math.sin(i / 10)]));
  await page.goto(`${gw.url}/#series=events/92&from=${t + 0.5}&to=${t + 2.5}`);
  await waitInPage(page, () => window.dashboard.state.window?.in_window === 200, 5000, 'the 2-second view');
  const ticks = await page.evaluate(() => window.dashboard.axes().ticks);
  const width = await page.evaluate(() => document.querySelector('#chart')?.clientWidth ?? 0);
  assert.ok(ticks.some((l) => /\.\d{3}/.test(l)), JSON.stringify(ticks));
  assert.ok(ticks.length * 100 <= width, `${ticks.length} labels in ${width} px: ${JSON.stringify(ticks)}`);
  assert.deepEqual(browser.errors, []);
});

test('a whole-series view left open on a live series is read again as it grows, not drawn one raw point per record forever', async () => {
  const { page } = browser;
  const t0 = Math.floor(nowS()) - 6000;
  await write('events/93', Array.from({ length: 5000 }, (_, i) => [t0 + i, Math.sin(i / 50)]));
  await page.goto(`${gw.url}/#series=events/93&range=all`);
  await waitInPage(page, () => window.dashboard.state.window?.mode === 'buckets', 10000, 'the series downsampled');
  const pixels = await page.evaluate(() => window.dashboard.state.window.points);
  const t1 = Math.floor(nowS()) - 300;
  for (let b = 0; b < 6; b++) {
    await write('events/93', Array.from({ length: 50 }, (_, i) => [t1 + b * 50 + i, 2 + i / 100]));
    await page.waitForTimeout(400);
  }
  // read again within 5 s of the last read: all 5,300 records, downsampled
  await waitInPage(page, (p) => {
    const w = window.dashboard.state.window;
    return w?.in_window === 5300 && w.mode === 'buckets' && w.points <= p * 1.2;
  }, 10000, 'all 5,300 records in about as many buckets as before', pixels);
  assert.deepEqual(browser.errors, []);
});
