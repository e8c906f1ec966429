// Headless Chromium for the dashboard tests and benchmarks: Debian's /usr/bin/chromium
// driven by playwright-core, a fresh profile per launch, no network beyond 127.0.0.1.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/**
 * Launch Chromium with a fresh profile and open one page.
 * @param {{width?: number, height?: number}} [viewport]
 * @returns {Promise<{page: import('playwright-core').Page, close: () => Promise<void>, errors: string[]}>}
 */
export async function openBrowser(viewport = { width: 1280, height: 760 }) {
  const profile = mkdtempSync(path.join(tmpdir(), 'chromium-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  /** @type {string[]} */
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // The page must never reach beyond the gateway that served it.
  await context.route(/^(?!https?:\/\/127\.0\.0\.1[:/]|wss?:\/\/127\.0\.0\.1[:/])/, (route) => {
    errors.push(`request outside 127.0.0.1: ${route.request().url()}`);
    return route.abort();
  });
  return {
    page,
    errors,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Poll `fn` in the page until it returns a truthy value.
 * @template T
 * @param {import('playwright-core').Page} page
 * @param {(arg: any) => T} fn Runs in the page.
 * @param {number} timeout Milliseconds.
 * @param {string} what Said in the error on timeout.
 * @param {unknown} [arg] Passed to `fn` (serialised into the page).
 * @returns {Promise<T>}
 */
export async function waitInPage(page, fn, timeout, what, arg) {
  const handle = await page.waitForFunction(fn, arg, { timeout, polling: 20 }).catch(() => null);
  if (handle === null) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
  return /** @type {T} */ (await handle.jsonValue());
}
