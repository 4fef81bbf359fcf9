#!/usr/bin/env bash
# Builds the demo workspace from sample-data/: a team that moved from Amplitude (an Export API
# zip for late November 2023) to PostHog (batch exports from January 2024), plus its mobile
# backend's own CSV log with a column mapping. Usage: scripts/build-demo.sh <workspace.duckdb>
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
out="$1"
rm -f "$out" "$out.wal"
mkdir -p "$(dirname "$out")"
bin="$CARGO_TARGET_DIR/debug/stitchbook"
"$bin" import "$out" "$ROOT/sample-data/amplitude/demo_2023-11.zip"
"$bin" import "$out" "$ROOT/sample-data/posthog"
"$bin" import "$out" "$ROOT/sample-data/generic/app_events.csv" --mapping "$ROOT/sample-data/generic/app_events.mapping.toml"
