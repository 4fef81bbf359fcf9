#!/usr/bin/env bash
# Builds the demo workspace from sample-data/ (engine/src/demo.rs says what goes in: a team
# that moved from Amplitude to PostHog, plus its backend's CSV log with a column mapping).
# Usage: scripts/build-demo.sh <workspace.duckdb>
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$CARGO_TARGET_DIR/debug/stitchbook" demo "$1" --sample-data "$ROOT/sample-data"
