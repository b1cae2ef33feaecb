// Unit tests for web/format.js: the Live page's pure helpers.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import {
  bannerState,
  describeEntry,
  formatBytes,
  formatClock,
  formatCost,
  formatCount,
  formatSeconds,
  formatUsd,
  LatencyHistory,
  projectLabel,
  shortPath,
  sparklinePath,
} from '../../web/format.js';

describe('money', () => {
  test('formatUsd', () => {
    assert.equal(formatUsd(0), '$0.00');
    assert.equal(formatUsd(0.0042), '$0.0042');
    assert.equal(formatUsd(0.00001), '<$0.0001');
    assert.equal(formatUsd(0.0001), '$0.0001');
    assert.equal(formatUsd(0.009), '$0.0090');
    assert.equal(formatUsd(0.01), '$0.0100');
    assert.equal(formatUsd(0.0123), '$0.0123');
    assert.equal(formatUsd(0.09994), '$0.0999');
    assert.equal(formatUsd(0.09996), '$0.10');
    assert.equal(formatUsd(0.1), '$0.10');
    assert.equal(formatUsd(0.5), '$0.50');
    assert.equal(formatUsd(0.123456), '$0.12');
    assert.equal(formatUsd(0.99999), '$1.00');
    assert.equal(formatUsd(3.1), '$3.10');
    assert.equal(formatUsd(12.345), '$12.35');
    assert.equal(formatUsd(1234567.891), '$1,234,567.89');
    assert.equal(formatUsd(-2.5), '-$2.50');
    assert.equal(formatUsd('1.5'), '$1.50');
    for (const v of [null, undefined, '', NaN, Infinity, 'abc']) assert.equal(formatUsd(v), '\u2014', String(v));
  });

  test('an unknown price is never shown as $0.00', () => {
    assert.equal(formatCost(0, 'unknown'), 'price unknown');
    assert.equal(formatCost(null, 'unknown'), 'price unknown');
    assert.equal(formatCost(1.23, 'unknown'), 'price unknown');
    assert.equal(formatCost(null, 'rate_card'), 'price unknown');
    assert.equal(formatCost(0.5, 'rate_card'), '$0.50');
    assert.equal(formatCost(0.5, 'live'), '$0.50');
    assert.equal(formatCost(0, 'rate_card'), '$0.00');
    assert.equal(formatCost(0.5, 'estimated'), '~$0.50');
  });
});

describe('sizes, counts, durations, clock', () => {
  test('formatBytes', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(1024), '1.0 KiB');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(200 * 1024), '200 KiB');
    assert.equal(formatBytes(5 * 1024 * 1024), '5.0 MiB');
    assert.equal(formatBytes(3 * 1024 ** 4), '3.0 TiB');
    for (const v of [null, undefined, '', -1, NaN]) assert.equal(formatBytes(v), '', String(v));
  });

  test('formatCount', () => {
    assert.equal(formatCount(950), '950');
    assert.equal(formatCount(1234), '1.2k');
    assert.equal(formatCount(12345), '12k');
    assert.equal(formatCount(4_100_000), '4.1M');
    assert.equal(formatCount(undefined), '0');
  });

  test('formatSeconds', () => {
    assert.equal(formatSeconds(0), '0 ms');
    assert.equal(formatSeconds(0.001), '1 ms');
    assert.equal(formatSeconds(0.8504), '850 ms');
    assert.equal(formatSeconds(2.44), '2.4 s');
    assert.equal(formatSeconds(14.2), '14 s');
    assert.equal(formatSeconds(185), '3m 05s');
    assert.equal(formatSeconds(null), '\u2014');
    assert.equal(formatSeconds(-1), '\u2014');
  });

  test('formatClock gives local HH:MM:SS', () => {
    const local = new Date(2025, 4, 10, 9, 5, 7);
    assert.equal(formatClock(local.toISOString()), '09:05:07');
    assert.equal(formatClock(local), '09:05:07');
    assert.equal(formatClock('not a time'), 'not a time');
    assert.equal(formatClock(undefined), '\u2014');
  });
});

describe('entries', () => {
  test('projectLabel falls back from name to slug to id', () => {
    assert.equal(projectLabel({ project_name: 'Demo', project_slug: 'demo', project_id: 3 }), 'Demo');
    assert.equal(projectLabel({ project_name: null, project_slug: 'demo', project_id: 3 }), 'demo');
    assert.equal(projectLabel({ project_name: null, project_slug: null, project_id: 3 }), 'project #3');
    assert.equal(projectLabel({}), 'unknown project');
  });

  test('shortPath keeps the last components', () => {
    assert.equal(shortPath('/a/b/c/d/e.rs'), '\u2026/c/d/e.rs');
    assert.equal(shortPath('src/main.rs'), 'src/main.rs');
    assert.equal(shortPath(null), '');
  });

  test('event entry: model, tokens, cost', () => {
    const ts = new Date(2025, 4, 10, 14, 3, 9).toISOString();
    const view = describeEntry('event', {
      id: 1,
      ts,
      model: 'gpt-5-codex',
      provider: 'codex',
      cost_usd: 0.0123,
      cost_source: 'rate_card',
      input_tokens: 1500,
      output_tokens: 40,
      cache_read_tokens: 20000,
      cache_create_tokens: 0,
      project_name: null,
      project_slug: 'api',
      project_id: 2,
    });
    assert.equal(view.time, '14:03:09');
    assert.equal(view.what, 'gpt-5-codex');
    assert.equal(view.provider, 'codex');
    assert.equal(view.project, 'api');
    assert.equal(view.amount, '$0.0123');
    assert.equal(view.detail, '1.5k in \u00b7 40 out \u00b7 20k cache');
    assert.equal(view.unknownPrice, false);
  });

  test('event entry with unknown price and no model', () => {
    const view = describeEntry('event', { id: 1, model: '', cost_usd: 0, cost_source: 'unknown' }, '2025-05-10T12:00:00Z');
    assert.equal(view.amount, 'price unknown');
    assert.equal(view.unknownPrice, true);
    assert.equal(view.what, 'unknown model');
  });

  test('tool_call entry: tool, path, bytes', () => {
    const view = describeEntry('tool_call', {
      id: 9,
      ts: '2025-05-10T12:00:00Z',
      tool_name: 'Write',
      file_path: '/home/me/project/src/deep/file.rs',
      byte_count: 2048,
      project_name: 'P',
    });
    assert.equal(view.what, 'Write');
    assert.equal(view.detail, '\u2026/src/deep/file.rs');
    assert.equal(view.detailTitle, '/home/me/project/src/deep/file.rs');
    assert.equal(view.amount, '2.0 KiB');
  });

  test('tool_call entry without path or bytes', () => {
    const view = describeEntry('tool_call', { id: 9, tool_name: 'Bash', file_path: null, byte_count: null }, 'x');
    assert.equal(view.detail, '');
    assert.equal(view.amount, '');
  });
});

describe('watcher banner', () => {
  test('running hides it', () => {
    assert.deepEqual(bannerState(true), { state: 'running', hidden: true, title: '', text: '' });
  });

  test('false is a loud "watcher not running"', () => {
    const b = bannerState(false);
    assert.equal(b.state, 'stopped');
    assert.equal(b.hidden, false);
    assert.match(b.title, /watcher not running/i);
  });

  test('"unknown" and anything odd is the softer note', () => {
    for (const v of ['unknown', undefined, null, 'yes']) {
      const b = bannerState(v);
      assert.equal(b.state, 'unknown');
      assert.equal(b.hidden, false);
      assert.doesNotMatch(b.title, /not running/i);
    }
  });
});

describe('sparkline', () => {
  const parse = (d) =>
    [...d.matchAll(/([ML])(-?[\d.]+),(-?[\d.]+)/g)].map((m) => [m[1], Number(m[2]), Number(m[3])]);

  test('nothing to draw', () => {
    assert.equal(sparklinePath([]), '');
    assert.equal(sparklinePath(undefined), '');
    assert.equal(sparklinePath([NaN, null, 'x']), '');
  });

  test('one value is a flat line across the middle', () => {
    assert.equal(sparklinePath([3], 80, 20, 2), 'M2,10L78,10');
  });

  test('a flat series sits in the middle', () => {
    const pts = parse(sparklinePath([1, 1, 1], 80, 20, 2));
    assert.deepEqual(pts.map((p) => p[2]), [10, 10, 10]);
  });

  test('spans the box, low values at the bottom', () => {
    const pts = parse(sparklinePath([1, 3, 2], 80, 20, 2));
    assert.deepEqual(pts, [
      ['M', 2, 18],
      ['L', 40, 2],
      ['L', 78, 10],
    ]);
  });

  test('skips non-numbers and stays inside the box', () => {
    const values = [0.2, null, 5, 0.1, 12.5, 3];
    const pts = parse(sparklinePath(values, 100, 30, 3));
    assert.equal(pts.length, 5);
    for (const [, x, y] of pts) {
      assert.ok(x >= 3 && x <= 97, `x ${x}`);
      assert.ok(y >= 3 && y <= 27, `y ${y}`);
    }
  });
});

describe('LatencyHistory', () => {
  const row = (tool_name, p95, samples = 10) => ({ tool_name, samples, p50: p95 / 2, p95, p99: p95 * 2 });

  test('appends one P95 per poll and keeps the server order', () => {
    const h = new LatencyHistory(3);
    h.record([row('Bash', 1), row('Edit', 0.2)]);
    h.record([row('Edit', 0.3), row('Bash', 2)]);
    const rows = h.record([row('Bash', 3), row('Edit', 0.4)]);
    assert.deepEqual(rows.map((r) => r.tool_name), ['Bash', 'Edit']);
    assert.deepEqual(rows[0].history, [1, 2, 3]);
    assert.deepEqual(rows[1].history, [0.2, 0.3, 0.4]);
    assert.equal(rows[0].samples, 10);
  });

  test('caps each series at the limit', () => {
    const h = new LatencyHistory(3);
    for (let i = 1; i <= 5; i += 1) h.record([row('Read', i)]);
    assert.deepEqual(h.history('Read'), [3, 4, 5]);
  });

  test('forgets a tool only after it has been absent for `limit` polls', () => {
    const h = new LatencyHistory(3);
    h.record([row('Grep', 1)]);
    h.record([]);
    h.record([]);
    assert.deepEqual(h.history('Grep'), [1]);
    h.record([]);
    assert.deepEqual(h.history('Grep'), []);
  });

  test('ignores junk rows and a non-array', () => {
    const h = new LatencyHistory();
    assert.deepEqual(h.record(null), []);
    assert.deepEqual(h.record([null, { p95: 1 }, 5]), []);
    const rows = h.record([{ tool_name: 'X', p95: null, samples: 0 }]);
    assert.deepEqual(rows[0].history, []);
  });
});
