// Starts a real `dothi demo` (the binary in $DOTHI_BIN) on a fresh temporary store and
// an unused port, and headless Chromium from /usr/bin/chromium, for the browser tests.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SCREENSHOTS = path.resolve(here, '../../target/web-screenshots');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * A running `dothi demo`: { base, loginLink, key, printed, api(), stop() }. `dothi demo`
 * prints the public page's address, a one-time login link to the operations centre
 * and an admin API key; the tests read all three.
 */
export async function startDemo() {
  const bin = process.env.DOTHI_BIN;
  if (!bin) throw new Error('DOTHI_BIN must name the dothi binary (scripts/test.sh builds it)');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dothi-web-'));
  const port = await freePort();
  const child = spawn(
    bin,
    [
      'demo',
      '--no-history',
      '--no-new-reports',
      '--listen',
      `127.0.0.1:${port}`,
      '--store',
      `sqlite://${dir}/dothi.db`,
      '--mqtt-client-id',
      `dothi-web-test-${process.pid}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DOTHI_LOG: 'warn' } },
  );
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => {
    err += d;
  });
  const found = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dothi demo did not start in 180 s:\n${out}\n${err}`)), 180_000);
    child.stdout.on('data', (d) => {
      out += d;
      const base = out.match(/public page:\s+(http:\/\/\S+?)\/?\s/);
      const link = out.match(/(http:\/\/\S+\/auth\/v1\/login-link\?token=\S+)/);
      const key = out.match(/export KEY=(\S+)/);
      if (base && link && key) {
        clearTimeout(timer);
        resolve({ base: base[1], loginLink: link[1], key: key[1] });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`dothi demo exited (${code}):\n${out}\n${err}`));
    });
  });
  return {
    ...found,
    printed: out,
    /** JSON over the hub's API with the admin key. */
    api: (method, pathname, body, headers = {}) => api(found.base, method, pathname, body, { Authorization: `Bearer ${found.key}`, ...headers }),
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  await mkdir(SCREENSHOTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
}

/**
 * A running `dothi demo` and Chromium for the test file's tests: both start before the
 * first test, and `started({ demo, browser })` runs once they are up (it keeps them and
 * prepares what the tests share); after the last test the browser closes and the demo
 * stops.
 */
export function withDemoAndBrowser(started) {
  let demo;
  let browser;
  before(async () => {
    demo = await startDemo();
    browser = await launchBrowser();
    await started({ demo, browser });
  });
  after(async () => {
    await browser?.close();
    await demo?.stop();
  });
}

/**
 * A page in a new browser context (`options` as `browser.newContext` takes them) that
 * prints the page's uncaught errors and records what its Content-Security-Policy refused
 * (see `watchCsp`). The context is `page.context()`.
 */
export async function openPage(browser, options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await watchCsp(page);
  return page;
}

/** `openPage`, signed in to the operations centre with the demo's login link. */
export async function signedInPage(browser, demo, options) {
  const page = await openPage(browser, options);
  await loginWithLink(page, demo);
  return page;
}

/** A 320×240 JPEG drawn by the browser (a field of `colour`, an optional dark band), as
 * Playwright's file input takes it: { name, mimeType, buffer }. */
export async function drawJpeg(browser, name, colour, band = false) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const dataUrl = await page.evaluate(
    ([fill, withBand]) => {
      const c = document.createElement('canvas');
      c.width = 320;
      c.height = 240;
      const g = c.getContext('2d');
      g.fillStyle = fill;
      g.fillRect(0, 0, 320, 240);
      if (withBand) {
        g.fillStyle = '#333';
        g.fillRect(60, 80, 200, 60);
      }
      return c.toDataURL('image/jpeg', 0.9);
    },
    [colour, band],
  );
  await context.close();
  return { name, mimeType: 'image/jpeg', buffer: Buffer.from(dataUrl.split(',')[1], 'base64') };
}

/** JSON over the running hub's API (no credentials unless `headers` has them). */
export async function api(base, method, pathname, body, headers = {}) {
  const r = await fetch(base + pathname, {
    method,
    headers: { 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${pathname}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/**
 * Records what the page's Content-Security-Policy refused (none is expected): call
 * before the page loads, read `page.cspViolations` after.
 */
export async function watchCsp(page) {
  page.cspViolations = [];
  await page.exposeFunction('reportCspViolation', (v) => page.cspViolations.push(v));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.reportCspViolation(`${e.violatedDirective}: ${e.blockedURI || 'inline'} (${e.sourceFile || ''}:${e.lineNumber || ''})`);
    });
  });
}

/** Opens the one-time login link in the page: the session cookie is set and the page
 * lands on the operations centre, ready. */
export async function loginWithLink(page, demo) {
  await page.goto(demo.loginLink);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
}
