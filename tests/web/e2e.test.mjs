// `node --test tests/web/` only picks up *.test.mjs files; this pulls the end-to-end test
// (tests/web/e2e.mjs, which skips without SUL_BIN) into that run.
import './e2e.mjs';
