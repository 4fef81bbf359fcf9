#!/usr/bin/env bash
# The README's test command: install what is missing, then every check CI runs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$ROOT/scripts/setup.sh"
cd "$ROOT"

echo "== format and lints"
cargo fmt --all -- --check
(cd ui && npx tsc --noEmit)
(cd ui && npm run build --silent)
cargo clippy --workspace --all-targets -- -D warnings

echo "== engine, CLI and end-to-end tests"
cargo build -p stitchbook-app --features custom-protocol
cargo test -p stitchbook-engine -p stitchbook-tests --no-fail-fast
