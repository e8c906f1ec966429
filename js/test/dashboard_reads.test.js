// The dashboard's reads (listing, range, latest, info, downsampling) of a series written straight into
// TStorage by another program (tstorage_client), checked against the known records and
// against the Python client's view of the same List.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, dashboard as timeseries, ZnSocketError, KeyMappingError } from '../src/index.js';
import { startGateway, python } from './helpers.js';

const T0 = 1_700_000_000; // unix seconds
const N = 1000;
const times = Array.from({ length: N }, (_, i) => T0 + i * 0.01);
const values = Array.from({ length: N }, (_, i) => (i % 7) * 1.5 - i / 100);
const close = (a, b, eps = 1e-6) => Math.abs(a - b) <= eps;

let gw;
let client;

before(async () => {
  gw = await startGateway();
  client = await connect(gw.url);
  await python('tstorage_put.py', { port: gw.tstoragePort, cid: 1, mid: 42, moid: 1, points: times.map((t, i) => [t, values[i]]) });
});

after(async () => {
  client?.close();
  await gw?.stop();
});

test('the written series is listed with its count, times and latest value', async () => {
  const series = await timeseries.listSeries(client);
  const s = series.find((x) => x.key === 'meters/42/1');
  assert.ok(s, JSON.stringify(series));
  assert.equal(s.count, N);
  assert.ok(close(s.first_time, T0) && close(s.last_time, times[N - 1]));
  assert.equal(s.latest, values[N - 1]);
  assert.equal(s.full_key, 'znsocket.List:meters/42/1');
  assert.deepEqual([s.cid, s.mid, s.moid], [1, 42, 1]);
});

test('info, latest and range agree with the records and with the Python List', async () => {
  const inf = await timeseries.info(client, 'meters/42/1');
  assert.equal(inf.count, N);
  assert.ok(close(inf.last_time, times[N - 1]));

  const last = await timeseries.latest(client, 'meters/42/1', 5);
  assert.deepEqual(last.v, values.slice(-5));
  assert.ok(last.t.every((t, i) => close(t, times[N - 5 + i])));

  // [T0 + 1, T0 + 2) holds records 100..199.
  const r = await timeseries.range(client, 'meters/42/1', { start: T0 + 1 - 1e-4, end: T0 + 2 - 1e-4 });
  assert.equal(r.mode, 'raw');
  assert.equal(r.in_window, 100);
  assert.deepEqual(r.v, values.slice(100, 200));

  const all = await timeseries.range(client, 'meters/42/1');
  const [pyList] = await python('znsocket_ops.py', { url: gw.url, ops: [{ op: 'list', key: 'meters/42/1' }] });
  assert.deepEqual(all.v, pyList);

  const limited = await timeseries.range(client, 'meters/42/1', { limit: 10 });
  assert.equal(limited.truncated, true);
  assert.deepEqual(limited.v, values.slice(-10));
});

test('downsampling gives min/max/mean/last per time bucket; small windows stay raw', async () => {
  const d = await timeseries.downsample(client, 'meters/42/1', 10, { start: T0 - 0.005, end: T0 + 9.995 });
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
  const raw = await timeseries.downsample(client, 'meters/42/1', 100, { start: T0, end: T0 + 1 });
  assert.equal(raw.mode, 'raw');
  assert.equal(raw.t.length, 100);
});

test('bad requests get clear errors and the connection keeps working', async () => {
  const cases = [
    [{ key: 'meters/42/1', start: 'yesterday' }, /start must be a number/],
    [{ key: 'meters/42/1', limit: 0 }, /limit must be an integer/],
    [{ key: 'meters/42/1', buckets: 1e9 }, /buckets must be an integer/],
    [{ key: 'meters/42/1', colour: 'red' }, /unknown parameter/],
    [{ key: 'plain-generic-key' }, /not a List key of a map rule/],
    [{ key: 42 }, /key must be a non-empty string/],
  ];
  for (const [kwargs, re] of cases) {
    const err = await client.call(timeseries.WINDOW_EVENT, [], kwargs).then(() => null, (e) => e);
    assert.ok(err instanceof ZnSocketError, JSON.stringify(kwargs));
    assert.match(err.message, re);
  }
  await assert.rejects(client.call(timeseries.WINDOW_EVENT, [], { key: 'meters/abc/1' }), KeyMappingError);
  const ack = await client.emit(timeseries.WINDOW_EVENT, 'not [args, kwargs]');
  assert.ok(ack.error, JSON.stringify(ack));
  assert.equal((await timeseries.info(client, 'meters/42/1')).count, N);
});
