#!/usr/bin/env bash
# Quick start 1/2: set up .venv and start the lab on the bundled data (offline) at http://localhost:8501
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup_env.sh requirements.txt
export NUMBA_CACHE_DIR="$PWD/.numba_cache"
exec .venv/bin/python -m streamlit run app.py --server.headless true --browser.gatherUsageStats false "$@"
