#!/usr/bin/env bash
# Runs every test: Rust (unit, integration against the real binary, golden
# transcript figures) and the browser side (node unit tests with a mocked
# EventSource, the page in headless Chromium, and the end-to-end test that
# drives the real daemon). Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked
cargo test --locked

if [ ! -d node_modules/playwright-core ]; then
  npm ci --no-audit --no-fund
fi
if ! command -v "${SUL_CHROMIUM:-chromium}" >/dev/null 2>&1; then
  echo "warning: chromium not found; the browser tests will be skipped (apt-get install chromium)" >&2
fi
SUL_BIN="$PWD/target/debug/stackunderflow-live" node --test tests/web/
