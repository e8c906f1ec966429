// The gateway's ts:* events (docs/time-series-events.md) through the JS client, on a series
// written straight into TStorage with tstorage_client; values checked against the records
// and against the Python client's view of the same List.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, timeseries, DataError, KeyMappingError, UnknownEventError } from '../src/index.js';
import { startGateway, python, startWriter } from './helpers.js';

const T0 = 1_700_000_000; // unix seconds
const N = 1000;
const times = Array.from({ length: N }, (_, i) => T0 + i * 0.01);
const values = Array.from({ length: N }, (_, i) => (i % 7) * 1.5 - i / 100);
const close = (a, b, eps = 1e-6) => Math.abs(a - b) <= eps;
const KEY = 'meters/43/1';

let gw;
let client;
let available = true;

before(async () => {
  gw = await startGateway();
  client = await connect(gw.url);
  await python('tstorage_put.py', { port: gw.tstoragePort, cid: 1, mid: 43, moid: 1, points: times.map((t, i) => [t, values[i]]) });
  available = await timeseries.info(client, KEY).then(() => true, (e) => !(e instanceof UnknownEventError));
});

after(async () => {
  client?.close();
  await gw?.stop();
});

const needs = (t) => {
  if (!available) t.skip('this gateway does not answer ts:* events');
  return !available;
};

test('wireTime sends unix seconds as exact TStorage nanoseconds, other forms unchanged', () => {
  assert.equal(timeseries.wireTime(978307200), '0');
  assert.equal(timeseries.wireTime(978307201.5), '1500000000');
  assert.equal(timeseries.wireTime(123n), '123');
  assert.equal(timeseries.wireTime('2026-11-22T08:00:00Z'), '2026-11-22T08:00:00Z');
  assert.equal(timeseries.wireTime(new Date(Date.UTC(2001, 0, 1, 0, 0, 1))), '2001-01-01T00:00:01.000Z');
  assert.equal(timeseries.wireTime(null), null);
  assert.throws(() => timeseries.wireTime(NaN), TypeError);
});

test('ts:info and ts:latest', async (t) => {
  if (needs(t)) return;
  const inf = await timeseries.info(client, KEY);
  assert.equal(inf.count, N);
  assert.ok(close(inf.first, T0) && close(inf.last, times[N - 1]), JSON.stringify(inf));
  assert.equal(typeof inf.watermark, 'string');
  const last = await timeseries.latest(client, KEY, 5);
  assert.deepEqual(last.v, values.slice(-5));
  assert.ok(last.t.every((x, i) => close(x, times[N - 5 + i])));
});

test('ts:range: raw windows, paging with next, and the Python List agree', async (t) => {
  if (needs(t)) return;
  const r = await timeseries.range(client, KEY, { start: T0 + 1 - 1e-4, end: T0 + 2 - 1e-4 });
  assert.equal(r.mode, 'raw');
  assert.deepEqual(r.v, values.slice(100, 200));
  const page1 = await timeseries.range(client, KEY, { limit: 600 });
  assert.equal(page1.truncated, true);
  const page2 = await timeseries.range(client, KEY, { start: page1.next, limit: 600 });
  assert.equal(page2.truncated, false);
  const [pyList] = await python('znsocket_ops.py', { url: gw.url, ops: [{ op: 'list', key: KEY }] });
  assert.deepEqual([...page1.v, ...page2.v], pyList);
  assert.deepEqual(pyList, values);
});

test('ts:range with buckets: min/max/mean/last/n per slice', async (t) => {
  if (needs(t)) return;
  const d = await timeseries.downsample(client, KEY, 10, { start: T0 - 0.005, end: T0 + 9.995 });
  assert.equal(d.mode, 'buckets');
  assert.equal(d.t.length, 10);
  for (let b = 0; b < 10; b++) {
    const chunk = values.slice(b * 100, b * 100 + 100);
    assert.equal(d.n[b], 100);
    assert.ok(close(d.min[b], Math.min(...chunk)), `min ${b}`);
    assert.ok(close(d.max[b], Math.max(...chunk)), `max ${b}`);
    assert.ok(close(d.mean[b], chunk.reduce((a, x) => a + x, 0) / 100), `mean ${b}`);
    assert.equal(d.last[b], chunk[99]);
  }
});

test('ts:resume returns exactly the records acquired since a watermark', async (t) => {
  if (needs(t)) return;
  const { watermark } = await timeseries.info(client, KEY);
  const writer = startWriter(gw.tstoragePort);
  try {
    const later = [[T0 + 20, 1.25], [T0 + 21, 2.25], [T0 + 22, 3.25]];
    assert.equal((await writer.write({ cid: 1, mid: 43, moid: 1, points: later })).ok, true);
  } finally {
    writer.close();
  }
  const got = await timeseries.resume(client, [KEY], watermark);
  assert.deepEqual(got.changes[KEY].v, [1.25, 2.25, 3.25]);
  assert.ok(got.changes[KEY].t.every((x, i) => close(x, T0 + 20 + i)));
  const again = await timeseries.resume(client, [KEY], got.watermark);
  assert.deepEqual(again.changes[KEY]?.v ?? [], []);
});

test('bad requests: clear error types, the connection keeps working', async (t) => {
  if (needs(t)) return;
  await assert.rejects(timeseries.range(client, KEY, { start: 'yesterday' }), DataError);
  await assert.rejects(timeseries.range(client, KEY, { limit: 0 }), DataError);
  await assert.rejects(timeseries.info(client, 'plain-generic-key'), KeyMappingError);
  await assert.rejects(timeseries.info(client, 'meters/7'), KeyMappingError);
  assert.equal((await timeseries.info(client, KEY)).count, N + 3);
});
