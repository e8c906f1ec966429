// Tokens: the JS client connects with socket.io `auth: {token}`; the gateway refuses wrong
// tokens, read-only tokens cannot write, the series listing shows only permitted keys and
// the ts:* reads refuse the others.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, AuthenticationError, PermissionDeniedError, List, dashboard, timeseries } from '../src/index.js';
import { startGateway } from './helpers.js';

const AUTH = `
[auth]
enabled = true

[[auth.tokens]]
name = "writer"
env = "GW_TEST_WRITER"
access = "read-write"

[[auth.tokens]]
name = "viewer"
env = "GW_TEST_VIEWER"
access = "read"
keys = ["meters/1/*"]
`;

let gw;

before(async () => {
  gw = await startGateway({ extra: AUTH, env: { GW_TEST_WRITER: 'w-secret', GW_TEST_VIEWER: 'v-secret' } });
});

after(async () => {
  await gw?.stop();
});

test('a wrong or missing token is refused at connect', async () => {
  await assert.rejects(connect(gw.url, { token: 'nope', timeout: 3000 }), AuthenticationError);
  await assert.rejects(connect(gw.url, { timeout: 3000 }), AuthenticationError);
});

test('a read token reads only its keys, lists only its series and cannot write', async () => {
  const writer = await connect(gw.url, { token: 'w-secret' });
  const viewer = await connect(gw.url, { token: 'v-secret' });
  try {
    await new List(writer, 'meters/1/1').push(1.25);
    await new List(writer, 'meters/2/1').push(2.5);
    assert.deepEqual(await new List(viewer, 'meters/1/1').toArray(), [1.25]);
    await assert.rejects(new List(viewer, 'meters/1/1').push(3), PermissionDeniedError);
    await assert.rejects(new List(viewer, 'meters/2/1').toArray(), PermissionDeniedError);

    const seenByWriter = (await dashboard.listSeries(writer)).map((s) => s.key).sort();
    const seenByViewer = (await dashboard.listSeries(viewer)).map((s) => s.key);
    assert.deepEqual(seenByWriter, ['meters/1/1', 'meters/2/1']);
    assert.deepEqual(seenByViewer, ['meters/1/1']);
    assert.deepEqual((await timeseries.latest(viewer, 'meters/1/1', 1)).v, [1.25]);
    await assert.rejects(timeseries.latest(viewer, 'meters/2/1', 1), PermissionDeniedError);
  } finally {
    writer.close();
    viewer.close();
  }
});
