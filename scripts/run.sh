#!/usr/bin/env bash
# The README's run command: install what is missing, build, and open the desktop app on the
# demo workspace (or on the workspace given as the first argument). With no display, the
# app runs under Xvfb and a screenshot is written to $STITCHBOOK_CACHE/screenshot.png.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$ROOT/scripts/setup.sh"

(cd "$ROOT/ui" && npm run build --silent)
(cd "$ROOT" && cargo build --workspace)

workspace="${1:-}"
if [ -z "$workspace" ]; then
  # Where the app looks for the demo when started with no workspace (the `directories`
  # data folder on Linux).
  workspace="${XDG_DATA_HOME:-$HOME/.local/share}/stitchbook/workspaces/demo.duckdb"
  if [ ! -f "$workspace" ] || [ -n "$(find "$ROOT/sample-data" -newer "$workspace" -type f | head -1)" ]; then
    echo "run: building the demo workspace at $workspace"
    "$ROOT/scripts/build-demo.sh" "$workspace"
  fi
fi

app="$CARGO_TARGET_DIR/debug/stitchbook-app"
if [ -n "${DISPLAY:-}" ]; then
  exec "$app" --workspace "$workspace"
fi
echo "run: no display; starting the app under Xvfb (screenshot: $STITCHBOOK_CACHE/screenshot.png, Ctrl-C to stop)"
xvfb-run -a -s "-screen 0 1280x800x24" bash -c "
  '$app' --workspace '$workspace' &
  pid=\$!
  sleep 6
  import -window root '$STITCHBOOK_CACHE/screenshot.png' && echo 'run: screenshot written'
  wait \$pid
"
