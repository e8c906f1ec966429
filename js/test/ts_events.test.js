// The gateway's ts:* events (docs/time-series-events.md) through the JS client, on a series
// written straight into TStorage with tstorage_client; values checked against the records
// and against the Python client's time-series reads (gateway.TimeSeries) of the same series.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, timeseries, DataError, KeyMappingError } from '../src/index.js';
import { startGateway, python, startWriter } from './helpers.js';

const T0 = 1_700_000_000; // unix seconds
const N = 1000;
const times = Array.from({ length: N }, (_, i) => T0 + i * 0.01);
const values = Array.from({ length: N }, (_, i) => (i % 7) * 1.5 - i / 100);
const close = (a, b, eps = 1e-6) => Math.abs(a - b) <= eps;
const KEY = 'meters/43/1';
// Unix ns (a decimal string, as timeseries_reads.py prints them) as unix seconds.
const unixS = (ns) => Number(BigInt(ns)) / 1e9;
const closeTimes = (js, py) => js.length === py.length && js.every((t, i) => close(t, unixS(py[i])));
const pyReads = async (ops) => python('timeseries_reads.py', { url: gw.url, key: KEY, ops });

let gw;
let client;

before(async () => {
  gw = await startGateway();
  client = await connect(gw.url);
  await python('tstorage_put.py', { port: gw.tstoragePort, cid: 1, mid: 43, moid: 1, points: times.map((t, i) => [t, values[i]]) });
});

after(async () => {
  client?.close();
  await gw?.stop();
});

test('wireTime sends unix seconds as exact TStorage nanoseconds, other forms unchanged', () => {
  assert.equal(timeseries.wireTime(978307200), '0');
  assert.equal(timeseries.wireTime(978307201.5), '1500000000');
  assert.equal(timeseries.wireTime(123n), '123');
  assert.equal(timeseries.wireTime('2026-11-22T08:00:00Z'), '2026-11-22T08:00:00Z');
  assert.equal(timeseries.wireTime(new Date(Date.UTC(2001, 0, 1, 0, 0, 1))), '2001-01-01T00:00:01.000Z');
  assert.equal(timeseries.wireTime(null), null);
  assert.throws(() => timeseries.wireTime(NaN), TypeError);
  assert.equal(timeseries.wireWatermark('848701000123456789'), '848701000123456789');
  assert.equal(timeseries.wireWatermark(848701000123456789n), '848701000123456789');
  assert.throws(() => timeseries.wireWatermark(848701000123456789), TypeError); // not exact
});

test('ts:info and ts:latest agree with the records and with the Python client', async () => {
  const inf = await timeseries.info(client, KEY);
  assert.equal(inf.key, KEY);
  assert.equal(inf.count, N);
  assert.ok(close(inf.first, T0) && close(inf.last, times[N - 1]), JSON.stringify(inf));
  assert.match(inf.watermark, /^\d+$/);
  const last = await timeseries.latest(client, KEY, 5);
  assert.equal(last.mode, 'raw');
  assert.deepEqual(last.v, values.slice(-5));
  assert.ok(last.t.every((x, i) => close(x, times[N - 5 + i])));
  assert.deepEqual((await timeseries.latest(client, KEY)).v, [values[N - 1]]); // n defaults to 1

  const [pyInfo, pyLast] = await pyReads([{ op: 'info' }, { op: 'latest', n: 5 }]);
  assert.equal(pyInfo.count, inf.count);
  assert.ok(close(unixS(pyInfo.first), inf.first) && close(unixS(pyInfo.last), inf.last));
  assert.ok(BigInt(pyInfo.watermark) >= BigInt(inf.watermark)); // watermarks only grow
  assert.deepEqual(pyLast.v, last.v);
  assert.ok(closeTimes(last.t, pyLast.t));
});

test('ts:range: windows given as unix seconds, ISO strings or Dates agree with the Python client', async () => {
  // [T0 + 1, T0 + 2) holds records 100..199.
  const r = await timeseries.range(client, KEY, { start: T0 + 1 - 1e-4, end: T0 + 2 - 1e-4 });
  assert.equal(r.mode, 'raw');
  assert.equal(r.count, 100);
  assert.equal(r.truncated, false);
  assert.equal(r.next, null);
  assert.deepEqual(r.v, values.slice(100, 200));
  const iso = (s) => new Date(s * 1000).toISOString();
  const byIso = await timeseries.range(client, KEY, { start: iso(T0 + 1 - 1e-3), end: iso(T0 + 2 - 1e-3) });
  const byDate = await timeseries.range(client, KEY, { start: new Date((T0 + 1 - 1e-3) * 1000), end: new Date((T0 + 2 - 1e-3) * 1000) });
  assert.deepEqual(byIso.v, r.v);
  assert.deepEqual(byDate.v, r.v);
  const [py] = await pyReads([{ op: 'range', start: iso(T0 + 1 - 1e-3), end: iso(T0 + 2 - 1e-3) }]);
  assert.deepEqual(py.v, r.v);
  assert.ok(closeTimes(r.t, py.t));
});

test('ts:range: paging with next reads the whole series once, as the Python List and proxy do', async () => {
  const page1 = await timeseries.range(client, KEY, { limit: 600 });
  assert.equal(page1.truncated, true);
  assert.equal(page1.count, N);
  assert.equal(page1.t.length, 600);
  assert.match(page1.next, /^\d+$/);
  // `next` is the capture time of the first record not returned ...
  const nextS = (Number(BigInt(page1.next)) + 978307200e9) / 1e9;
  assert.ok(close(nextS, times[600], 1e-6), `${nextS}`);
  const page2 = await timeseries.range(client, KEY, { start: page1.next, limit: 600 });
  assert.equal(page2.truncated, false);
  // ... and the second window holds exactly the records not returned yet.
  assert.equal(page2.count, N - 600);
  const [pyList] = await python('znsocket_ops.py', { url: gw.url, ops: [{ op: 'list', key: KEY }] });
  assert.deepEqual([...page1.v, ...page2.v], pyList);
  assert.deepEqual(pyList, values);
  const [pyAll] = await pyReads([{ op: 'range' }]);
  assert.deepEqual(pyAll.v, values);
  assert.ok(closeTimes([...page1.t, ...page2.t], pyAll.t));
});

test('ts:range: unit chooses how answer times are given', async () => {
  const ms = await timeseries.range(client, KEY, { limit: 2, unit: 'unix_ms' });
  assert.ok(close(ms.t[0], T0 * 1000, 1e-3) && close(ms.t[1], times[1] * 1000, 1e-3), JSON.stringify(ms.t));
  const ns = await timeseries.info(client, KEY, { unit: 'tstorage_ns' });
  assert.ok(Math.abs(ns.first - (T0 - 978307200) * 1e9) < 1000, `${ns.first}`);
  await assert.rejects(timeseries.info(client, KEY, { unit: 'fortnights' }), DataError);
});

test('ts:range with buckets: min/max/mean/last/n per slice, as the Python client gets them', async () => {
  const d = await timeseries.downsample(client, KEY, 10, { start: T0 - 0.005, end: T0 + 9.995 });
  assert.equal(d.mode, 'buckets');
  assert.equal(d.count, N);
  assert.equal(d.buckets, 10);
  assert.equal(d.t.length, 10);
  for (let b = 0; b < 10; b++) {
    const chunk = values.slice(b * 100, b * 100 + 100);
    assert.equal(d.n[b], 100);
    assert.ok(close(d.min[b], Math.min(...chunk)), `min ${b}`);
    assert.ok(close(d.max[b], Math.max(...chunk)), `max ${b}`);
    assert.ok(close(d.mean[b], chunk.reduce((a, x) => a + x, 0) / 100), `mean ${b}`);
    assert.equal(d.last[b], chunk[99]);
  }
  // Unbounded: the slices span the records themselves; always buckets, however few records.
  const all = await timeseries.downsample(client, KEY, 4);
  assert.equal(all.mode, 'buckets');
  assert.deepEqual(all.n, [250, 250, 250, 250]);
  assert.ok(close(all.t[0], T0));
  const [py] = await pyReads([{ op: 'downsample', buckets: 4 }]);
  for (const k of ['n', 'min', 'max', 'mean', 'last']) assert.deepEqual(py[k], all[k], k);
  assert.ok(closeTimes(all.t, py.t));
});

test('ts:range with buckets aligned to the gateway\'s summary rows: each slice\'s real end and record times, as the Python client gets them', async () => {
  const d = await timeseries.downsample(client, KEY, 4, { align: 'rows' });
  assert.equal(d.align, 'rows');
  assert.equal(d.n.reduce((a, x) => a + x, 0), N);
  assert.deepEqual(d.t_end.slice(0, -1), d.t.slice(1)); // edge to edge: no hole in the records
  const nominal = (times[N - 1] + 1e-9 - T0) / 4;
  for (let b = 0; b < d.t.length; b++) {
    assert.ok(d.t_end[b] - d.t[b] >= 0.5 * nominal && d.t_end[b] - d.t[b] <= 1.5 * nominal, `width ${b}`);
    const inside = times.map((t, i) => [t, values[i]]).filter(([t]) => t >= d.t_first[b] - 1e-6 && t <= d.t_last[b] + 1e-6);
    assert.equal(inside.length, d.n[b], `n ${b}`);
    assert.equal(d.last[b], inside[inside.length - 1][1]);
    assert.equal(d.first[b], inside[0][1]);
  }
  const [py] = await pyReads([{ op: 'downsample', buckets: 4, align: 'rows' }]);
  for (const k of ['n', 'min', 'max', 'mean', 'last']) assert.deepEqual(py[k], d[k], k);
  for (const k of ['t', 't_end', 't_first', 't_last']) assert.ok(closeTimes(d[k], py[k]), k);
  // equal slices when asked, and when not over a window this short (1,000 records in 4
  // slices: under 512 a slice)
  assert.equal((await timeseries.downsample(client, KEY, 4, { align: 'equal' })).t_end, undefined);
  assert.equal((await timeseries.downsample(client, KEY, 4)).t_end, undefined);
});

test('ts:resume returns exactly the records acquired since a watermark; asOf reads the series as it was', async () => {
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
  assert.ok(got.changes[KEY].acq.every((a) => /^\d+$/.test(a) && BigInt(a) >= BigInt(watermark)));
  const [py] = await pyReads([{ op: 'resume', since: watermark }]);
  assert.deepEqual(py.v, got.changes[KEY].v);
  assert.deepEqual(py.acq, got.changes[KEY].acq);
  // Per-key watermarks, and nothing twice.
  const again = await timeseries.resume(client, [KEY], { [KEY]: got.watermark });
  assert.deepEqual(again.changes[KEY]?.v ?? [], []);

  const before = await timeseries.latest(client, KEY, 1, { asOf: watermark });
  assert.deepEqual(before.v, [values[N - 1]]);
  const old = await timeseries.range(client, KEY, { start: T0 + 9, asOf: watermark });
  assert.deepEqual(old.v, values.slice(900));
  assert.equal((await timeseries.range(client, KEY, { start: T0 + 9 })).count, 100 + 3);
});

test('bad requests: clear error types, the connection keeps working', async () => {
  await assert.rejects(timeseries.range(client, KEY, { start: 'yesterday' }), DataError);
  await assert.rejects(timeseries.range(client, KEY, { limit: 0 }), DataError);
  await assert.rejects(timeseries.range(client, KEY, { buckets: 10_001 }), DataError);
  await assert.rejects(timeseries.range(client, KEY, { start: T0 + 5, end: T0 }), DataError);
  await assert.rejects(timeseries.latest(client, KEY, 100_001), DataError);
  await assert.rejects(timeseries.info(client, 'plain-generic-key'), KeyMappingError);
  await assert.rejects(timeseries.info(client, 'meters/7'), KeyMappingError);
  await assert.rejects(timeseries.resume(client, [KEY], 12.5), TypeError);
  assert.equal((await timeseries.info(client, KEY)).count, N + 3);
});

test('rangeColumns gives typed arrays: exact nanosecond times and the codec\'s Float64Array', async () => {
  const all = await timeseries.rangeColumns(client, KEY, { end: T0 + 10 }); // not the resume test's records
  assert.equal(all.mode, 'columns');
  assert.equal(all.dtype, '<f8');
  assert.ok(all.t instanceof BigInt64Array && all.v instanceof Float64Array);
  assert.equal(all.t.length, N);
  assert.deepEqual(Array.from(all.v), values);
  // the same instants as the JSON answer, to the nanosecond
  const json = await timeseries.range(client, KEY, { end: T0 + 10, unit: 'unix_ns', limit: N });
  assert.ok(Array.from(all.t).every((t, i) => Math.abs(Number(t) - json.t[i]) < 1000));
  const secs = timeseries.secondsOf(all.t);
  assert.ok(secs instanceof Float64Array && secs.every((s, i) => close(s, times[i])));
  // pages: limit and next, as for the JSON answer
  const page = await timeseries.rangeColumns(client, KEY, { limit: 10, unit: 'tstorage_ns' });
  assert.ok(page.truncated && page.t.length === 10);
  const rest = await timeseries.rangeColumns(client, KEY, { start: page.next, limit: 5, unit: 'tstorage_ns' });
  assert.equal(rest.t[0], BigInt(page.next));
  assert.deepEqual(Array.from(rest.v), values.slice(10, 15));
  await assert.rejects(timeseries.rangeColumns(client, KEY, { unit: /** @type {any} */ ('unix_s') }), DataError);
});

test('downsampleColumns gives the JSON buckets as typed arrays', async () => {
  for (const align of [undefined, 'rows']) {
    const opts = { end: T0 + 10, align };
    const json = await timeseries.downsample(client, KEY, 7, { ...opts, unit: 'unix_ns' });
    const got = await timeseries.downsampleColumns(client, KEY, 7, opts);
    assert.equal(got.mode, 'buckets');
    assert.equal(got.count, json.count);
    assert.ok(got.t instanceof BigInt64Array && got.mean instanceof Float64Array && got.n instanceof Float64Array);
    assert.deepEqual(Array.from(got.n), json.n);
    for (const k of ['min', 'max', 'mean', 'last']) assert.deepEqual(Array.from(got[k]), json[k], k);
    const times = align ? ['t', 't_end', 't_first', 't_last'] : ['t'];
    for (const k of times) assert.ok(Array.from(got[k]).every((t, i) => Math.abs(Number(t) - json[k][i]) < 1000), k);
    if (align) assert.deepEqual(Array.from(got.first), json.first);
    else assert.equal(got.t_end, undefined);
  }
  await assert.rejects(timeseries.downsampleColumns(client, KEY, 4, { unit: /** @type {any} */ ('unix_ms') }), DataError);
});

test('typedColumn reads any byte order and alignment', () => {
  const le = new Uint8Array(new Float64Array([1.5, -2]).buffer);
  const shifted = new Uint8Array(17);
  shifted.set(le, 1);
  assert.deepEqual(Array.from(timeseries.typedColumn(shifted.subarray(1), '<f8')), [1.5, -2]);
  const be = le.slice();
  for (let i = 0; i < 16; i += 8) be.subarray(i, i + 8).reverse();
  assert.deepEqual(Array.from(timeseries.typedColumn(be.buffer, '>f8')), [1.5, -2]);
  assert.deepEqual(Array.from(timeseries.typedColumn(new Int32Array([7, -1]).buffer, '<i4')), [7, -1]);
  assert.throws(() => timeseries.typedColumn(new ArrayBuffer(3), '<f8'), TypeError);
  assert.throws(() => timeseries.typedColumn(new ArrayBuffer(8), '<c16'), TypeError);
});
