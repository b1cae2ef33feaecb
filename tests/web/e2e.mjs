// End to end: the real stackunderflow-live daemon, a real SQLite store, the Live page in headless
// Chromium.
//
//   SUL_BIN=target/debug/stackunderflow-live node --test tests/web/e2e.mjs
//
// Skips (with the reason) when SUL_BIN is unset or missing, or when Chromium / playwright-core
// is not available. Every daemon started here gets SIGTERM at the end, pass or fail, and every
// wait has a timeout. On success it saves a screenshot (see SCREENSHOT below).
//
// Interface used (the daemon's, not ours):
//   $SUL_BIN dev-store <db>                                    create an empty store, exit 0
//   $SUL_BIN dev-insert <db> --events N --tools M --cost-usd X  append rows with ts = now, exit 0
//   $SUL_BIN --follow <db> --listen 127.0.0.1:0 --print-addr    first stdout line: http://127.0.0.1:PORT

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { launch, loadBrowser } from './browser.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
// Where the screenshot goes: target/ by default, so a test run leaves the work tree clean;
// SUL_SCREENSHOT=docs/live-page.png refreshes the one the README shows.
const SCREENSHOT = resolve(ROOT, process.env.SUL_SCREENSHOT || join('target', 'live-page.png'));
const STARTUP_MS = 15000; // daemon printing its address
const COMMAND_MS = 30000; // one dev-store / dev-insert run
const STOP_MS = 5000; // SIGTERM to exit, before SIGKILL
const PAGE_WAIT = { timeout: 15000 };

const SUL_BIN = process.env.SUL_BIN ? resolve(process.env.SUL_BIN) : '';

async function whySkip() {
  if (!SUL_BIN) return 'SUL_BIN is not set (path to a built stackunderflow-live binary)';
  if (!existsSync(SUL_BIN)) return `SUL_BIN=${SUL_BIN} does not exist`;
  const { skip } = await loadBrowser();
  return skip ?? false;
}

const skip = await whySkip();
const { chromium } = skip ? {} : await loadBrowser();

/** Run `$SUL_BIN ...args` to completion; rejects on a non-zero exit or after `timeoutMs`. */
function run(args, { timeoutMs = COMMAND_MS, env = {} } = {}) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(SUL_BIN, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args[0]} did not finish within ${timeoutMs} ms\n${err}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolvePromise(out);
      else reject(new Error(`stackunderflow-live ${args.join(' ')} exited with ${code ?? signal}\n${err}`));
    });
  });
}

const daemons = new Set();

/**
 * Start the daemon on a free port. Resolves, once it printed its address, to the daemon record:
 * {url, stop(), stderr (last 8 kB, kept up to date), child, exited}.
 */
function startDaemon(dbPath, env = {}) {
  // Own process group, so that stopping it also reaches anything it started.
  const child = spawn(SUL_BIN, ['--follow', dbPath, '--listen', '127.0.0.1:0', '--print-addr'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const daemon = { child, stderr: '', exited: null };
  daemons.add(daemon);
  child.stderr.on('data', (d) => {
    daemon.stderr = (daemon.stderr + d).slice(-8000);
  });
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  exited.then((status) => {
    daemon.exited = status;
  });

  const signalGroup = (signal) => {
    try {
      process.kill(-child.pid, signal);
    } catch {
      // the group is already gone
    }
  };
  daemon.signalGroup = signalGroup;

  daemon.stop = async () => {
    let status = daemon.exited;
    if (!status) {
      signalGroup('SIGTERM');
      status = await Promise.race([exited, new Promise((r) => setTimeout(() => r(null), STOP_MS))]);
      if (!status) {
        signalGroup('SIGKILL');
        await exited;
        status = { code: null, signal: 'SIGKILL', forced: true };
      }
    }
    signalGroup('SIGKILL'); // leftovers of the daemon's group, if any
    child.stdout.destroy();
    child.stderr.destroy();
    return status;
  };

  return new Promise((resolvePromise, reject) => {
    const lines = createInterface({ input: child.stdout });
    let first = true;
    const timer = setTimeout(() => {
      reject(new Error(`the daemon printed no address within ${STARTUP_MS} ms\n${daemon.stderr}`));
    }, STARTUP_MS);
    lines.on('line', (line) => {
      if (!first) return; // keep draining stdout so the daemon never blocks on it
      first = false;
      clearTimeout(timer);
      const m = /^(http:\/\/127\.0\.0\.1:\d+)\/?$/.exec(line.trim());
      if (m) {
        daemon.url = m[1];
        resolvePromise(daemon);
      }
      else reject(new Error(`unexpected first stdout line: ${JSON.stringify(line)}`));
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      if (first) reject(new Error(`the daemon exited (${code ?? signal}) before printing its address\n${daemon.stderr}`));
    });
  });
}

async function stopAll() {
  await Promise.all([...daemons].map((d) => d.stop()));
}

// Last resort if the runner itself is torn down mid-test.
process.on('exit', () => {
  for (const d of daemons) d.signalGroup('SIGKILL');
});

describe('Live page against the real daemon', { skip }, () => {
  let browser;
  let dir;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sul-e2e-'));
    browser = await launch(chromium);
  });

  after(async () => {
    await stopAll();
    await browser?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('inserted rows stream into the page and move the burn ticker', async () => {
    const db = join(dir, 'store.db');
    await run(['dev-store', db]);
    const daemon = await startDaemon(db);
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      const page = await context.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${daemon.url}/`, PAGE_WAIT);
      await page.locator('#conn[data-state="live"]').waitFor(PAGE_WAIT);
      await page.waitForFunction(() => document.querySelector('#burn-5m').textContent.trim() !== '\u2014', null, PAGE_WAIT);
      const initial = (await page.textContent('#burn-5m')).trim();

      await run(['dev-insert', db, '--events', '5', '--tools', '3', '--cost-usd', '1.25']);

      await page.waitForFunction(
        () =>
          document.querySelectorAll('#stream > li[data-kind="event"]').length >= 5 &&
          document.querySelectorAll('#stream > li[data-kind="tool_call"]').length >= 3,
        null,
        PAGE_WAIT,
      );
      for (const li of await page.$$('#stream > li')) {
        assert.match((await li.getAttribute('data-id')) ?? '', /^\d+$/);
      }
      await page.waitForFunction(
        (before) => document.querySelector('#burn-5m').textContent.trim() !== before,
        initial,
        PAGE_WAIT,
      );
      assert.notEqual((await page.textContent('#burn-5m')).trim(), initial);
      assert.deepEqual(errors, []);

      mkdirSync(dirname(SCREENSHOT), { recursive: true });
      await page.waitForTimeout(500); // let the row highlight fade a little
      await page.screenshot({ path: SCREENSHOT });
    } catch (err) {
      err.message += `\n--- daemon stderr ---\n${daemon.stderr}`;
      throw err;
    } finally {
      await context.close();
      const status = await daemon.stop();
      assert.ok(!status.forced, `the daemon ignored SIGTERM for ${STOP_MS} ms`);
    }
  });

  test('a stopped writer shows the "watcher not running" banner', async () => {
    // The writer is upstream's server, which holds an exclusive flock on server.lock beside its
    // store while it runs. `flock(1)` plays that part; killing it is the writer stopping.
    const wdir = join(dir, 'writer');
    mkdirSync(wdir, { recursive: true });
    const db = join(wdir, 'store.db');
    await run(['dev-store', db]);
    const lockFile = join(wdir, 'server.lock');
    writeFileSync(lockFile, `${process.pid}\n0\n`);
    // Its own process group: flock forks `sleep`, which inherits the locked descriptor, so the
    // whole group must go for the lock to be released.
    const holder = spawn('flock', ['--exclusive', lockFile, 'sleep', '600'], { stdio: 'ignore', detached: true });
    const stopWriter = () => {
      try {
        process.kill(-holder.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const daemon = await startDaemon(db);
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${daemon.url}/`, PAGE_WAIT);
      await page.locator('#conn[data-state="live"]').waitFor(PAGE_WAIT);
      const banner = page.locator('#watcher-banner');
      await page.waitForFunction(
        () => document.querySelector('#watcher-banner').dataset.state === 'running',
        null,
        PAGE_WAIT,
      );
      assert.equal(await banner.isVisible(), false, 'no banner while the writer runs');

      stopWriter();
      const stopped = page.locator('#watcher-banner[data-state="stopped"]');
      await stopped.waitFor({ ...PAGE_WAIT, state: 'visible' });
      assert.match(await stopped.textContent(), /watcher not running/i);
    } catch (err) {
      err.message += `\n--- daemon stderr ---\n${daemon.stderr}`;
      throw err;
    } finally {
      stopWriter();
      await context.close();
      const status = await daemon.stop();
      assert.ok(!status.forced, `the daemon ignored SIGTERM for ${STOP_MS} ms`);
    }
  });
});
