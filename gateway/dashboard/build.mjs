// Builds the dashboard into dist/: index.html and assets/dashboard.{js,css} (uPlot and the
// znsocket client from ../../js bundled in; nothing is loaded from elsewhere at run time).
// Run by scripts/bootstrap-js.sh; `node build.mjs` by hand.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, 'dist');
rmSync(dist, { recursive: true, force: true });
mkdirSync(path.join(dist, 'assets'), { recursive: true });

await build({
  entryPoints: { dashboard: path.join(here, 'src', 'main.js') },
  outdir: path.join(dist, 'assets'),
  bundle: true,
  format: 'esm',
  target: ['chrome110', 'firefox110', 'safari16'],
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  // The client lives in ../../js; its socket.io-client comes from its own node_modules.
  nodePaths: [path.join(here, '..', '..', 'js', 'node_modules')],
  logLevel: 'warning',
});
copyFileSync(path.join(here, 'src', 'index.html'), path.join(dist, 'index.html'));
console.log(`dashboard built into ${path.relative(process.cwd(), dist) || dist}`);
