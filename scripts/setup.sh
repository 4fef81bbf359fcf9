#!/usr/bin/env bash
# Installs whatever is missing, and only that: Debian packages, DuckDB's prebuilt library,
# the UI's npm packages. Safe to re-run; quick when everything is there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES=(libwebkit2gtk-4.1-dev libgtk-3-dev libsoup-3.0-dev libjavascriptcoregtk-4.1-dev
  librsvg2-dev libayatana-appindicator3-dev libxdo-dev build-essential pkg-config file
  libssl-dev xvfb xauth webkit2gtk-driver imagemagick x11-apps xdotool curl)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

for tool in cargo node npm; do
  command -v "$tool" >/dev/null || { echo "setup: $tool is required (Rust toolchain, Node.js 20+)" >&2; exit 1; }
done

# DuckDB: link the official prebuilt libduckdb (published in the npm registry), never a
# 45-minute bundled compile.
if [ ! -f "$DUCKDB_LIB_DIR/libduckdb.so" ]; then
  echo "setup: fetching DuckDB's prebuilt library ($DUCKDB_NPM_PACKAGE)"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$DUCKDB_NPM_PACKAGE" >/dev/null && tar xzf ./*.tgz package/libduckdb.so)
  mkdir -p "$DUCKDB_LIB_DIR"
  mv "$tmp/package/libduckdb.so" "$DUCKDB_LIB_DIR/libduckdb.so"
  rm -rf "$tmp"
fi

# WebDriver bridge for the end-to-end tests of the app window.
if ! command -v tauri-driver >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
  echo "setup: installing tauri-driver"
  cargo install tauri-driver --locked --quiet
fi

# UI packages. (`npm install`, not `npm ci`: npm 11 here rejects its own lock file in ci mode.)
if [ ! -d "$ROOT/ui/node_modules" ] || [ "$ROOT/ui/package-lock.json" -nt "$ROOT/ui/node_modules/.package-lock.json" ]; then
  echo "setup: installing UI packages"
  (cd "$ROOT/ui" && npm install --no-audit --no-fund --loglevel=error)
fi
