// The Live page in real headless Chromium against the mock daemon (tests/web/mock-server.mjs).
// Skips, with the reason, when playwright-core or Chromium is missing. The same page against the
// real daemon is tests/web/e2e.mjs.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { launch, loadBrowser } from './browser.mjs';
import { startMockServer } from './mock-server.mjs';

const WAIT = { timeout: 10000 };
const { chromium, skip } = await loadBrowser();

describe('Live page in Chromium (mock daemon)', { skip }, () => {
  let browser;

  before(async () => {
    browser = await launch(chromium);
  });

  after(async () => {
    await browser?.close();
  });

  /** A fresh mock server and page; `done()` closes both. */
  async function open(serverOptions = {}, { query = '', timezoneId = 'Asia/Kolkata', colorScheme = 'light' } = {}) {
    const server = await startMockServer({ burnIntervalMs: 300, ...serverOptions });
    const context = await browser.newContext({ timezoneId, colorScheme, viewport: { width: 1200, height: 800 } });
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`${server.url}/${query}`, WAIT);
    const done = async () => {
      await context.close();
      await server.close();
    };
    return { server, page, errors, done };
  }

  test('rows, ticker, token and timezone reach the page and the server', async () => {
    const { server, page, errors, done } = await open({ token: 'tok123' }, { query: '?token=tok123' });
    try {
      await page.locator('#conn[data-state="live"]').waitFor(WAIT);
      await page.waitForFunction(() => document.querySelector('#burn-5m').textContent !== '\u2014', null, WAIT);
      assert.equal(await page.textContent('#burn-5m'), '$0.00');

      server.addEvent({ cost_usd: 0.25, model: 'claude-opus-4-1', project_name: 'Alpha' });
      server.addToolCall({ tool_name: 'Write', file_path: '/w/alpha/src/lib.rs', byte_count: 2048 });
      server.addEvent({ cost_usd: 0, cost_source: 'unknown', model: 'mystery-1', provider: 'codex' });

      await page.locator('#stream > li').nth(2).waitFor(WAIT);
      const rows = await page.$$eval('#stream > li', (lis) =>
        lis.map((li) => ({ kind: li.dataset.kind, id: li.dataset.id, text: li.textContent })),
      );
      assert.deepEqual(rows.map((r) => `${r.kind}:${r.id}`), ['event:2', 'tool_call:1', 'event:1']);
      assert.match(rows[0].text, /mystery-1/);
      assert.match(rows[0].text, /price unknown/);
      assert.doesNotMatch(rows[0].text, /\$0\.00/);
      assert.match(rows[1].text, /Write/);
      assert.match(rows[1].text, /src\/lib\.rs/);
      assert.match(rows[1].text, /2\.0 KiB/);
      assert.match(rows[2].text, /claude-opus-4-1/);
      assert.match(rows[2].text, /Alpha/);
      assert.match(rows[2].text, /\$0\.25/);

      await page.waitForFunction(() => document.querySelector('#burn-5m').textContent === '$0.25', null, WAIT);
      assert.equal(await page.textContent('#burn-hour'), '$3.00');

      const api = server.requests.filter((r) => r.path.startsWith('/api/') || r.path === '/healthz');
      assert.ok(api.some((r) => r.path === '/api/live/stream'));
      assert.ok(api.some((r) => r.path === '/api/live/stats'));
      for (const r of api) {
        assert.equal(r.query.token, 'tok123', `${r.path} without token`);
        assert.equal(r.query.timezone_offset, '330', `${r.path} timezone_offset`);
      }
      assert.deepEqual(errors, []);
    } finally {
      await done();
    }
  });

  test('a dropped stream resumes from the last id: no gap, no duplicate', async () => {
    const { server, page, done } = await open();
    try {
      await page.locator('#conn[data-state="live"]').waitFor(WAIT);
      for (let i = 0; i < 3; i += 1) server.addEvent();
      server.addToolCall();
      await page.locator('#stream > li').nth(3).waitFor(WAIT);

      server.dropStreams();
      await page.locator('#conn[data-state="reconnecting"]').waitFor(WAIT);
      server.addEvent(); // lands while the page is disconnected
      server.addToolCall();
      await page.locator('#conn[data-state="live"]').waitFor(WAIT);
      server.addEvent();
      await page.locator('#stream > li').nth(6).waitFor(WAIT);
      await page.waitForTimeout(300);

      const ids = await page.$$eval('#stream > li', (lis) => lis.map((li) => `${li.dataset.kind}:${li.dataset.id}`));
      assert.deepEqual(ids, ['event:5', 'tool_call:2', 'event:4', 'tool_call:1', 'event:3', 'event:2', 'event:1']);
      const streams = server.requests.filter((r) => r.path === '/api/live/stream');
      assert.equal(streams.length, 2);
      assert.equal(streams[0].query.last_event_id, undefined);
      assert.equal(streams[1].query.last_event_id, '3:1');
    } finally {
      await done();
    }
  });

  test('watcher banner follows ready and the stats poll', async () => {
    const { server, page, done } = await open({ watcher: false });
    try {
      const banner = page.locator('#watcher-banner');
      await page.locator('#watcher-banner[data-state="stopped"]').waitFor(WAIT);
      assert.ok(await banner.isVisible());
      assert.match(await banner.textContent(), /watcher not running/i);
      assert.equal(await banner.getAttribute('role'), 'alert');

      server.setWatcher('unknown');
      await page.locator('#watcher-banner[data-state="unknown"]').waitFor(WAIT);
      assert.ok(await banner.isVisible());
      assert.doesNotMatch(await banner.textContent(), /not running/i);

      server.setWatcher(true);
      await page.locator('#watcher-banner[data-state="running"]').waitFor({ ...WAIT, state: 'attached' });
      assert.equal(await banner.isVisible(), false);
    } finally {
      await done();
    }
  });

  test('latency table: P95 per tool with a sparkline that grows', async () => {
    const latency = [
      { tool_name: 'Bash', samples: 40, p50: 0.5, p95: 2.5, p99: 4 },
      { tool_name: 'Edit', samples: 12, p50: 0.05, p95: 0.2, p99: 0.3 },
    ];
    const { server, page, done } = await open({ latency });
    try {
      await page.locator('#latency tr[data-tool="Bash"]').waitFor(WAIT);
      assert.equal(await page.textContent('#latency tr[data-tool="Bash"] .p95'), '2.5 s');
      assert.equal(await page.textContent('#latency tr[data-tool="Edit"] .p95'), '200 ms');
      assert.equal(await page.textContent('#latency tr[data-tool="Bash"] .samples'), '40');
      server.setLatency([{ ...latency[0], p95: 3.5 }, latency[1]]);
      await page.waitForFunction(
        () => /^M[\d.]+,[\d.]+L[\d.]+,[\d.]+$/.test(document.querySelector('#latency tr[data-tool="Bash"] svg path').getAttribute('d')) &&
          document.querySelector('#latency tr[data-tool="Bash"] svg').getAttribute('aria-label').includes('3.5 s'),
        null,
        { timeout: 12000 },
      );
      assert.match(await page.textContent('#latency-note'), /permission prompts/);
    } finally {
      await done();
    }
  });

  test('scrolling away pauses the live end; "jump to live" returns', async () => {
    const { server, page, done } = await open();
    try {
      await page.locator('#conn[data-state="live"]').waitFor(WAIT);
      for (let i = 0; i < 60; i += 1) server.addToolCall({ tool_name: `T${i + 1}` });
      await page.locator('#stream > li[data-id="60"]').waitFor(WAIT);
      assert.equal(await page.isVisible('#jump-live'), false);

      await page.$eval('#stream', (list) => {
        list.scrollTop = 400;
      });
      await page.locator('#jump-live').waitFor(WAIT);
      const anchor = () =>
        page.$eval('#stream', (list) => {
          const top = list.getBoundingClientRect().top;
          const li = [...list.children].find((c) => c.getBoundingClientRect().bottom > top + 1);
          return { id: li.dataset.id, offset: li.getBoundingClientRect().top - top };
        });
      const before = await anchor();

      for (let i = 0; i < 3; i += 1) server.addToolCall({ tool_name: `late${i}` });
      await page.locator('#stream > li[data-id="63"]').waitFor({ ...WAIT, state: 'attached' });
      const after = await anchor();
      assert.equal(after.id, before.id, 'the rows being read stay put');
      assert.ok(Math.abs(after.offset - before.offset) <= 2, `moved from ${before.offset} to ${after.offset}`);
      assert.match(await page.textContent('#jump-live'), /3 new/);

      await page.click('#jump-live');
      await page.waitForFunction(() => document.querySelector('#stream').scrollTop === 0, null, WAIT);
      await page.locator('#jump-live').waitFor({ ...WAIT, state: 'hidden' });
      assert.equal(await page.getAttribute('#stream > li:first-child', 'data-id'), '63');
    } finally {
      await done();
    }
  });

  test('the stream keeps at most 100 rows', async () => {
    const { server, page, done } = await open();
    try {
      await page.locator('#conn[data-state="live"]').waitFor(WAIT);
      for (let i = 0; i < 130; i += 1) server.addEvent();
      await page.locator('#stream > li[data-id="130"]').waitFor(WAIT);
      assert.equal(await page.locator('#stream > li').count(), 100);
      assert.equal(await page.getAttribute('#stream > li:last-child', 'data-id'), '31');
    } finally {
      await done();
    }
  });
});
