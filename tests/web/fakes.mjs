// Test doubles shared by the unit tests: a scriptable EventSource and a manual clock.
// Not a test file itself (node --test only picks up *.test.mjs here).

/** Stands in for the browser's EventSource; every instance is kept in `MockEventSource.instances`. */
export class MockEventSource {
  static instances = [];

  static reset() {
    MockEventSource.instances = [];
  }

  static get last() {
    return MockEventSource.instances[MockEventSource.instances.length - 1];
  }

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.listeners = new Map();
    this.closeCalls = 0;
    MockEventSource.instances.push(this);
  }

  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
  }

  /** Deliver one SSE frame: `event: type`, optional `id:`, `data:` (object → JSON). */
  emit(type, data, lastEventId = '') {
    const text = typeof data === 'string' ? data : JSON.stringify(data);
    for (const fn of this.listeners.get(type) ?? []) fn({ type, data: text, lastEventId });
  }

  /** Deliver a frame in the server's envelope. */
  frame(type, payload, { ts = '2025-05-10T12:00:00.000Z', id = '' } = {}) {
    this.emit(type, { type, ts, payload }, id);
  }

  fail() {
    for (const fn of this.listeners.get('error') ?? []) fn({ type: 'error' });
  }

  close() {
    this.closeCalls += 1;
    this.readyState = 2;
  }

  get params() {
    return new URL(this.url, 'http://localhost').searchParams;
  }
}

/** setTimeout / clearTimeout that only run when the test advances time. */
export class ManualClock {
  constructor() {
    this.now = 0;
    this.nextId = 1;
    this.pending = new Map(); // id → {at, fn, ms}
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.pending.set(id, { at: this.now + ms, fn, ms });
      return id;
    };
    this.clearTimeout = (id) => {
      this.pending.delete(id);
    };
  }

  /** Delays of the timers still pending, soonest first. */
  get delays() {
    return [...this.pending.values()].sort((a, b) => a.at - b.at).map((t) => t.ms);
  }

  advance(ms) {
    const until = this.now + ms;
    for (;;) {
      let next = null;
      for (const [id, t] of this.pending) {
        if (t.at <= until && (!next || t.at < next[1].at)) next = [id, t];
      }
      if (!next) break;
      this.pending.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
    }
    this.now = until;
  }
}
