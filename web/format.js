// format.js: the Live page's pure helpers (no DOM, no network), kept apart so node can test them.
//
// Money, bytes, durations and clock times as the page prints them; the text of one stream entry;
// the watcher banner's state; the SVG path of a sparkline; the client-side P95 history.

import { watcherState } from './live.js';

const DASH = '\u2014';

/**
 * Dollars for display. Amounts under ten cents get four decimals so a single cheap call is not
 * "$0.00"; everything else gets cents, with thousands separators. null / undefined / NaN give an em dash.
 */
export function formatUsd(value) {
  if (value === null || value === undefined || value === '') return DASH;
  const n = Number(value);
  if (!Number.isFinite(n)) return DASH;
  const sign = n < 0 ? '-' : '';
  const abs = Math.abs(n);
  if (abs === 0) return '$0.00';
  if (abs < 0.00005) return `${sign}<$0.0001`;
  // Below ten cents, four decimals keep two significant digits: $0.0123, $0.0090.
  if (abs < 0.09995) return `${sign}$${abs.toFixed(4)}`;
  const fixed = abs.toFixed(2);
  const [whole, cents] = fixed.split('.');
  return `${sign}$${whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',')}.${cents}`;
}

/**
 * The cost cell of an event row. An unknown model's price is "price unknown", never "$0.00";
 * an estimate is prefixed with "~".
 */
export function formatCost(costUsd, costSource) {
  if (costSource === 'unknown') return 'price unknown';
  if (costUsd === null || costUsd === undefined || !Number.isFinite(Number(costUsd))) {
    return 'price unknown';
  }
  const text = formatUsd(costUsd);
  return costSource === 'estimated' ? `~${text}` : text;
}

/** Byte counts in binary units: "512 B", "1.5 KiB", "3.2 MiB". */
export function formatBytes(value) {
  if (value === null || value === undefined || value === '') return '';
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) return '';
  if (n < 1024) return `${Math.round(n)} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v >= 100 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

/** Token counts: 950, "12.3k", "4.1M". */
export function formatCount(value) {
  const n = Number(value);
  if (!Number.isFinite(n)) return '0';
  if (Math.abs(n) < 1000) return String(Math.round(n));
  if (Math.abs(n) < 1e6) return `${(n / 1e3).toFixed(n < 1e4 ? 1 : 0)}k`;
  return `${(n / 1e6).toFixed(1)}M`;
}

/** Latency in seconds as "850 ms", "2.4 s", "14 s", "3m 05s". */
export function formatSeconds(value) {
  if (value === null || value === undefined || value === '') return DASH;
  const s = Number(value);
  if (!Number.isFinite(s) || s < 0) return DASH;
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const whole = Math.round(s);
  return `${Math.floor(whole / 60)}m ${String(whole % 60).padStart(2, '0')}s`;
}

/** The local wall-clock time (HH:MM:SS, 24 h) of an ISO timestamp; the input itself if unparsable. */
export function formatClock(ts) {
  const d = ts instanceof Date ? ts : new Date(ts);
  if (Number.isNaN(d.getTime())) return typeof ts === 'string' && ts ? ts : DASH;
  const p = (n) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Best human name for the project of a row. */
export function projectLabel(payload) {
  if (payload.project_name) return String(payload.project_name);
  if (payload.project_slug) return String(payload.project_slug);
  if (payload.project_id !== null && payload.project_id !== undefined) {
    return `project #${payload.project_id}`;
  }
  return 'unknown project';
}

/** The last `keep` components of a path, with a leading ellipsis when shortened. */
export function shortPath(path, keep = 3) {
  if (!path) return '';
  const parts = String(path).split(/[\\/]+/).filter(Boolean);
  if (parts.length <= keep) return String(path);
  return `\u2026/${parts.slice(-keep).join('/')}`;
}

/**
 * What one stream entry shows, as plain strings (the page puts them into elements).
 * kind 'event' → what = model, detail = tokens, amount = cost.
 * kind 'tool_call' → what = tool name, detail = file path, amount = bytes.
 */
export function describeEntry(kind, payload, ts) {
  const time = formatClock(payload.ts ?? ts);
  const project = projectLabel(payload);
  if (kind === 'event') {
    const tokens = [
      `${formatCount(payload.input_tokens)} in`,
      `${formatCount(payload.output_tokens)} out`,
    ];
    const cached = Number(payload.cache_read_tokens || 0) + Number(payload.cache_create_tokens || 0);
    if (cached > 0) tokens.push(`${formatCount(cached)} cache`);
    return {
      time,
      project,
      provider: payload.provider ? String(payload.provider) : '',
      what: payload.model ? String(payload.model) : 'unknown model',
      detail: tokens.join(' \u00b7 '),
      detailTitle: '',
      amount: formatCost(payload.cost_usd, payload.cost_source),
      unknownPrice: formatCost(payload.cost_usd, payload.cost_source) === 'price unknown',
    };
  }
  return {
    time,
    project,
    provider: payload.provider ? String(payload.provider) : '',
    what: payload.tool_name ? String(payload.tool_name) : 'tool',
    detail: shortPath(payload.file_path),
    detailTitle: payload.file_path ? String(payload.file_path) : '',
    amount: formatBytes(payload.byte_count),
    unknownPrice: false,
  };
}

/**
 * The watcher banner for a `watcher.running` value: state 'running' hides it, 'stopped' is the
 * loud "watcher not running", 'unknown' a softer note.
 */
export function bannerState(running) {
  const state = watcherState(running);
  if (state === 'running') return { state, hidden: true, title: '', text: '' };
  if (state === 'stopped') {
    return {
      state,
      hidden: false,
      title: 'Watcher not running',
      text:
        'The transcript watcher has stopped, so new agent activity will not show up here. ' +
        'Rows already in the store are still served; restart the watcher to resume.',
    };
  }
  return {
    state,
    hidden: false,
    title: 'Watcher state unknown',
    text: 'The server cannot tell whether the transcript watcher is running; new activity may be late or missing.',
  };
}

/**
 * SVG path data for a sparkline of `values` inside a `width` × `height` box with `pad` pixels of
 * margin. The lowest value sits at the bottom, the highest at the top; a flat series is drawn
 * across the middle. Non-finite values are skipped. Returns '' when there is nothing to draw.
 */
export function sparklinePath(values, width = 80, height = 20, pad = 2) {
  const pts = (values ?? [])
    .filter((v) => v !== null && v !== '' && typeof v !== 'boolean')
    .map(Number)
    .filter(Number.isFinite);
  if (pts.length === 0) return '';
  const round = (n) => Math.round(n * 10) / 10;
  const innerW = Math.max(0, width - 2 * pad);
  const innerH = Math.max(0, height - 2 * pad);
  const min = Math.min(...pts);
  const max = Math.max(...pts);
  const y = (v) => (max === min ? pad + innerH / 2 : pad + innerH - ((v - min) / (max - min)) * innerH);
  if (pts.length === 1) {
    const yy = round(y(pts[0]));
    return `M${round(pad)},${yy}L${round(pad + innerW)},${yy}`;
  }
  const step = innerW / (pts.length - 1);
  return pts
    .map((v, i) => `${i === 0 ? 'M' : 'L'}${round(pad + i * step)},${round(y(v))}`)
    .join('');
}

/**
 * Client-side history of each tool's P95, one point per stats poll, `limit` points per tool.
 * Tools that drop out of the server's top list keep their history until they are `limit`
 * polls stale, so a tool that comes back does not start from nothing.
 */
export class LatencyHistory {
  constructor(limit = 60) {
    this.limit = limit;
    this.series = new Map(); // tool name → array of P95 seconds, oldest first
    this.lastSeen = new Map(); // tool name → poll number it last appeared in
    this.polls = 0;
  }

  /** Record one `tool_latency` array; returns the rows to show, in the server's order. */
  record(toolLatency) {
    this.polls += 1;
    const rows = [];
    for (const row of Array.isArray(toolLatency) ? toolLatency : []) {
      if (!row || typeof row.tool_name !== 'string') continue;
      const p95 = row.p95 === null || row.p95 === '' ? NaN : Number(row.p95);
      const series = this.series.get(row.tool_name) ?? [];
      if (Number.isFinite(p95)) series.push(p95);
      if (series.length > this.limit) series.splice(0, series.length - this.limit);
      this.series.set(row.tool_name, series);
      this.lastSeen.set(row.tool_name, this.polls);
      rows.push({ ...row, history: series.slice() });
    }
    for (const [name, seen] of this.lastSeen) {
      if (this.polls - seen >= this.limit) {
        this.lastSeen.delete(name);
        this.series.delete(name);
      }
    }
    return rows;
  }

  history(toolName) {
    return (this.series.get(toolName) ?? []).slice();
  }
}
