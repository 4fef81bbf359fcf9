# Shared settings for the project's scripts (sourced, not run).
# One cargo target dir outside the clone, reused by the README's commands and CI.
export STITCHBOOK_CACHE="${STITCHBOOK_CACHE:-$HOME/.cache/stitchbook}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$STITCHBOOK_CACHE/target}"
# DuckDB's official prebuilt library (v1.5.6), fetched by scripts/setup.sh.
export DUCKDB_LIB_DIR="$STITCHBOOK_CACHE/duckdb"
export DUCKDB_NPM_PACKAGE="@duckdb/node-bindings-linux-x64@1.5.6-r.1"
export GSETTINGS_BACKEND=memory
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
