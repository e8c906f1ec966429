// Real processes for the tests: a gateway (on its embedded TStorage or on a separate
// tstorage-server), and small Python scripts whose results the JS results are compared with.
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const VENV_BIN = process.env.PROJECT_VENV_BIN ?? path.join(ROOT, '.venv', 'bin');
const LISTENING = /listening on (\S+?):(\d+)/;

/**
 * Start a process that prints `listening on HOST:PORT`; resolves once it did.
 * @param {string} cmd
 * @param {string[]} args
 * @param {Record<string, string>} [env]
 * @returns {Promise<{proc: import('node:child_process').ChildProcess, port: number, output: () => string, stop: () => Promise<void>, kill: () => Promise<void>}>}
 */
export function spawnServer(cmd, args, env = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let done = false;
    const exited = new Promise((r) => proc.once('exit', r));
    const stopWith = (signal) => async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill(signal);
        const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
        await exited;
        clearTimeout(timer);
      }
    };
    const onData = (chunk) => {
      out += chunk.toString();
      if (out.length > 200000) out = out.slice(-100000);
      const m = !done && LISTENING.exec(out);
      if (m) {
        done = true;
        resolve({ proc, port: Number(m[2]), output: () => out, stop: stopWith('SIGTERM'), kill: stopWith('SIGKILL') });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => {
      if (!done) reject(new Error(`${cmd} exited with ${code} before listening:\n${out}`));
    });
    setTimeout(() => {
      if (!done) {
        proc.kill('SIGKILL');
        reject(new Error(`${cmd} did not listen within 30 s:\n${out}`));
      }
    }, 30000).unref();
  });
}

/** The map rules of the tests: meters as Lists (struct:<d) and Dicts, power series with a unit and a label, plus timestamped JSON series. */
export const MAP_RULES = `
[[map]]
pattern = "meters/{mid:int}/{moid:int}"
cid = 1
mid = "{mid}"
moid = "{moid}"
codec = "struct:<d"

[[map]]
kind = "dict"
pattern = "meters/{mid:int}"
cid = 1
mid = "{mid}"
codec = "struct:<d"

[[map]]
pattern = "power/{mid:int}"
cid = 3
mid = "{mid}"
moid = 1
codec = "struct:<d"
unit = "kW"
label = "active power"

[[map]]
pattern = "events/{mid:int}"
cid = 2
mid = "{mid}"
moid = 0
codec = "json"
element = "timestamped"
allow_corrections = true
`;

/**
 * Start a gateway on a temporary embedded TStorage (or on `tstorage` when given).
 * @param {{tstorage?: {port: number, settings?: string}, extra?: string, env?: Record<string, string>, port?: number, dir?: string}} [options]
 *   `port`/`dir`: restart a stopped gateway on the same port with the same files;
 *   `tstorage.settings`: more lines of its `[tstorage]` table (e.g. `index_cid = 7`).
 * @returns {Promise<{url: string, port: number, dir: string, config: string, tstoragePort: number|null, output: () => string, stop: () => Promise<void>}>}
 */
export async function startGateway(options = {}) {
  const dir = options.dir ?? mkdtempSync(path.join(tmpdir(), 'gw-js-'));
  const storage = options.tstorage
    ? `[tstorage]\nhost = "127.0.0.1"\nport = ${options.tstorage.port}\nreconnect_max_delay = 0.5\n${options.tstorage.settings ?? ''}\n`
    : `[tstorage.embedded]\ndata_dir = "${path.join(dir, 'data')}"\n`;
  const config = path.join(dir, 'gateway.toml');
  writeFileSync(config, `[server]\nhost = "127.0.0.1"\nport = 0\n${options.extra ?? ''}\n${storage}\n${MAP_RULES}`);
  const server = await spawnServer(path.join(VENV_BIN, 'gateway'), ['run', '--config', config, '--port', String(options.port ?? 0)], options.env);
  const m = /TStorage: embedded \([^)]*\) at [\d.]+:(\d+)/.exec(server.output());
  return {
    url: `http://127.0.0.1:${server.port}`,
    port: server.port,
    dir,
    config,
    tstoragePort: options.tstorage ? options.tstorage.port : m ? Number(m[1]) : null,
    output: server.output,
    /** Stop the gateway, keeping its files (for a restart). */
    kill: server.kill,
    stop: async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A long-running Python writer that PUTs records into TStorage with tstorage_client.
 * @param {number} port TStorage port.
 * @returns {{write: (spec: {cid: number, mid: number, moid: number, points: [number, number][]}) => Promise<{ok: boolean, error: string|null}>, close: () => void}}
 */
export function startWriter(port) {
  const proc = spawn(path.join(VENV_BIN, 'python'), [path.join(ROOT, 'js', 'test', 'py', 'tstorage_writer.py'), JSON.stringify({ port })], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  /** @type {((answer: any) => void)[]} */
  const waiting = [];
  let buf = '';
  proc.stdout.on('data', (chunk) => {
    buf += chunk.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      waiting.shift()?.(JSON.parse(line));
    }
  });
  return {
    write: (spec) =>
      new Promise((resolve) => {
        waiting.push(resolve);
        proc.stdin.write(JSON.stringify(spec) + '\n');
      }),
    close: () => {
      proc.stdin.end();
    },
  };
}

/**
 * Start a separate TStorage server on a temporary data dir.
 * @param {string} [dataDir] Reuse this data dir (restart after a stop).
 * @param {number} [port] Listen on this port (restart on the same address); default any.
 */
export async function startTStorage(dataDir, port = 0) {
  const dir = dataDir ?? mkdtempSync(path.join(tmpdir(), 'ts-js-'));
  const server = await spawnServer(path.join(VENV_BIN, 'tstorage-server'), ['--data-dir', dir, '--port', String(port)]);
  return { ...server, dir };
}

/**
 * Run a Python script (a file under test/py/) with JSON arguments; resolves to the JSON it prints.
 * @param {string} script File name under js/test/py/.
 * @param {unknown} args Passed as one JSON command-line argument.
 * @returns {Promise<any>}
 */
export function python(script, args) {
  return new Promise((resolve, reject) => {
    execFile(
      path.join(VENV_BIN, 'python'),
      [path.join(ROOT, 'js', 'test', 'py', script), JSON.stringify(args)],
      { cwd: ROOT, maxBuffer: 256 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${script} failed: ${err.message}\n${stderr}`));
        else resolve(JSON.parse(stdout));
      },
    );
  });
}
