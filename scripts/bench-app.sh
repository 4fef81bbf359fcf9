#!/usr/bin/env bash
# App benchmark in the real window under Xvfb: start-up to the first chart on a large
# workspace, and opening and scrolling a 100,000-event timeline. Prints figures.
#   scripts/bench-app.sh BIG_WORKSPACE   (e.g. a 10M-event workspace from `stitchbook bench insights`)
# The heavy-person workspace is generated (one person, 100,000 events) under $STITCHBOOK_CACHE.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/env.sh"
big="${1:?usage: scripts/bench-app.sh BIG_WORKSPACE}"
heavy_dir="$STITCHBOOK_CACHE/bench-heavy"
mkdir -p "$heavy_dir"
if [ ! -f "$heavy_dir/heavy.duckdb" ]; then
  python3 "$ROOT/tests/bench/heavy_person.py" "$heavy_dir/heavy.jsonl"
  "$CARGO_TARGET_DIR/debug/stitchbook" import "$heavy_dir/heavy.duckdb" "$heavy_dir/heavy.jsonl" >/dev/null
fi
(cd "$ROOT/ui" && npm run build >/dev/null)
(cd "$ROOT" && cargo build -p stitchbook-app -p stitchbook-engine >/dev/null)
STITCHBOOK_APP="$CARGO_TARGET_DIR/debug/stitchbook-app" STITCHBOOK_BIG="$big" STITCHBOOK_HEAVY="$heavy_dir/heavy.duckdb" \
  xvfb-run -a -s "-screen 0 1280x800x24" node "$ROOT/tests/bench/app-perf.mjs"
