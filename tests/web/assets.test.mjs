// Static checks on web/: the files the server embeds reference only each other (no CDN, no
// build step), and index.html carries the ids and hooks that tests and the server rely on.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const WEB = fileURLToPath(new URL('../../web/', import.meta.url));

/** URL path → file in web/. The Rust server must serve exactly these. */
export const SERVED = {
  '/': 'index.html',
  '/app.js': 'app.js',
  '/live.js': 'live.js',
  '/format.js': 'format.js',
  '/style.css': 'style.css',
};

const read = (name) => readFileSync(join(WEB, name), 'utf8');

test('every file in web/ is in the served list', () => {
  const files = readdirSync(WEB).sort();
  assert.deepEqual(files, Object.values(SERVED).sort());
});

test('modules import only served siblings by relative path', () => {
  const served = new Set(Object.keys(SERVED));
  for (const name of Object.values(SERVED).filter((n) => n.endsWith('.js'))) {
    const src = read(name);
    const specifiers = [...src.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]);
    for (const spec of specifiers) {
      assert.match(spec, /^\.\/[\w.-]+\.js$/, `${name} imports ${spec}`);
      assert.ok(served.has(spec.slice(1)), `${name} imports ${spec}, which the server does not serve`);
    }
    assert.doesNotMatch(src, /\bimport\s*\(/, `${name} uses a dynamic import`);
  }
});

test('no resource is loaded from another origin', () => {
  for (const name of Object.values(SERVED)) {
    const src = read(name).replaceAll('http://www.w3.org/2000/svg', '');
    assert.doesNotMatch(src, /(src|href)\s*=\s*["']?(https?:)?\/\//i, name);
    assert.doesNotMatch(src, /@import|url\(\s*["']?(https?:)?\/\//i, name);
    assert.doesNotMatch(src, /fetch\(\s*["']https?:/i, name);
  }
});

test('index.html loads the stylesheet and the app module relatively', () => {
  const html = read('index.html');
  assert.match(html, /<link rel="stylesheet" href="style\.css">/);
  assert.match(html, /<script type="module" src="app\.js"><\/script>/);
  assert.match(html, /<html lang="en">/);
  assert.match(html, /<meta name="color-scheme" content="light dark">/);
});

test('index.html has the stable ids, test ids and landmarks', () => {
  const html = read('index.html');
  for (const id of ['stream', 'burn-5m', 'burn-hour', 'burn-today', 'burn-projected', 'latency', 'conn', 'watcher-banner', 'jump-live']) {
    assert.match(html, new RegExp(`id="${id}"[^>]*data-testid="${id}"`), id);
  }
  assert.match(html, /<main\b/);
  assert.match(html, /<header\b/);
  assert.match(html, /<footer\b/);
  assert.match(html, /id="watcher-banner"[^>]*hidden/, 'banner hidden until the watcher state is known to be bad');
  assert.match(html, /class="ticker" aria-live="polite"/);
  assert.match(html, /permission prompts/);
});

test('stylesheet follows the colour scheme', () => {
  assert.match(read('style.css'), /@media \(prefers-color-scheme: dark\)/);
});
