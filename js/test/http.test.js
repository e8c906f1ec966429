// The gateway's HTTP side for browsers: the dashboard page and its bundle on the gateway's
// own port, nothing else served, socket.io unaffected.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '../src/index.js';
import { startGateway } from './helpers.js';

let gw;

before(async () => {
  gw = await startGateway();
});

after(async () => {
  await gw?.stop();
});

test('the page and its bundle are served with a same-origin content policy', async () => {
  const page = await fetch(`${gw.url}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  assert.match(page.headers.get('content-security-policy'), /default-src 'self'/);
  const html = await page.text();
  assert.match(html, /<script type="module" src="\/assets\/dashboard.js">/);
  assert.doesNotMatch(html, /https?:\/\//, 'the page names no other origin');
  const js = await fetch(`${gw.url}/assets/dashboard.js`);
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type'), /javascript/);
  const css = await fetch(`${gw.url}/assets/dashboard.css`);
  assert.equal(css.status, 200);
  assert.match(css.headers.get('content-type'), /^text\/css/);
});

test('paths outside the bundle are refused, methods other than GET too', async () => {
  for (const p of ['/assets/..%2f..%2fdashboard.py', '/assets/..%5cdashboard.py', '/assets/', '/assets/.hidden', '/assets/nope.js']) {
    const r = await fetch(gw.url + p);
    assert.equal(r.status, 404, p);
    await r.arrayBuffer();
  }
  const post = await fetch(`${gw.url}/`, { method: 'POST', body: 'x' });
  assert.equal(post.status, 405);
  await post.arrayBuffer();
  const c = await connect(gw.url);
  assert.equal(await c.set('still', 'up'), true);
  c.close();
});
