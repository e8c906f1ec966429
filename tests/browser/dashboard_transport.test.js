// How the dashboard reaches the gateway, in a real browser: by a WebSocket opened at once
// (no long-polling request at all), and by long-polling where no WebSocket can be opened
// (a page whose WebSockets always fail, as behind a proxy that does not pass them).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, startTStorage, startWriter } from '../../js/test/helpers.js';
import { openBrowser, waitInPage } from './browser.js';

let ts;
let gw;
let writer;

before(async () => {
  ts = await startTStorage();
  gw = await startGateway({ tstorage: { port: ts.port } });
  writer = startWriter(ts.port);
  const t = Date.now() / 1000;
  const points = Array.from({ length: 50 }, (_, i) => [t - 50 + i, i % 7]);
  assert.equal((await writer.write({ cid: 1, mid: 61, moid: 1, points })).ok, true);
});

after(async () => {
  writer?.close();
  await gw?.stop();
  await ts?.stop();
});

// Runs in the page before its scripts: every WebSocket fails to open.
function noWebSockets() {
  window.WebSocket = class extends EventTarget {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    constructor() {
      super();
      this.readyState = 0;
      setTimeout(() => {
        this.readyState = 3;
        this.onerror?.(new Event('error'));
        this.onclose?.({ code: 1006, reason: '', wasClean: false });
      }, 10);
    }
    send() {}
    close() {}
  };
}

/**
 * The page's first chart of meters/61/1 and the socket.io requests it made over HTTP.
 * @param {(() => void) | null} init
 */
async function firstChart(init) {
  const browser = await openBrowser();
  try {
    if (init) await browser.page.addInitScript(init);
    await browser.page.goto(`${gw.url}/#series=meters/61/1&range=all`);
    await waitInPage(browser.page, () => window.dashboard.state.firstDrawMs !== null && window.dashboard.state.window !== null, 20000, 'the first chart');
    const shown = await browser.page.evaluate(() => window.dashboard.state.window.in_window);
    const polls = await browser.page.evaluate(() => performance.getEntriesByType('resource').filter((e) => e.name.includes('transport=polling')).length);
    return { shown, polls, errors: browser.errors };
  } finally {
    await browser.close();
  }
}

test('the page reads over a WebSocket opened at once: no long-polling request', async () => {
  const got = await firstChart(null);
  assert.equal(got.shown, 50);
  assert.equal(got.polls, 0);
  assert.deepEqual(got.errors, []);
});

test('where no WebSocket opens, the page reads over long-polling', async () => {
  const got = await firstChart(noWebSockets);
  assert.equal(got.shown, 50);
  assert.ok(got.polls > 0, 'polling requests');
  assert.deepEqual(got.errors, []);
});
