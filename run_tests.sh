#!/usr/bin/env bash
# Quick start 2/2: set up .venv (+ Debian's Chromium for the browser test) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup_env.sh requirements-dev.txt
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser test (about a minute)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export NUMBA_CACHE_DIR="$PWD/.numba_cache"
exec .venv/bin/python -m pytest -q -n 2 "$@"
