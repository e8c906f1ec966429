// The JavaScript block of js/README.md runs as written against a gateway (its address the
// only edit), as a user would paste it into a module next to src/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT, startGateway } from './helpers.js';

let gw;

before(async () => {
  gw = await startGateway();
});

after(async () => {
  await gw?.stop();
});

test('the README block runs as written', async () => {
  const text = readFileSync(path.join(ROOT, 'js', 'README.md'), 'utf8');
  const blocks = [...text.matchAll(/^```js\n([\s\S]*?)^```/gm)].map((m) => m[1]);
  assert.equal(blocks.length, 1);
  const code = blocks[0].replaceAll('http://127.0.0.1:5000', gw.url);
  const file = path.join(ROOT, 'js', `_readme_${process.pid}.mjs`);
  writeFileSync(file, code);
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [file], { timeout: 60000 });
    assert.match(stdout, /^1 \[ 230\.5 \]$/m); // length and the last values of meters/7/3
    assert.match(stdout, /'3': 230\.5/); // the Dict of meters/7
  } finally {
    rmSync(file, { force: true });
  }
});
