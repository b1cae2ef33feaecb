// live.js: the browser client for stackunderflow-live's Server-Sent Events stream.
//
// One ES module, no dependencies, usable from the built-in Live page and from any other page
// that wants the same feed. It owns three things:
//
//   * the connection: one EventSource at a time on `/api/live/stream`, reopened by us (not by the
//     browser's own retry) with a capped, jittered backoff, and resumed with
//     `?last_event_id=<event_id>:<tool_call_id>` so that a reconnect neither skips nor repeats rows;
//   * the frames: each SSE frame is checked against the envelope `{type, ts, payload}` and handed
//     to the matching handler; anything malformed is counted and dropped, never thrown;
//   * a ring buffer of the latest `RING_SIZE` event / tool_call entries, oldest first.
//
// Handler contract (all optional, same shape as the upstream dashboard's client):
//   onReady(payload)             first frame of every connection: watermarks, watcher, burn interval
//   onEvent(payload, ts)         one new usage_events row
//   onToolCall(payload, ts)      one new message_tool_mart row
//   onBurnTick(payload, ts)      the rolling burn snapshot, every few seconds
//   onError(event)               the connection failed or went silent; we reconnect on our own
//   onStatus(state, detail)      extra: 'connecting' | 'live' | 'reconnecting' | 'closed'
//
// What it deliberately does not do: touch the DOM, format numbers, or poll the stats route by
// itself (`fetchStats` is there for the caller to schedule).

/** How many event / tool_call entries the ring buffer keeps. */
export const RING_SIZE = 100;

/** The SSE `event:` names the server sends; everything else is ignored. */
export const FRAME_TYPES = Object.freeze(['ready', 'event', 'tool_call', 'burn_tick', 'event_update']);

/** Reconnect delays: the first retry waits about `initialMs`, doubling up to `maxMs`. */
export const DEFAULT_BACKOFF = Object.freeze({ initialMs: 1000, maxMs: 30000 });

/**
 * With no frame at all for this long the connection is treated as dead and reopened. The server
 * sends a burn_tick every few seconds (its heartbeats are SSE comments, which scripts never see),
 * so silence this long means a proxy or a half-open socket swallowed the stream.
 */
export const DEFAULT_STALE_AFTER_MS = 30000;

const ID_PATTERN = /^\d+:\d+$/;

/**
 * Map the `watcher.running` value of `ready` or `/api/live/stats` to a word.
 * Only the booleans count; `"unknown"`, a missing value or anything else is "unknown".
 * @param {unknown} running
 * @returns {'running' | 'stopped' | 'unknown'}
 */
export function watcherState(running) {
  if (running === true) return 'running';
  if (running === false) return 'stopped';
  return 'unknown';
}

/** The browser's offset in whole minutes east of UTC (UTC+02:00 gives 120). */
export function localTimezoneOffset(now = new Date()) {
  const minutes = -now.getTimezoneOffset();
  return Number.isFinite(minutes) ? Math.round(minutes) + 0 : 0;
}

/** True for a well-formed stream position `<event_id>:<tool_call_id>`. */
export function isEventId(value) {
  return typeof value === 'string' && ID_PATTERN.test(value);
}

/**
 * Build an API URL with the query parameters every route takes.
 * `baseUrl` is '' for the page's own origin, or e.g. 'http://127.0.0.1:8787' (no trailing slash
 * needed). `token` and `lastEventId` are left out when empty.
 */
export function apiUrl(path, { baseUrl = '', token, timezoneOffset, lastEventId, recent } = {}) {
  const params = new URLSearchParams();
  const offset = timezoneOffset ?? localTimezoneOffset();
  params.set('timezone_offset', String(Math.round(Number(offset)) || 0));
  if (lastEventId) params.set('last_event_id', lastEventId);
  else if (Number.isSafeInteger(recent) && recent > 0) params.set('recent', String(recent));
  if (token) params.set('token', token);
  const base = String(baseUrl || '').replace(/\/+$/, '');
  return `${base}${path}?${params}`;
}

function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Parse and check one frame's data. Returns `{type, ts, payload}` or null when the frame must be
 * dropped: bad JSON, not an object, an envelope type that differs from the SSE event name, a
 * missing ts or payload, or (for rows) a payload without an integer id.
 * @param {string} eventName the SSE `event:` name the frame arrived under
 * @param {unknown} data the raw `data:` text
 */
export function parseFrame(eventName, data) {
  if (typeof data !== 'string') return null;
  let envelope;
  try {
    envelope = JSON.parse(data);
  } catch {
    return null;
  }
  if (!isPlainObject(envelope)) return null;
  const { type, ts, payload } = envelope;
  if (type !== eventName || !FRAME_TYPES.includes(type)) return null;
  if (typeof ts !== 'string' || !isPlainObject(payload)) return null;
  if (type !== 'ready' && type !== 'burn_tick' && !Number.isSafeInteger(payload.id)) return null;
  return { type, ts, payload };
}

/** Fixed-size buffer that keeps the newest `capacity` items, oldest first. */
export class RingBuffer {
  constructor(capacity = RING_SIZE) {
    this.capacity = capacity;
    this.items = [];
  }
  push(item) {
    this.items.push(item);
    if (this.items.length > this.capacity) this.items.splice(0, this.items.length - this.capacity);
  }
  toArray() {
    return this.items.slice();
  }
  get size() {
    return this.items.length;
  }
  clear() {
    this.items.length = 0;
  }
}

async function getJson(path, options = {}) {
  const doFetch = options.fetch ?? globalThis.fetch;
  if (typeof doFetch !== 'function') throw new TypeError('no fetch available');
  const res = await doFetch(apiUrl(path, options), {
    headers: { accept: 'application/json' },
    cache: 'no-store',
  });
  if (!res.ok) {
    let detail = '';
    try {
      detail = await res.text();
    } catch {
      // keep the status alone
    }
    throw new Error(`${path}: HTTP ${res.status}${detail ? `: ${detail.slice(0, 200)}` : ''}`);
  }
  return res.json();
}

/**
 * One snapshot of `/api/live/stats` (burn, tool_latency, watermarks, watcher).
 * Options: `baseUrl`, `token`, `timezoneOffset`, `fetch`.
 */
export function fetchStats(options = {}) {
  return getJson('/api/live/stats', options);
}

/** `/healthz` (status, mode, watcher, clients, version). Options as for `fetchStats`. */
export function fetchHealth(options = {}) {
  return getJson('/healthz', options);
}

function report(err) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(err);
  else console.error(err);
}

/**
 * Open the live stream and keep it open until `close()`.
 *
 * Options:
 *   baseUrl         '' (same origin) or an origin / path prefix
 *   token           sent as `?token=` on every request (EventSource cannot set headers)
 *   timezoneOffset  minutes east of UTC; defaults to the browser's
 *   lastEventId     'E:T' to resume from on the first connection
 *   EventSource     constructor to use (tests); defaults to the global one
 *   fetch           used by the returned `fetchStats()` / `fetchHealth()`
 *   backoff         {initialMs, maxMs}
 *   staleAfterMs    silence before a forced reconnect; 0 turns the watchdog off
 *   setTimeout, clearTimeout, random   injectable for tests
 *
 * Returns {close, entries, lastEventId, status, counters, fetchStats, fetchHealth, source}.
 */
export function connectLiveStream(handlers = {}, options = {}) {
  const EventSourceCtor = options.EventSource ?? globalThis.EventSource;
  if (typeof EventSourceCtor !== 'function') {
    throw new TypeError('connectLiveStream: no EventSource constructor available');
  }
  const setTimer = options.setTimeout ?? ((fn, ms) => globalThis.setTimeout(fn, ms));
  const clearTimer = options.clearTimeout ?? ((id) => globalThis.clearTimeout(id));
  const random = options.random ?? Math.random;
  const backoff = { ...DEFAULT_BACKOFF, ...(options.backoff ?? {}) };
  const staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const requestOptions = {
    baseUrl: options.baseUrl ?? '',
    token: options.token,
    timezoneOffset: options.timezoneOffset ?? localTimezoneOffset(),
    fetch: options.fetch,
  };

  const ring = new RingBuffer(RING_SIZE);
  // Resume point for the next connection; set from frames that carry an `id:` line.
  let lastId = isEventId(options.lastEventId) ? options.lastEventId : null;
  // Highest row id handed out per kind, so a replay that overlaps never produces a duplicate.
  const highest = { event: -1, tool_call: -1 };
  let source = null; // the EventSource currently in use, or null between connections
  let state = 'idle';
  let closed = false;
  let attempt = 0; // failed connections since the last `ready`; drives the backoff
  let retryTimer = null;
  let staleTimer = null;
  let staleMs = staleAfterMs;
  const counters = { frames: 0, dropped: 0, duplicates: 0, connections: 0, reconnects: 0 };

  function call(name, ...args) {
    const fn = handlers[name];
    if (typeof fn !== 'function') return;
    try {
      fn(...args);
    } catch (err) {
      report(err); // a broken handler must not stop the stream
    }
  }

  function setStatus(next, detail = {}) {
    if (state === next && next !== 'reconnecting') return;
    state = next;
    call('onStatus', next, detail);
  }

  function clearStale() {
    if (staleTimer !== null) clearTimer(staleTimer);
    staleTimer = null;
  }

  function armStale() {
    clearStale();
    if (closed || !(staleMs > 0)) return;
    const watched = source;
    staleTimer = setTimer(() => {
      staleTimer = null;
      if (watched === source) fail(watched, { type: 'stale', message: `no frame for ${staleMs} ms` });
    }, staleMs);
  }

  function open() {
    retryTimer = null;
    if (closed) return;
    // `recent` only matters on a connection without a resume point (the first one): the
    // server then starts that many rows back, so the view is not empty on a quiet machine.
    const url = apiUrl('/api/live/stream', { ...requestOptions, lastEventId: lastId, recent: options.recent });
    setStatus(counters.connections === 0 ? 'connecting' : 'reconnecting', { attempt });
    counters.connections += 1;
    const es = new EventSourceCtor(url);
    source = es;
    for (const type of FRAME_TYPES) {
      es.addEventListener(type, (ev) => onFrame(es, type, ev));
    }
    es.addEventListener('error', (ev) => fail(es, ev));
    armStale();
  }

  function onFrame(es, type, ev) {
    if (closed || es !== source) return;
    armStale();
    const frame = parseFrame(type, ev && ev.data);
    if (!frame) {
      counters.dropped += 1;
      return;
    }
    counters.frames += 1;
    const frameId = ev && isEventId(ev.lastEventId) ? ev.lastEventId : null;
    const { payload, ts } = frame;

    if (type === 'ready') {
      attempt = 0;
      const interval = Number(payload.burn_interval_seconds);
      if (staleAfterMs > 0 && Number.isFinite(interval) && interval > 0) {
        staleMs = Math.max(staleAfterMs, interval * 4000);
        armStale();
      }
      // A fresh connection starts at the server's watermarks. On a resume we keep our own
      // position, unless the server is behind it in both ids (its store was replaced).
      const wm = isPlainObject(payload.watermarks) ? payload.watermarks : null;
      if (wm) {
        const e = Number(wm.event_id);
        const t = Number(wm.tool_call_id);
        if (Number.isSafeInteger(e) && e < highest.event) highest.event = e;
        if (Number.isSafeInteger(t) && t < highest.tool_call) highest.tool_call = t;
      }
      if (frameId && (!lastId || behind(frameId, lastId))) lastId = frameId;
      setStatus('live');
      call('onReady', payload);
      return;
    }

    if (type === 'burn_tick') {
      call('onBurnTick', payload, ts);
      return;
    }

    if (type === 'event_update') {
      // A later copy of an API response carried more tokens: same row, new figures. It moves
      // no watermark and is never a duplicate; replace the entry we hold, if any.
      const held = ring.items.find((item) => item.kind === 'event' && item.id === payload.id);
      if (held) held.payload = payload;
      call('onEventUpdate', payload, ts);
      return;
    }

    // event or tool_call
    if (frameId) lastId = frameId;
    if (payload.id <= highest[type]) {
      counters.duplicates += 1;
      return;
    }
    highest[type] = payload.id;
    ring.push({ kind: type, id: payload.id, streamId: frameId, ts, payload });
    if (type === 'event') call('onEvent', payload, ts);
    else call('onToolCall', payload, ts);
  }

  // Both ids of `a` strictly below those of `b`.
  function behind(a, b) {
    const [ae, at] = a.split(':').map(Number);
    const [be, bt] = b.split(':').map(Number);
    return ae < be && at < bt;
  }

  function fail(es, ev) {
    if (closed || es !== source) return;
    clearStale();
    source = null;
    try {
      es.close();
    } catch {
      // already closed
    }
    call('onError', ev);
    const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(attempt, 16));
    const delayMs = Math.round(ceiling / 2 + (ceiling / 2) * random());
    attempt += 1;
    counters.reconnects += 1;
    setStatus('reconnecting', { attempt, delayMs });
    retryTimer = setTimer(open, delayMs);
  }

  function close() {
    if (closed) return;
    closed = true;
    clearStale();
    if (retryTimer !== null) clearTimer(retryTimer);
    retryTimer = null;
    const es = source;
    source = null;
    if (es) {
      try {
        es.close();
      } catch {
        // already closed
      }
    }
    setStatus('closed');
  }

  open();

  return {
    close,
    /** Latest event / tool_call entries, oldest first: {kind, id, streamId, ts, payload}. */
    entries: () => ring.toArray(),
    /** The position a reconnect would resume from ('E:T'), or null. */
    lastEventId: () => lastId,
    /** 'connecting' | 'live' | 'reconnecting' | 'closed'. */
    status: () => state,
    counters: () => ({ ...counters }),
    fetchStats: () => fetchStats(requestOptions),
    fetchHealth: () => fetchHealth(requestOptions),
    /** The EventSource in use right now (debugging and tests only). */
    get source() {
      return source;
    },
  };
}
