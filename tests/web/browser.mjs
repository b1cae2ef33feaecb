// Shared by the browser tests: find playwright-core and Chromium, or say why we cannot.
// Not a test file itself.

import { existsSync } from 'node:fs';

/** Flags for a quiet, offline, headless Chromium in a container. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-quic',
  '--disable-component-update',
  '--disable-sync',
];

/** Path of the Chromium binary: $SUL_CHROMIUM, else the Debian package's. */
export const CHROMIUM_PATH = process.env.SUL_CHROMIUM || '/usr/bin/chromium';

/**
 * Resolve `{chromium}` (playwright-core's launcher) or `{skip: reason}`.
 * Never throws: a machine without the browser skips the browser tests.
 */
export async function loadBrowser() {
  if (!existsSync(CHROMIUM_PATH)) {
    return { skip: `no Chromium at ${CHROMIUM_PATH} (apt-get install chromium, or set SUL_CHROMIUM)` };
  }
  try {
    const { chromium } = await import('playwright-core');
    return { chromium };
  } catch {
    return { skip: 'playwright-core is not installed (run npm ci)' };
  }
}

export function launch(chromium) {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, timeout: 30000 });
}
