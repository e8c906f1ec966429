// The dashboard's own read, the series listing (`dashboard:series`), of a series written
// straight into TStorage by another program (tstorage_client), checked against the known
// records and against the Python client's time-series reads (gateway.TimeSeries). Windows
// and downsampling go through the ts:* events (ts_events.test.js); the gateway no longer
// answers a dashboard event of its own for them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, dashboard, timeseries, List, DataError, UnknownEventError } from '../src/index.js';
import { startGateway, python } from './helpers.js';

const T0 = 1_700_000_000; // unix seconds
const N = 1000;
const times = Array.from({ length: N }, (_, i) => T0 + i * 0.01);
const values = Array.from({ length: N }, (_, i) => (i % 7) * 1.5 - i / 100);
const close = (a, b, eps = 1e-6) => Math.abs(a - b) <= eps;
const unixS = (ns) => Number(BigInt(ns)) / 1e9;

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
  const series = await dashboard.listSeries(client);
  const s = series.find((x) => x.key === 'meters/42/1');
  assert.ok(s, JSON.stringify(series));
  assert.equal(s.count, N);
  assert.ok(close(s.first_time, T0) && close(s.last_time, times[N - 1]), JSON.stringify(s));
  assert.equal(s.latest, values[N - 1]);
  assert.equal(s.full_key, 'znsocket.List:meters/42/1');
  assert.equal(s.pattern, 'meters/{mid:int}/{moid:int}');
  assert.deepEqual([s.cid, s.mid, s.moid], [1, 42, 1]);
});

test('the listing agrees with ts:info / ts:latest and with the Python client', async () => {
  const [s] = (await dashboard.listSeries(client)).filter((x) => x.key === 'meters/42/1');
  const inf = await timeseries.info(client, 'meters/42/1');
  assert.deepEqual([s.count, s.first_time, s.last_time], [inf.count, inf.first, inf.last]);
  assert.deepEqual((await timeseries.latest(client, 'meters/42/1')).v, [s.latest]);
  const [py, pyLatest] = await python('timeseries_reads.py', {
    url: gw.url,
    key: 'meters/42/1',
    ops: [{ op: 'info' }, { op: 'latest', n: 1 }],
  });
  assert.equal(py.count, s.count);
  assert.ok(close(unixS(py.first), s.first_time) && close(unixS(py.last), s.last_time), JSON.stringify(py));
  assert.deepEqual(pyLatest.v, [s.latest]);
});

test('a series written through the gateway shows up with its latest value', async () => {
  const list = new List(client, 'meters/42/2');
  await list.extend([1.5, 2.5]);
  const s = (await dashboard.listSeries(client)).find((x) => x.key === 'meters/42/2');
  assert.ok(s);
  assert.equal(s.count, 2);
  assert.equal(s.latest, 2.5);
  assert.ok(s.first_time <= s.last_time);
});

test('the retired window event is unknown; a bad listing request gets a clear error', async () => {
  await assert.rejects(client.call('dashboard:window', [], { key: 'meters/42/1' }), UnknownEventError);
  await assert.rejects(client.call(dashboard.SERIES_EVENT, ['extra'], {}), DataError);
  await assert.rejects(client.call(dashboard.SERIES_EVENT, [], { colour: 'red' }), /unknown argument/);
  const ack = await client.emit(dashboard.SERIES_EVENT, 'not [args, kwargs]');
  assert.equal(ack.error?.type, 'MalformedMessageError', JSON.stringify(ack));
  assert.equal((await dashboard.listSeries(client)).find((x) => x.key === 'meters/42/1').count, N);
});

test('the listing pages by prefix, glob and cursor', async () => {
  await new List(client, 'meters/43/1').extend([1]);
  await new List(client, 'meters/43/2').extend([2]);
  const all = (await dashboard.listSeries(client, { prefix: 'meters/4' })).map((s) => s.key);
  assert.deepEqual(all, ['meters/42/1', 'meters/42/2', 'meters/43/1', 'meters/43/2']);
  const keys = [];
  let after = null;
  do {
    const page = await dashboard.listing(client, { prefix: 'meters/4', limit: 3, after });
    assert.ok(page.series.length <= 3);
    keys.push(...page.series.map((s) => s.key));
    after = page.next;
  } while (after !== null);
  assert.deepEqual(keys, all);
  const matched = await dashboard.listSeries(client, { match: 'meters/*/2' });
  assert.deepEqual(matched.map((s) => s.key), ['meters/42/2', 'meters/43/2']);
  await assert.rejects(dashboard.listing(client, { limit: 0 }), DataError);
});
