// app.js: the Live page. Wires the stream client (live.js) and the formatters (format.js) to the
// DOM in index.html. Everything worth unit-testing lives in those two modules; this file only
// reads the page's query string, renders, and schedules the stats poll.

import { connectLiveStream, watcherState, RING_SIZE } from './live.js';
import {
  bannerState,
  describeEntry,
  formatClock,
  formatSeconds,
  formatUsd,
  LatencyHistory,
  sparklinePath,
} from './format.js';

/** How often `/api/live/stats` is polled for tool latency (and as a fallback for burn/watcher). */
const STATS_INTERVAL_MS = 5000;
/** Scrolled further than this from the top of the stream counts as "away from the live end". */
const LIVE_EDGE_PX = 8;
const SPARK_W = 80;
const SPARK_H = 20;
const SVG_NS = 'http://www.w3.org/2000/svg';

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---------------------------------------------------------------- connection indicator

function showConnection(state, detail = {}) {
  const conn = $('conn');
  conn.dataset.state = state;
  let text;
  switch (state) {
    case 'live':
      text = 'Live';
      break;
    case 'reconnecting':
      text =
        detail.delayMs !== undefined
          ? `Reconnecting in ${Math.max(1, Math.round(detail.delayMs / 1000))} s…`
          : 'Reconnecting…';
      break;
    case 'closed':
      text = 'Disconnected';
      break;
    default:
      text = 'Connecting…';
  }
  conn.querySelector('.conn-text').textContent = text;
}

// ---------------------------------------------------------------- watcher banner

function showWatcher(running) {
  const banner = $('watcher-banner');
  const view = bannerState(running);
  banner.dataset.state = view.state;
  banner.hidden = view.hidden;
  banner.setAttribute('role', view.state === 'stopped' ? 'alert' : 'status');
  banner.querySelector('.banner-title').textContent = view.title;
  banner.querySelector('.banner-text').textContent = view.text;
}

// ---------------------------------------------------------------- event stream

const stream = {
  list: null,
  unseen: 0, // entries added while the user was scrolled away from the live end
};

function atLiveEnd() {
  return stream.list.scrollTop <= LIVE_EDGE_PX;
}

function updateJumpButton() {
  const button = $('jump-live');
  const away = !atLiveEnd();
  button.hidden = !away;
  button.querySelector('.jump-text').textContent =
    stream.unseen > 0 ? `${stream.unseen} new · Jump to live` : 'Jump to live';
  if (!away) stream.unseen = 0;
}

function renderEntry(kind, payload, ts, streamId) {
  const view = describeEntry(kind, payload, ts);
  const li = el('li', `entry entry-${kind}`);
  li.dataset.kind = kind;
  li.dataset.id = String(payload.id);
  if (streamId) li.dataset.streamId = streamId;

  const time = el('time', 'e-time', view.time);
  const iso = payload.ts ?? ts;
  if (typeof iso === 'string') time.dateTime = iso;
  li.append(time);

  li.append(el('span', 'e-kind', kind === 'event' ? 'response' : 'tool'));
  const what = el('span', 'e-what', view.what);
  if (view.provider) what.title = `provider: ${view.provider}`;
  li.append(what);
  li.append(el('span', 'e-project', view.project));

  const detail = el('span', 'e-detail', view.detail);
  if (view.detailTitle) detail.title = view.detailTitle;
  li.append(detail);

  const amount = el('span', 'e-amount', view.amount);
  if (view.unknownPrice) {
    amount.classList.add('unknown-price');
    amount.title = 'No price is known for this model';
  } else if (kind === 'event' && payload.cost_source) {
    amount.title = `cost source: ${payload.cost_source}`;
  }
  li.append(amount);
  return li;
}

function addEntry(kind, payload, ts, streamId) {
  const list = stream.list;
  const wasLive = atLiveEnd();
  const before = list.scrollHeight;

  const li = renderEntry(kind, payload, ts, streamId);
  list.prepend(li);
  while (list.children.length > RING_SIZE) list.lastElementChild.remove();
  $('stream-empty').hidden = true;

  if (wasLive) {
    list.scrollTop = 0;
    li.classList.add('fresh');
  } else {
    // Keep what the reader is looking at in place while rows land above it.
    list.scrollTop += list.scrollHeight - before;
    stream.unseen += 1;
  }
  updateJumpButton();
}

function jumpToLive() {
  stream.unseen = 0;
  const smooth = !window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  stream.list.scrollTo({ top: 0, behavior: smooth ? 'smooth' : 'auto' });
  stream.list.focus({ preventScroll: true });
  updateJumpButton();
}

// ---------------------------------------------------------------- burn ticker

let lastBurnTs = -Infinity; // instant of the burn snapshot on screen; older ones are ignored

function showBurn(burn, ts) {
  if (!burn || typeof burn !== 'object') return;
  const at = Date.parse(burn.ts ?? ts);
  if (Number.isFinite(at)) {
    if (at < lastBurnTs) return;
    lastBurnTs = at;
  }
  const set = (id, value) => {
    const node = $(id);
    const text = formatUsd(value);
    if (node.textContent !== text) node.textContent = text;
  };
  set('burn-5m', burn.window_cost);
  set('burn-hour', burn.per_hour);
  set('burn-today', burn.today_cost);
  set('burn-projected', burn.projected_month_end);
  $('burn-mtd').textContent =
    burn.month_to_date !== undefined ? `Month to date: ${formatUsd(burn.month_to_date)}` : '';
  $('burn-updated').textContent = `updated ${formatClock(burn.ts ?? ts)}`;
}

// ---------------------------------------------------------------- latency

const latencyHistory = new LatencyHistory(60);

function sparkline(values) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('viewBox', `0 0 ${SPARK_W} ${SPARK_H}`);
  svg.setAttribute('width', String(SPARK_W));
  svg.setAttribute('height', String(SPARK_H));
  svg.setAttribute('role', 'img');
  const first = values[0];
  const last = values[values.length - 1];
  svg.setAttribute(
    'aria-label',
    values.length > 1
      ? `P95 over the last ${values.length} refreshes, from ${formatSeconds(first)} to ${formatSeconds(last)}`
      : 'Not enough history yet',
  );
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute('d', sparklinePath(values, SPARK_W, SPARK_H, 2));
  svg.append(path);
  return svg;
}

function showLatency(toolLatency) {
  const rows = latencyHistory.record(toolLatency);
  const body = $('latency').tBodies[0];
  const fresh = [];
  if (rows.length === 0) {
    const tr = el('tr', 'placeholder');
    const td = el('td', '', 'No tool calls with a result yet.');
    td.colSpan = 4;
    tr.append(td);
    fresh.push(tr);
  }
  for (const row of rows) {
    const tr = el('tr');
    tr.dataset.tool = row.tool_name;
    tr.append(el('th', 'tool', row.tool_name));
    tr.firstChild.scope = 'row';
    const p95 = el('td', 'num p95', formatSeconds(row.p95));
    p95.title = `P50 ${formatSeconds(row.p50)} · P95 ${formatSeconds(row.p95)} · P99 ${formatSeconds(row.p99)}`;
    tr.append(p95);
    const sparkCell = el('td', 'spark-cell');
    sparkCell.append(sparkline(row.history));
    tr.append(sparkCell);
    tr.append(el('td', 'num samples', String(row.samples ?? '')));
    fresh.push(tr);
  }
  body.replaceChildren(...fresh);
  $('latency-updated').textContent = `updated ${formatClock(new Date())}`;
}

function showStatsError(err) {
  $('latency-updated').textContent = 'stats unavailable';
  $('latency-updated').title = String(err && err.message ? err.message : err);
}

// ---------------------------------------------------------------- start

function start() {
  stream.list = $('stream');
  const query = new URLSearchParams(window.location.search);
  const token = query.get('token') || undefined;

  showConnection('connecting');

  const client = connectLiveStream(
    {
      onStatus: showConnection,
      onReady(payload) {
        if (payload.watcher && typeof payload.watcher === 'object') showWatcher(payload.watcher.running);
      },
      onEvent(payload, ts) {
        addEntry('event', payload, ts, client.lastEventId());
      },
      onToolCall(payload, ts) {
        addEntry('tool_call', payload, ts, client.lastEventId());
      },
      onEventUpdate(payload, ts) {
        const old = stream.list.querySelector(`li[data-kind="event"][data-id="${Number(payload.id)}"]`);
        if (old) old.replaceWith(renderEntry('event', payload, ts, old.dataset.streamId));
      },
      onBurnTick: showBurn,
    },
    { token, recent: RING_SIZE },
  );

  stream.list.addEventListener('scroll', updateJumpButton, { passive: true });
  $('jump-live').addEventListener('click', jumpToLive);

  // Stats poll: a chain of timeouts so a slow response never overlaps the next request.
  let pollTimer = null;
  async function poll() {
    pollTimer = null;
    if (!document.hidden) {
      try {
        const stats = await client.fetchStats();
        showLatency(stats.tool_latency);
        if (stats.watcher && typeof stats.watcher === 'object') showWatcher(stats.watcher.running);
        showBurn(stats.burn);
        $('latency-updated').title = '';
      } catch (err) {
        showStatsError(err);
      }
    }
    pollTimer = window.setTimeout(poll, STATS_INTERVAL_MS);
  }
  poll();
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && pollTimer !== null) {
      window.clearTimeout(pollTimer);
      poll();
    }
  });

  client
    .fetchHealth()
    .then((health) => {
      const parts = ['stackunderflow-live'];
      if (health.version) parts[0] += ` ${health.version}`;
      if (health.mode) parts.push(`mode: ${health.mode}`);
      $('server-info').textContent = parts.join(' · ');
    })
    .catch(() => {
      // the footer is cosmetic
    });

  window.addEventListener('pagehide', () => client.close());
  // A page restored from the back/forward cache has a closed client: start over.
  window.addEventListener('pageshow', (ev) => {
    if (ev.persisted) window.location.reload();
  });
  // For debugging from the console; not an API.
  window.sulLive = { client, watcherState };
}

if (typeof document !== 'undefined') {
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
}
