// The client against a real gateway process: commands, pipelines, error mapping, bad input,
// and the same calls made with the Python client giving the same results.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  connect, ArgumentTypeError, CallTimeoutError, ConnectionError, KeyMappingError, MessageTooLargeError,
  ResponseError, UnknownEventError, DataError, ZnSocketError,
} from '../src/index.js';
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

test('string, list, hash and set commands answer like the Python client', async () => {
  assert.equal(await client.set('c:name', 'Alice'), true);
  assert.equal(await client.get('c:name'), 'Alice');
  assert.equal(await client.rpush('c:list', 'a'), 1);
  assert.equal(await client.rpush('c:list', 'b'), 2);
  assert.deepEqual(await client.lrange('c:list', 0, -1), ['a', 'b']);
  assert.equal(await client.hset('c:hash', 'f', 'v'), 1);
  await client.call('hset', [], { name: 'c:hash', mapping: { g: 'w' } });
  assert.deepEqual(await client.hgetall('c:hash'), { f: 'v', g: 'w' });
  await client.sadd('c:set', 'm1');
  const members = await client.smembers('c:set');
  assert.ok(members instanceof Set);
  assert.deepEqual([...members], ['m1']);
  assert.equal(await client.lindex('c:list', 5), null);

  const py = await python('znsocket_ops.py', {
    url: gw.url,
    ops: [
      { op: 'cmd', name: 'get', args: ['c:name'] },
      { op: 'cmd', name: 'lrange', args: ['c:list', 0, -1] },
      { op: 'cmd', name: 'hgetall', args: ['c:hash'] },
      { op: 'cmd', name: 'smembers', args: ['c:set'] },
      { op: 'cmd', name: 'lindex', args: ['c:list', 5] },
    ],
  });
  assert.deepEqual(py, ['Alice', ['a', 'b'], { f: 'v', g: 'w' }, ['m1'], null]);
});

test('a pipeline returns one value per command and stops at the first error', async () => {
  const results = await client.pipeline().add('set', ['p:1', 'x']).add('get', ['p:1']).add('exists', ['p:1']).execute();
  assert.deepEqual(results, [true, 'x', 1]);
  await assert.rejects(
    client.pipeline().add('set', ['p:2', 'y']).add('lset', ['p:none', 0, 'z']).add('set', ['p:3', 'w']).execute(),
    ResponseError,
  );
  assert.equal(await client.get('p:2'), 'y');
  assert.equal(await client.get('p:3'), null);
});

test('error envelopes become the classes the Python client raises', async () => {
  const cases = [
    ['lset', ['e:none', 0, 'x'], ResponseError, 'ResponseError'],
    ['nosuchcmd', [], UnknownEventError, 'UnknownEventError'],
    ['get', ['a', 'b', 'c'], ArgumentTypeError, 'TypeError'],
    ['set', ['e:key', null], DataError, 'DataError'],
    ['rpush', ['znsocket.List:meters/abc/3', '1'], KeyMappingError, 'KeyMappingError'],
  ];
  const py = await python('znsocket_ops.py', {
    url: gw.url,
    ops: cases.filter(([name]) => name !== 'nosuchcmd').map(([name, args]) => ({ op: 'error', name, args })),
  });
  let j = 0;
  for (const [name, args, Cls, type] of cases) {
    const err = await client.call(name, args).then(() => null, (e) => e);
    assert.ok(err instanceof Cls, `${name}: ${err}`);
    assert.ok(err instanceof ZnSocketError);
    assert.equal(err.type, type);
    if (name !== 'nosuchcmd') {
      // Same message as the Python client's exception.
      assert.equal(err.message, py[j].msg, `${name} message`);
      j += 1;
    }
  }
});

test('an oversized request is refused locally and the connection stays usable', async () => {
  const big = 'x'.repeat(client.maxMessageSize + 10);
  await assert.rejects(client.set('big', big), MessageTooLargeError);
  assert.equal(client.connected, true);
  assert.equal(await client.set('after-big', 'ok'), true);
});

test('malformed payloads get an error envelope and the server stays up', async () => {
  // Not [args, kwargs]: the raw acknowledgement is an error envelope, not silence.
  const ack = await client.emit('get', 'not a list');
  assert.ok(ack && ack.error, JSON.stringify(ack));
  const ack2 = await client.emit('pipeline', [[], { message: 'nope' }]);
  assert.ok(ack2 && ack2.error, JSON.stringify(ack2));
  assert.equal(await client.get('c:name'), 'Alice');
});

test('calls on a closed client fail with ConnectionError; a dead address fails to connect', async () => {
  const other = await connect(gw.url);
  other.close();
  await assert.rejects(other.get('c:name'), ConnectionError);
  await assert.rejects(connect('http://127.0.0.1:9', { timeout: 1500, reconnection: false }), ConnectionError);
});

test('znsocket:// URLs are accepted', async () => {
  const c = await connect(gw.url.replace('http://', 'znsocket://'));
  assert.equal(await c.get('c:name'), 'Alice');
  c.close();
});

test('a call that gets no answer in time rejects with CallTimeoutError', async () => {
  const c = await connect(gw.url, { timeout: 300 });
  // adapter:get to an owner that never answers: the server holds the ack beyond our timeout.
  assert.equal(await c.emit('register_adapter', [[], { key: 'znsocket.List:silent' }]), true);
  const d = await connect(gw.url, { timeout: 300 });
  c.socket.on('adapter:get', () => {}); // owner never acknowledges
  await assert.rejects(d.emit('adapter:get', [[], { key: 'znsocket.List:silent', method: '__len__' }]), CallTimeoutError);
  c.close();
  d.close();
});
