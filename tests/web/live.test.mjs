// Unit tests for web/live.js against a scripted EventSource (no browser, no network).

import { test, describe, beforeEach } from 'node:test';
import assert from 'node:assert/strict';

import {
  apiUrl,
  connectLiveStream,
  fetchStats,
  isEventId,
  localTimezoneOffset,
  parseFrame,
  RING_SIZE,
  RingBuffer,
  watcherState,
} from '../../web/live.js';
import { ManualClock, MockEventSource } from './fakes.mjs';

const READY = {
  watermarks: { event_id: 10, tool_call_id: 4 },
  watcher: { running: true },
  burn_interval_seconds: 5.0,
};

function eventPayload(id, extra = {}) {
  return {
    id,
    ts: '2025-05-10T12:00:00.000Z',
    project_id: 1,
    session_id: 's1',
    model: 'claude-sonnet-4-5',
    cost_usd: 0.0123,
    input_tokens: 100,
    output_tokens: 20,
    cache_read_tokens: 0,
    cache_create_tokens: 0,
    cost_source: 'rate_card',
    project_slug: 'demo',
    project_name: 'Demo',
    ...extra,
  };
}

function toolPayload(id, extra = {}) {
  return {
    id,
    ts: '2025-05-10T12:00:01.000Z',
    project_id: 1,
    session_id: 's1',
    tool_name: 'Edit',
    file_path: '/src/main.rs',
    byte_count: 120,
    call_index: 0,
    project_slug: 'demo',
    project_name: 'Demo',
    ...extra,
  };
}

/** Connect with the mock EventSource and a manual clock; records every handler call. */
function setup(options = {}, extraHandlers = {}) {
  const clock = new ManualClock();
  const calls = [];
  const record = (name) => (...args) => calls.push({ name, args });
  const handlers = {
    onReady: record('ready'),
    onEvent: record('event'),
    onToolCall: record('tool_call'),
    onBurnTick: record('burn_tick'),
    onError: record('error'),
    onStatus: record('status'),
    ...extraHandlers,
  };
  const client = connectLiveStream(handlers, {
    EventSource: MockEventSource,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: () => 1, // no jitter: delays are the ceiling
    timezoneOffset: 120,
    ...options,
  });
  const named = (name) => calls.filter((c) => c.name === name);
  return { client, clock, calls, named };
}

beforeEach(() => MockEventSource.reset());

describe('watcherState', () => {
  test('maps booleans and treats everything else as unknown', () => {
    assert.equal(watcherState(true), 'running');
    assert.equal(watcherState(false), 'stopped');
    assert.equal(watcherState('unknown'), 'unknown');
    assert.equal(watcherState(undefined), 'unknown');
    assert.equal(watcherState(null), 'unknown');
    assert.equal(watcherState('false'), 'unknown');
    assert.equal(watcherState(0), 'unknown');
  });
});

describe('URLs', () => {
  test('stream URL carries timezone_offset and token, and no resume point at first', () => {
    setup({ token: 'XYZ' });
    const es = MockEventSource.last;
    assert.ok(es.url.startsWith('/api/live/stream?'), es.url);
    assert.equal(es.params.get('timezone_offset'), '120');
    assert.equal(es.params.get('token'), 'XYZ');
    assert.equal(es.params.has('last_event_id'), false);
  });

  test('no token parameter when there is no token', () => {
    setup();
    assert.equal(MockEventSource.last.params.has('token'), false);
  });

  test('default timezone_offset is the local offset in minutes east of UTC', () => {
    setup({ timezoneOffset: undefined });
    const expected = 0 - new Date().getTimezoneOffset();
    assert.equal(Number(MockEventSource.last.params.get('timezone_offset')), expected);
    assert.equal(localTimezoneOffset(new Date()), expected);
  });

  test('negative offsets and a base URL', () => {
    const url = apiUrl('/api/live/stats', {
      baseUrl: 'http://127.0.0.1:9000/',
      timezoneOffset: -300,
      token: 'a b&c',
    });
    const parsed = new URL(url);
    assert.equal(parsed.origin, 'http://127.0.0.1:9000');
    assert.equal(parsed.pathname, '/api/live/stats');
    assert.equal(parsed.searchParams.get('timezone_offset'), '-300');
    assert.equal(parsed.searchParams.get('token'), 'a b&c');
  });

  test('lastEventId option resumes the first connection', () => {
    setup({ lastEventId: '7:3' });
    assert.equal(MockEventSource.last.params.get('last_event_id'), '7:3');
  });

  test('a malformed lastEventId option is ignored', () => {
    setup({ lastEventId: '7' });
    assert.equal(MockEventSource.last.params.has('last_event_id'), false);
  });
});

describe('dispatch', () => {
  test('each frame type reaches its handler with payload and ts', () => {
    const { client, named } = setup();
    const es = MockEventSource.last;
    es.frame('ready', READY, { id: '10:4' });
    es.frame('event', eventPayload(11), { id: '11:4', ts: '2025-05-10T12:00:00.000Z' });
    es.frame('tool_call', toolPayload(5), { id: '11:5', ts: '2025-05-10T12:00:01.000Z' });
    const burn = { window_minutes: 5, window_cost: 1.5, per_minute: 0.3, per_hour: 18, today_cost: 4, month_to_date: 9, projected_month_end: 27.9, ts: '2025-05-10T12:00:02+00:00' };
    es.frame('burn_tick', burn, { ts: burn.ts });

    assert.deepEqual(named('ready').map((c) => c.args), [[READY]]);
    assert.deepEqual(named('event').map((c) => c.args), [[eventPayload(11), '2025-05-10T12:00:00.000Z']]);
    assert.deepEqual(named('tool_call').map((c) => c.args), [[toolPayload(5), '2025-05-10T12:00:01.000Z']]);
    assert.deepEqual(named('burn_tick').map((c) => c.args), [[burn, burn.ts]]);
    assert.equal(named('error').length, 0);
    assert.equal(client.lastEventId(), '11:5');
    assert.deepEqual(client.counters().frames, 4);
  });

  test('status goes connecting → live on ready', () => {
    const { client, named } = setup();
    assert.equal(client.status(), 'connecting');
    MockEventSource.last.frame('ready', READY, { id: '10:4' });
    assert.equal(client.status(), 'live');
    assert.deepEqual(named('status').map((c) => c.args[0]), ['connecting', 'live']);
  });

  test('extra payload fields (provider, cost_source unknown) pass through', () => {
    const { named } = setup();
    const p = eventPayload(1, { provider: 'codex', cost_source: 'unknown', cost_usd: 0 });
    MockEventSource.last.frame('event', p, { id: '1:0' });
    assert.equal(named('event')[0].args[0].provider, 'codex');
    assert.equal(named('event')[0].args[0].cost_source, 'unknown');
  });

  test('handlers are optional', () => {
    const client = connectLiveStream({}, { EventSource: MockEventSource, setTimeout: () => 0, clearTimeout: () => {} });
    const es = MockEventSource.last;
    es.frame('ready', READY, { id: '10:4' });
    es.frame('event', eventPayload(11), { id: '11:4' });
    es.fail();
    assert.equal(client.entries().length, 1);
    client.close();
  });

  test('a throwing handler does not stop later frames', () => {
    const reported = [];
    const saved = globalThis.reportError;
    globalThis.reportError = (err) => reported.push(err);
    try {
      const { client } = setup({}, {
        onEvent() {
          throw new Error('boom');
        },
      });
      const es = MockEventSource.last;
      es.frame('event', eventPayload(1), { id: '1:0' });
      es.frame('event', eventPayload(2), { id: '2:0' });
      assert.equal(reported.length, 2);
      assert.equal(client.entries().length, 2);
      assert.equal(client.lastEventId(), '2:0');
    } finally {
      if (saved === undefined) delete globalThis.reportError;
      else globalThis.reportError = saved;
    }
  });
});

describe('malformed frames', () => {
  const bad = [
    ['bad JSON', 'event', '{"type": "event", '],
    ['not JSON at all', 'event', 'hello'],
    ['JSON array', 'event', '[1,2,3]'],
    ['JSON null', 'event', 'null'],
    ['JSON string', 'event', '"event"'],
    ['type differs from event name', 'event', { type: 'tool_call', ts: 't', payload: toolPayload(1) }],
    ['unknown type', 'event', { type: 'bogus', ts: 't', payload: {} }],
    ['missing type', 'event', { ts: 't', payload: eventPayload(1) }],
    ['missing ts', 'event', { type: 'event', payload: eventPayload(1) }],
    ['numeric ts', 'event', { type: 'event', ts: 5, payload: eventPayload(1) }],
    ['missing payload', 'event', { type: 'event', ts: 't' }],
    ['payload is an array', 'burn_tick', { type: 'burn_tick', ts: 't', payload: [] }],
    ['payload is null', 'ready', { type: 'ready', ts: 't', payload: null }],
    ['row without id', 'event', { type: 'event', ts: 't', payload: { model: 'x' } }],
    ['row with string id', 'tool_call', { type: 'tool_call', ts: 't', payload: toolPayload('3') }],
    ['row with fractional id', 'event', { type: 'event', ts: 't', payload: eventPayload(1.5) }],
  ];

  for (const [name, eventName, data] of bad) {
    test(`dropped: ${name}`, () => {
      const { client, calls } = setup();
      const es = MockEventSource.last;
      assert.doesNotThrow(() => es.emit(eventName, data, '99:99'));
      assert.deepEqual(calls.filter((c) => c.name !== 'status'), []);
      assert.equal(client.counters().dropped, 1);
      assert.equal(client.entries().length, 0);
      assert.equal(client.lastEventId(), null, 'a dropped frame must not move the resume point');
      // The stream keeps working afterwards.
      es.frame('event', eventPayload(1), { id: '1:0' });
      assert.equal(client.entries().length, 1);
    });
  }

  test('parseFrame returns the envelope for a good frame and null for undefined data', () => {
    const env = { type: 'burn_tick', ts: 'x', payload: { window_cost: 1 } };
    assert.deepEqual(parseFrame('burn_tick', JSON.stringify(env)), env);
    assert.equal(parseFrame('burn_tick', undefined), null);
  });

  test('isEventId', () => {
    assert.ok(isEventId('0:0'));
    assert.ok(isEventId('123:45'));
    for (const v of ['', '1', '1:', ':1', '1:2:3', 'a:b', ' 1:2', null, 12]) assert.ok(!isEventId(v), String(v));
  });
});

describe('ring buffer', () => {
  test(`keeps the newest ${RING_SIZE} event and tool_call entries, oldest first`, () => {
    assert.equal(RING_SIZE, 100);
    const { client } = setup();
    const es = MockEventSource.last;
    es.frame('ready', READY, { id: '0:0' });
    for (let i = 1; i <= 150; i += 1) {
      if (i % 3 === 0) es.frame('tool_call', toolPayload(i), { id: `${i}:${i}` });
      else es.frame('event', eventPayload(i), { id: `${i}:${i}` });
      es.frame('burn_tick', { window_cost: i }, { ts: 'x' }); // ticks are not entries
    }
    const entries = client.entries();
    assert.equal(entries.length, 100);
    assert.equal(entries[0].id, 51);
    assert.equal(entries[99].id, 150);
    assert.equal(entries[99].kind, 'tool_call');
    assert.equal(entries[98].kind, 'event');
    assert.equal(entries[98].streamId, '149:149');
    assert.deepEqual(entries[98].payload, eventPayload(149));
    assert.deepEqual(entries[99].payload, toolPayload(150));
  });

  test('entries() is a copy', () => {
    const { client } = setup();
    MockEventSource.last.frame('event', eventPayload(1), { id: '1:0' });
    client.entries().pop();
    assert.equal(client.entries().length, 1);
  });

  test('RingBuffer on its own', () => {
    const ring = new RingBuffer(3);
    for (const n of [1, 2, 3, 4, 5]) ring.push(n);
    assert.deepEqual(ring.toArray(), [3, 4, 5]);
    assert.equal(ring.size, 3);
    ring.clear();
    assert.equal(ring.size, 0);
  });
});

describe('reconnect', () => {
  test('on error: closes, waits, reopens with last_event_id of the last row frame', () => {
    const { client, clock, named } = setup({ token: 'T' });
    const first = MockEventSource.last;
    first.frame('ready', READY, { id: '10:4' });
    first.frame('event', eventPayload(11), { id: '11:4' });
    first.frame('tool_call', toolPayload(5), { id: '11:5' });
    first.frame('burn_tick', { window_cost: 1 }); // no id: must not matter
    first.fail();

    assert.equal(first.closeCalls, 1, 'the failed EventSource is closed so the browser does not retry too');
    assert.equal(named('error').length, 1);
    assert.equal(client.status(), 'reconnecting');
    assert.equal(MockEventSource.instances.length, 1, 'no reconnect before the backoff delay');

    clock.advance(999);
    assert.equal(MockEventSource.instances.length, 1);
    clock.advance(1);
    assert.equal(MockEventSource.instances.length, 2);
    const second = MockEventSource.last;
    assert.equal(second.params.get('last_event_id'), '11:5');
    assert.equal(second.params.get('token'), 'T');
    assert.equal(second.params.get('timezone_offset'), '120');

    // Frames from the dead source are ignored.
    first.frame('event', eventPayload(12), { id: '12:5' });
    assert.equal(client.entries().length, 2);
  });

  test('without any row the resume point is the ready id', () => {
    const { clock } = setup();
    MockEventSource.last.frame('ready', READY, { id: '10:4' });
    MockEventSource.last.fail();
    clock.advance(1000);
    assert.equal(MockEventSource.last.params.get('last_event_id'), '10:4');
  });

  test('a failure before any frame reconnects without last_event_id', () => {
    const { clock } = setup();
    MockEventSource.last.fail();
    clock.advance(1000);
    assert.equal(MockEventSource.instances.length, 2);
    assert.equal(MockEventSource.last.params.has('last_event_id'), false);
  });

  test('on a resumed connection the ready id does not move the resume point forward', () => {
    const { client, clock } = setup();
    MockEventSource.last.frame('ready', READY, { id: '10:4' });
    MockEventSource.last.frame('event', eventPayload(11), { id: '11:4' });
    MockEventSource.last.fail();
    clock.advance(1000);
    // The server's ready on resume may carry its current watermarks, ahead of the replay.
    MockEventSource.last.frame('ready', { ...READY, watermarks: { event_id: 20, tool_call_id: 9 } }, { id: '20:9' });
    assert.equal(client.lastEventId(), '11:4');
    MockEventSource.last.fail();
    clock.advance(1000);
    assert.equal(MockEventSource.last.params.get('last_event_id'), '11:4');
  });

  test('replayed rows already seen are not delivered twice', () => {
    const { client, clock, named } = setup();
    let es = MockEventSource.last;
    es.frame('ready', READY, { id: '10:4' });
    es.frame('event', eventPayload(11), { id: '11:4' });
    es.frame('event', eventPayload(12), { id: '12:4' });
    es.frame('tool_call', toolPayload(5), { id: '12:5' });
    es.fail();
    clock.advance(1000);
    es = MockEventSource.last;
    es.frame('ready', { ...READY, watermarks: { event_id: 13, tool_call_id: 5 } }, { id: '13:5' });
    es.frame('event', eventPayload(12), { id: '12:5' }); // overlap
    es.frame('tool_call', toolPayload(5), { id: '12:5' }); // overlap
    es.frame('event', eventPayload(13), { id: '13:5' });
    assert.deepEqual(named('event').map((c) => c.args[0].id), [11, 12, 13]);
    assert.deepEqual(named('tool_call').map((c) => c.args[0].id), [5]);
    assert.equal(client.counters().duplicates, 2);
    assert.deepEqual(client.entries().map((e) => `${e.kind}:${e.id}`), ['event:11', 'event:12', 'tool_call:5', 'event:13']);
  });

  test('a server whose store restarted from lower ids is followed, not filtered', () => {
    const { clock, named } = setup();
    let es = MockEventSource.last;
    es.frame('ready', READY, { id: '10:4' });
    es.frame('event', eventPayload(50), { id: '50:4' });
    es.fail();
    clock.advance(1000);
    es = MockEventSource.last;
    es.frame('ready', { ...READY, watermarks: { event_id: 2, tool_call_id: 1 } }, { id: '2:1' });
    es.frame('event', eventPayload(3), { id: '3:1' });
    assert.deepEqual(named('event').map((c) => c.args[0].id), [50, 3]);
  });

  test('backoff doubles, is capped, and resets after ready', () => {
    const { clock } = setup({ backoff: { initialMs: 1000, maxMs: 8000 } });
    const delays = [];
    for (let i = 0; i < 6; i += 1) {
      MockEventSource.last.fail();
      delays.push(clock.delays[0]);
      clock.advance(clock.delays[0]);
    }
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 8000, 8000]);
    MockEventSource.last.frame('ready', READY, { id: '10:4' });
    MockEventSource.last.fail();
    assert.equal(clock.delays[0], 1000);
  });

  test('jitter keeps the delay between half and all of the ceiling', () => {
    for (const r of [0, 0.5, 0.999]) {
      MockEventSource.reset();
      const { clock } = setup({ random: () => r });
      MockEventSource.last.fail();
      const d = clock.delays[0];
      assert.ok(d >= 500 && d <= 1000, `${r} → ${d}`);
    }
  });

  test('status reports reconnecting with the delay, then live again', () => {
    const { clock, named } = setup();
    MockEventSource.last.frame('ready', READY, { id: '10:4' });
    MockEventSource.last.fail();
    clock.advance(1000);
    MockEventSource.last.frame('ready', READY, { id: '10:4' });
    const statuses = named('status').map((c) => c.args[0]);
    assert.deepEqual(statuses, ['connecting', 'live', 'reconnecting', 'reconnecting', 'live']);
    assert.equal(named('status')[2].args[1].delayMs, 1000);
  });

  test('a silent stream is treated as dead', () => {
    const { clock, named } = setup({ staleAfterMs: 30000 });
    const es = MockEventSource.last;
    es.frame('ready', { ...READY, burn_interval_seconds: 5 }, { id: '10:4' });
    clock.advance(29000);
    es.frame('burn_tick', { window_cost: 0 });
    clock.advance(29000);
    assert.equal(MockEventSource.instances.length, 1, 'frames reset the watchdog');
    clock.advance(1000);
    assert.equal(named('error').length, 1);
    assert.equal(named('error')[0].args[0].type, 'stale');
    assert.equal(es.closeCalls, 1);
    clock.advance(1000);
    assert.equal(MockEventSource.instances.length, 2);
    assert.equal(MockEventSource.last.params.get('last_event_id'), '10:4');
  });

  test('a long burn interval stretches the watchdog', () => {
    const { clock } = setup({ staleAfterMs: 30000 });
    MockEventSource.last.frame('ready', { ...READY, burn_interval_seconds: 20 }, { id: '10:4' });
    clock.advance(79000);
    assert.equal(MockEventSource.instances.length, 1);
    clock.advance(1000);
    assert.equal(MockEventSource.last.closeCalls, 1);
  });

  test('staleAfterMs 0 turns the watchdog off', () => {
    const { clock } = setup({ staleAfterMs: 0 });
    MockEventSource.last.frame('ready', READY, { id: '10:4' });
    clock.advance(10 * 60 * 1000);
    assert.equal(MockEventSource.instances.length, 1);
    assert.equal(clock.pending.size, 0);
  });
});

describe('close', () => {
  test('is idempotent and closes the EventSource once', () => {
    const { client, named } = setup();
    const es = MockEventSource.last;
    client.close();
    client.close();
    client.close();
    assert.equal(es.closeCalls, 1);
    assert.equal(client.status(), 'closed');
    assert.equal(named('status').filter((c) => c.args[0] === 'closed').length, 1);
    assert.equal(client.source, null);
  });

  test('stops a pending reconnect', () => {
    const { client, clock } = setup();
    MockEventSource.last.fail();
    assert.equal(clock.pending.size, 1);
    client.close();
    assert.equal(clock.pending.size, 0);
    clock.advance(10 * 60 * 1000);
    assert.equal(MockEventSource.instances.length, 1);
  });

  test('ignores frames and errors that arrive after it', () => {
    const { client, clock, calls } = setup();
    const es = MockEventSource.last;
    client.close();
    const before = calls.length;
    es.frame('event', eventPayload(1), { id: '1:0' });
    es.fail();
    clock.advance(10 * 60 * 1000);
    assert.equal(calls.length, before);
    assert.equal(MockEventSource.instances.length, 1);
    assert.equal(client.entries().length, 0);
  });

  test('leaves no timer behind', () => {
    const { client, clock } = setup();
    MockEventSource.last.frame('ready', READY, { id: '10:4' });
    client.close();
    assert.equal(clock.pending.size, 0);
  });
});

describe('fetchStats', () => {
  test('uses the injected fetch with timezone_offset and token', async () => {
    const seen = [];
    const body = { burn: {}, tool_latency: [], watermarks: {}, watcher: { running: 'unknown' } };
    const fakeFetch = async (url) => {
      seen.push(url);
      return { ok: true, status: 200, json: async () => body, text: async () => '' };
    };
    const { client } = setup({ token: 'XYZ', fetch: fakeFetch });
    assert.deepEqual(await client.fetchStats(), body);
    await client.fetchHealth();
    const stats = new URL(seen[0], 'http://x');
    assert.equal(stats.pathname, '/api/live/stats');
    assert.equal(stats.searchParams.get('timezone_offset'), '120');
    assert.equal(stats.searchParams.get('token'), 'XYZ');
    const health = new URL(seen[1], 'http://x');
    assert.equal(health.pathname, '/healthz');
    assert.equal(health.searchParams.get('token'), 'XYZ');
  });

  test('rejects on an HTTP error with the status in the message', async () => {
    const fakeFetch = async () => ({ ok: false, status: 422, text: async () => '{"detail":"bad"}' });
    await assert.rejects(fetchStats({ fetch: fakeFetch }), /HTTP 422.*bad/);
  });
});

describe('construction', () => {
  test('throws a clear error without any EventSource', () => {
    const saved = globalThis.EventSource;
    delete globalThis.EventSource;
    try {
      assert.throws(() => connectLiveStream({}), /EventSource/);
    } finally {
      if (saved !== undefined) globalThis.EventSource = saved;
    }
  });
});

describe('our extensions: recent rows and event_update', () => {
  test('recent is asked for on a fresh connection only, never with a resume point', () => {
    const { clock } = setup({ recent: 100 });
    const first = MockEventSource.last;
    assert.equal(first.params.get('recent'), '100');
    first.frame('ready', READY, { id: '10:4' });
    first.frame('event', eventPayload(11), { id: '11:4' });
    first.fail();
    clock.advance(60_000);
    const second = MockEventSource.last;
    assert.notEqual(second, first, 'it reconnected');
    assert.equal(second.params.get('last_event_id'), '11:4');
    assert.equal(second.params.has('recent'), false);
  });

  test('event_update replaces the held entry and reaches its handler, without moving watermarks', () => {
    const updates = [];
    const { client, named } = setup({}, { onEventUpdate: (p) => updates.push(p) });
    const es = MockEventSource.last;
    es.frame('ready', READY, { id: '10:4' });
    es.frame('event', eventPayload(11, { output_tokens: 1 }), { id: '11:4' });
    es.frame('event_update', eventPayload(11, { output_tokens: 391 }), { id: '11:4' });
    assert.equal(named('event').length, 1, 'an update is not a new event');
    assert.equal(updates.length, 1);
    assert.equal(updates[0].output_tokens, 391);
    const held = client.entries().find((e) => e.kind === 'event' && e.id === 11);
    assert.equal(held.payload.output_tokens, 391);
    assert.equal(client.lastEventId(), '11:4');
  });

  test('apiUrl leaves recent out when resuming', () => {
    const url = new URL(apiUrl('/api/live/stream', { baseUrl: 'http://h', lastEventId: '1:2', recent: 50 }));
    assert.equal(url.searchParams.get('last_event_id'), '1:2');
    assert.equal(url.searchParams.has('recent'), false);
  });
});
