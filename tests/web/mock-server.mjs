// mock-server.mjs: a stand-in for the stackunderflow-live daemon, for trying the Live page
// without the Rust server and for the page tests.
//
// It serves web/ at the same URLs as the daemon and speaks the same wire format on
// /api/live/stream, /api/live/stats and /healthz, from an in-memory log of rows. It honours
// `last_event_id` (query or Last-Event-ID header), `timezone_offset`, and an optional `token`.
//
//   node tests/web/mock-server.mjs [--port 8787] [--watcher true|false|unknown] [--token T]
//                                  [--rate <rows per second>] [--quiet]
//
// (`npm run demo-page` runs it with made-up activity at 127.0.0.1:8787.)
//
// As a module: `startMockServer(options)` resolves to a handle with `url`, `addEvent()`,
// `addToolCall()`, `setWatcher()`, `setLatency()`, `dropStreams()`, `requests` and `close()`.

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const WEB = new URL('../../web/', import.meta.url);

const STATIC = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/live.js': ['live.js', 'text/javascript; charset=utf-8'],
  '/format.js': ['format.js', 'text/javascript; charset=utf-8'],
  '/style.css': ['style.css', 'text/css; charset=utf-8'],
};

const HEARTBEAT_MS = 15000;

function isoNow(ms = Date.now()) {
  return new Date(ms).toISOString();
}

function parseId(value) {
  const m = /^(\d+):(\d+)$/.exec(value ?? '');
  return m ? { event: Number(m[1]), tool: Number(m[2]) } : null;
}

/**
 * Start the mock daemon.
 * options: port (0 = any), host ('127.0.0.1'), watcher (true | false | 'unknown'), token,
 *          burnIntervalMs (5000), retryMs (2000), latency (tool_latency array), monthToDate (0)
 */
export async function startMockServer(options = {}) {
  const host = options.host ?? '127.0.0.1';
  const burnIntervalMs = options.burnIntervalMs ?? 5000;
  const state = {
    watcher: options.watcher ?? true,
    latency: options.latency ?? [],
    eventId: options.startEventId ?? 0,
    toolId: options.startToolId ?? 0,
    log: [], // {kind, streamId, ts, payload}
    extraMonthToDate: options.monthToDate ?? 0,
  };
  const streams = new Set();
  const requests = [];

  const watermark = () => `${state.eventId}:${state.toolId}`;

  function burn(tzOffsetMin = 0) {
    const now = Date.now();
    const shift = tzOffsetMin * 60000;
    const local = new Date(now + shift);
    const dayKey = local.toISOString().slice(0, 10);
    const monthKey = dayKey.slice(0, 7);
    let windowCost = 0;
    let today = 0;
    let month = state.extraMonthToDate;
    for (const row of state.log) {
      if (row.kind !== 'event') continue;
      const cost = Number(row.payload.cost_usd) || 0;
      const at = Date.parse(row.payload.ts);
      if (now - at <= 5 * 60000) windowCost += cost;
      const rowLocal = new Date(at + shift).toISOString();
      if (rowLocal.startsWith(dayKey)) today += cost;
      if (rowLocal.startsWith(monthKey)) month += cost;
    }
    const day = local.getUTCDate();
    const daysInMonth = new Date(Date.UTC(local.getUTCFullYear(), local.getUTCMonth() + 1, 0)).getUTCDate();
    const perMinute = windowCost / 5;
    return {
      window_minutes: 5,
      window_cost: windowCost,
      per_minute: perMinute,
      per_hour: perMinute * 60,
      today_cost: today,
      month_to_date: month,
      projected_month_end: month + (month / Math.max(day, 1)) * (daysInMonth - day),
      ts: isoNow(now).replace('Z', '+00:00'),
    };
  }

  function frame(type, payload, { id, ts } = {}) {
    const envelope = JSON.stringify({ type, ts: ts ?? payload.ts ?? isoNow(), payload });
    return `event: ${type}\n${id ? `id: ${id}\n` : ''}data: ${envelope}\n\n`;
  }

  function publish(row) {
    const text = frame(row.kind, row.payload, { id: row.streamId, ts: row.payload.ts });
    for (const s of streams) s.res.write(text);
  }

  function addEvent(fields = {}) {
    state.eventId += 1;
    const payload = {
      id: state.eventId,
      ts: isoNow(),
      project_id: 1,
      session_id: 'mock-session',
      model: 'claude-sonnet-4-5',
      cost_usd: 0.0125,
      input_tokens: 1200,
      output_tokens: 300,
      cache_read_tokens: 18000,
      cache_create_tokens: 0,
      cost_source: 'rate_card',
      project_slug: 'demo',
      project_name: 'demo',
      ...fields,
    };
    const row = { kind: 'event', streamId: watermark(), payload };
    state.log.push(row);
    publish(row);
    return payload;
  }

  function addToolCall(fields = {}) {
    state.toolId += 1;
    const payload = {
      id: state.toolId,
      ts: isoNow(),
      project_id: 1,
      session_id: 'mock-session',
      tool_name: 'Edit',
      file_path: '/home/dev/demo/src/main.rs',
      byte_count: 812,
      call_index: 0,
      project_slug: 'demo',
      project_name: 'demo',
      ...fields,
    };
    const row = { kind: 'tool_call', streamId: watermark(), payload };
    state.log.push(row);
    publish(row);
    return payload;
  }

  function checkToken(url, res) {
    if (!options.token) return true;
    if (url.searchParams.get('token') === options.token) return true;
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ detail: 'missing or wrong token' }));
    return false;
  }

  function timezoneOffset(url, res) {
    const raw = url.searchParams.get('timezone_offset');
    if (raw === null) return 0;
    if (!/^-?\d+$/.test(raw)) {
      res.writeHead(422, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ detail: 'timezone_offset must be an integer' }));
      return null;
    }
    return Number(raw);
  }

  function openStream(req, res, url) {
    const tz = timezoneOffset(url, res);
    if (tz === null) return;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    });
    const resume = parseId(url.searchParams.get('last_event_id') ?? req.headers['last-event-id']);
    res.write(`retry: ${options.retryMs ?? 2000}\n\n`);
    res.write(
      frame(
        'ready',
        {
          watermarks: { event_id: state.eventId, tool_call_id: state.toolId },
          watcher: { running: state.watcher },
          burn_interval_seconds: burnIntervalMs / 1000,
        },
        { id: resume ? `${resume.event}:${resume.tool}` : watermark(), ts: isoNow() },
      ),
    );
    if (resume) {
      for (const row of state.log) {
        const newer = row.kind === 'event' ? row.payload.id > resume.event : row.payload.id > resume.tool;
        if (newer) res.write(frame(row.kind, row.payload, { id: row.streamId, ts: row.payload.ts }));
      }
    }
    const sendTick = () => {
      const b = burn(tz);
      res.write(frame('burn_tick', b, { ts: b.ts }));
    };
    sendTick();
    const entry = {
      res,
      tick: setInterval(sendTick, burnIntervalMs),
      beat: setInterval(() => res.write(':\n\n'), HEARTBEAT_MS),
    };
    streams.add(entry);
    const drop = () => {
      clearInterval(entry.tick);
      clearInterval(entry.beat);
      streams.delete(entry);
    };
    req.on('close', drop);
    res.on('error', drop);
  }

  async function handle(req, res) {
    const url = new URL(req.url, `http://${req.headers.host ?? host}`);
    requests.push({ method: req.method, path: url.pathname, query: Object.fromEntries(url.searchParams), lastEventIdHeader: req.headers['last-event-id'] ?? null });

    if (STATIC[url.pathname]) {
      const [file, type] = STATIC[url.pathname];
      const body = await readFile(new URL(file, WEB));
      res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache' });
      res.end(body);
      return;
    }
    if (url.pathname === '/api/live/stream') {
      if (req.method !== 'GET') {
        res.writeHead(405, { allow: 'GET' });
        res.end();
        return;
      }
      if (checkToken(url, res)) openStream(req, res, url);
      return;
    }
    if (url.pathname === '/api/live/stats') {
      if (!checkToken(url, res)) return;
      const tz = timezoneOffset(url, res);
      if (tz === null) return;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          burn: burn(tz),
          tool_latency: typeof state.latency === 'function' ? state.latency() : state.latency,
          watermarks: { event_id: state.eventId, tool_call_id: state.toolId },
          watcher: { running: state.watcher },
        }),
      );
      return;
    }
    if (url.pathname === '/healthz') {
      if (!checkToken(url, res)) return;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'ok', mode: 'mock', watcher: state.watcher, clients: streams.size, version: '0.0.0-mock' }));
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, resolve);
  });
  const { port } = server.address();

  return {
    url: `http://${host}:${port}`,
    requests,
    addEvent,
    addToolCall,
    burn,
    setWatcher(value) {
      state.watcher = value;
    },
    setLatency(value) {
      state.latency = value;
    },
    /** End every open stream, as a crashed or restarted daemon would. */
    dropStreams() {
      for (const s of [...streams]) {
        clearInterval(s.tick);
        clearInterval(s.beat);
        streams.delete(s);
        s.res.destroy();
      }
    },
    get streamCount() {
      return streams.size;
    },
    close() {
      this.dropStreams();
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
    },
  };
}

// ---------------------------------------------------------------- demo mode

function demoActivity(server, ratePerSecond) {
  const projects = [
    ['stackunderflow-live', 'stackunderflow-live'],
    ['web-dashboard', 'Web dashboard'],
    ['infra', null],
  ];
  const models = [
    ['claude-sonnet-4-5', 'claude', 'rate_card'],
    ['claude-opus-4-1', 'claude', 'rate_card'],
    ['gpt-5-codex', 'codex', 'estimated'],
    ['mystery-model-x', 'claude', 'unknown'],
  ];
  const tools = ['Read', 'Edit', 'Bash', 'Grep', 'Write', 'Glob'];
  const files = ['src/main.rs', 'src/sse.rs', 'web/app.js', 'README.md', 'tests/web/live.test.mjs'];
  const pick = (list) => list[Math.floor(Math.random() * list.length)];
  const p95 = new Map(tools.map((t, i) => [t, 0.2 + i * 0.6]));

  server.setLatency(() =>
    tools.map((tool_name, i) => {
      const next = Math.max(0.05, p95.get(tool_name) * (0.85 + Math.random() * 0.3));
      p95.set(tool_name, next);
      return { tool_name, samples: 400 - i * 60, p50: next / 3, p95: next, p99: next * 1.8 };
    }),
  );

  return setInterval(() => {
    const [slug, name] = pick(projects);
    if (Math.random() < 0.45) {
      const [model, provider, source] = pick(models);
      server.addEvent({
        project_slug: slug,
        project_name: name,
        model,
        provider,
        cost_source: source,
        cost_usd: source === 'unknown' ? 0 : Math.round(Math.random() * 0.08 * 1e4) / 1e4,
        input_tokens: Math.floor(Math.random() * 5000),
        output_tokens: Math.floor(Math.random() * 900),
        cache_read_tokens: Math.floor(Math.random() * 60000),
      });
    } else {
      const tool = pick(tools);
      const writes = tool === 'Edit' || tool === 'Write' || tool === 'Read';
      server.addToolCall({
        project_slug: slug,
        project_name: name,
        tool_name: tool,
        file_path: writes ? `/home/dev/${slug}/${pick(files)}` : null,
        byte_count: writes ? Math.floor(Math.random() * 40000) : null,
      });
    }
  }, 1000 / ratePerSecond);
}

function parseArgs(argv) {
  const args = { port: 8787, watcher: true, rate: 1.5, token: undefined, quiet: false };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    if (a === '--port') args.port = Number(argv[++i]);
    else if (a === '--watcher') {
      const v = argv[++i];
      args.watcher = v === 'true' ? true : v === 'false' ? false : 'unknown';
    } else if (a === '--rate') args.rate = Number(argv[++i]);
    else if (a === '--token') args.token = argv[++i];
    else if (a === '--quiet') args.quiet = true;
    else {
      console.error(`unknown argument: ${a}`);
      process.exit(2);
    }
  }
  return args;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = parseArgs(process.argv.slice(2));
  const server = await startMockServer({ port: args.port, watcher: args.watcher, token: args.token, monthToDate: 41.37 });
  if (args.rate > 0) demoActivity(server, args.rate);
  const page = args.token ? `${server.url}/?token=${encodeURIComponent(args.token)}` : `${server.url}/`;
  console.log(page);
  if (!args.quiet) console.error('mock stackunderflow-live: made-up activity; Ctrl-C to stop');
  const stop = () => server.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
