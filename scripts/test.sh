#!/usr/bin/env bash
# The README's test command: install what is missing, then every check CI runs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$ROOT/scripts/setup.sh"
cd "$ROOT"

echo "== format and lints"
cargo fmt --all -- --check
(cd ui && npx tsc --noEmit)
(cd ui && npx vitest run)
(cd ui && npm run build --silent)
cargo clippy --workspace --all-targets -- -D warnings

echo "== engine, CLI and end-to-end tests"
cargo build --workspace
cargo test --workspace --no-fail-fast

echo "== IPC bindings are fresh (cargo test regenerates ui/src/lib/ipc/bindings)"
if [ -d "$ROOT/.git" ] && [ -n "$(git -C "$ROOT" status --porcelain -- ui/src/lib/ipc/bindings)" ]; then
  git -C "$ROOT" status --porcelain -- ui/src/lib/ipc/bindings
  echo "the generated TypeScript bindings changed: run cargo test and commit them" >&2
  exit 1
fi

echo "== the app window, driven over WebDriver under Xvfb"
demo="$STITCHBOOK_CACHE/e2e-demo.duckdb"
"$ROOT/scripts/build-demo.sh" "$demo" >/dev/null
# Event data is untrusted: a workspace whose names and values are HTML/script payloads.
xss="$STITCHBOOK_CACHE/e2e-xss.duckdb"
rm -f "$xss" "$xss.wal"
"$CARGO_TARGET_DIR/debug/stitchbook" import "$xss" "$ROOT/tests/e2e/fixtures/xss_events.jsonl" >/dev/null
# Big enough that a rebuild takes seconds: the window must keep answering during it.
big="$STITCHBOOK_CACHE/e2e-big.duckdb"
rm -f "$big" "$big.wal" "$STITCHBOOK_CACHE/e2e-big.jsonl.gz"
"$CARGO_TARGET_DIR/debug/stitchbook" generate --events 400000 --format posthog --out "$STITCHBOOK_CACHE/e2e-big.jsonl.gz" >/dev/null
"$CARGO_TARGET_DIR/debug/stitchbook" import "$big" "$STITCHBOOK_CACHE/e2e-big.jsonl.gz" >/dev/null
export PATH="$HOME/.cargo/bin:$PATH"
STITCHBOOK_APP="$CARGO_TARGET_DIR/debug/stitchbook-app" STITCHBOOK_DEMO="$demo" STITCHBOOK_XSS="$xss" STITCHBOOK_BIG="$big" \
  SCREENSHOT_DIR="$STITCHBOOK_CACHE/screenshots" \
  xvfb-run -a -s "-screen 0 1280x800x24" node --test "$ROOT/tests/e2e/"
