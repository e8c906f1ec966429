// List and Dict proxies against a real gateway: mapped series and generic keys, values
// stored byte-for-byte as the Python client stores them, refresh callbacks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, List, Dict, IndexError, ResponseError, DataError, dumps } from '../src/index.js';
import { startGateway, python } from './helpers.js';

let gw;
let client;

before(async () => {
  gw = await startGateway();
  client = await connect(gw.url);
});

after(async () => {
  client?.close();
  await gw?.stop();
});

test('dumps writes what Python json.dumps writes', async () => {
  const values = [{ a: 1, b: [1, 2.5, 'x'], c: null, d: true }, 'ü and 😀', [], {}, -0.125, 'tab\t"q"'];
  const py = await python('znsocket_ops.py', { url: gw.url, ops: values.map((value) => ({ op: 'dumps', value })) });
  assert.deepEqual(values.map(dumps), py);
  assert.equal(dumps(values[0]), '{"a": 1, "b": [1, 2.5, "x"], "c": null, "d": true}');
  assert.throws(() => dumps(NaN), DataError);
  assert.throws(() => dumps(undefined), DataError);
});

test('a generic List holds the same text whichever client appended', async () => {
  const js = new List(client, 'g/js');
  for (const v of [{ a: 1 }, 'ü', [1, 2], 3.5]) await js.push(v);
  await python('znsocket_ops.py', { url: gw.url, ops: [{ op: 'append', key: 'g/py', values: [{ a: 1 }, 'ü', [1, 2], 3.5] }] });
  const raw = await python('znsocket_ops.py', {
    url: gw.url,
    ops: [
      { op: 'cmd', name: 'lrange', args: ['znsocket.List:g/js', 0, -1] },
      { op: 'cmd', name: 'lrange', args: ['znsocket.List:g/py', 0, -1] },
      { op: 'list', key: 'g/js' },
    ],
  });
  assert.deepEqual(raw[0], raw[1]);
  assert.deepEqual(raw[2], [{ a: 1 }, 'ü', [1, 2], 3.5]);
  assert.deepEqual(await new List(client, 'g/py').toArray(), [{ a: 1 }, 'ü', [1, 2], 3.5]);
  assert.equal(await js.length(), 4);
  assert.deepEqual(await js.get(-1), 3.5);
  assert.deepEqual(await js.slice(1, 3), ['ü', [1, 2]]);
  await assert.rejects(js.get(10), IndexError);
  await js.set(0, 'first');
  assert.equal(await js.get(0), 'first');
});

test('a mapped series: JS appends, Python reads the same values, and back', async () => {
  const lst = new List(client, 'meters/7/3');
  assert.equal(await lst.push(230.5), 1);
  assert.equal(await lst.extend([231, 229.75]), 3);
  const py = await python('znsocket_ops.py', {
    url: gw.url,
    ops: [{ op: 'list', key: 'meters/7/3' }, { op: 'append', key: 'meters/7/3', values: [228.0] }, { op: 'dict', key: 'meters/7' }],
  });
  assert.deepEqual(py[0], [230.5, 231, 229.75]);
  assert.equal(py[1], 4);
  assert.deepEqual(py[2], { 3: 228 });
  assert.deepEqual(await lst.toArray(), [230.5, 231, 229.75, 228]);
  const meter = new Dict(client, 'meters/7');
  assert.deepEqual(await meter.toObject(), { 3: 228 });
  assert.deepEqual(await meter.keys(), ['3']);
  assert.equal(await meter.has('3'), true);
  assert.equal(await meter.get('4'), undefined);
  // A value the series codec (struct:<d) cannot hold is refused and nothing is stored.
  await assert.rejects(lst.push('not a number'), DataError);
  // A time series cannot be rewritten in the middle: refused, not silently ignored.
  await assert.rejects(client.call('lrem', [lst.key, 0, '230.5']), ResponseError);
  assert.equal(await lst.length(), 4);
});

test('a generic Dict matches the Python view; nested references become proxies', async () => {
  const d = new Dict(client, 'g/dict');
  await d.set('b', 25);
  await d.update({ a: { x: 1 }, c: 'three' });
  const inner = new List(client, 'g/inner');
  await inner.push(1);
  await d.set('ref', inner);
  const py = await python('znsocket_ops.py', {
    url: gw.url,
    ops: [{ op: 'cmd', name: 'hgetall', args: ['znsocket.Dict:g/dict'] }],
  });
  assert.deepEqual(py[0], {
    b: '25',
    a: '{"x": 1}',
    c: '"three"',
    ref: '"znsocket.List:g/inner"',
  });
  const ref = await d.get('ref');
  assert.ok(ref instanceof List);
  assert.deepEqual(await ref.toArray(), [1]);
  assert.deepEqual(await d.keys(), ['b', 'a', 'c', 'ref']);
  assert.equal(await d.delete('c'), true);
  assert.equal(await d.delete('c'), false);
  assert.equal(await d.length(), 3);
});

test('onRefresh sees other clients\' changes (JS and Python), never its own', async () => {
  const other = await connect(gw.url);
  try {
    const seen = [];
    const own = [];
    const off = new List(other, 'meters/8/1').onRefresh((data) => seen.push(data));
    new List(client, 'meters/8/1').onRefresh((data) => own.push(data));
    await new List(client, 'meters/8/1').push(1.5);
    await python('znsocket_ops.py', { url: gw.url, ops: [{ op: 'append', key: 'meters/8/1', values: [2.5] }] });
    const deadline = Date.now() + 3000;
    while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    // The Python append comes with {indices: [1]}; the server may add its own notice.
    assert.deepEqual(seen[0], { indices: [0] });
    assert.ok(seen.some((d) => JSON.stringify(d) === JSON.stringify({ indices: [1] })), JSON.stringify(seen));
    assert.ok(!own.some((d) => JSON.stringify(d) === JSON.stringify({ indices: [0] })));
    off();
  } finally {
    other.close();
  }
});
