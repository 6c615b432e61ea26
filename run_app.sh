#!/usr/bin/env bash
# Quick start 1/2: set up .venv and start the lab on the bundled data (offline) at http://localhost:8501
#
# The lab listens on this machine only (127.0.0.1): it has no accounts, and anyone who reaches it can train.
# To serve a classroom network, say so:
#   ./run_app.sh --classroom              listen on every interface (students open http://<this machine>:8501)
#   AELAB_HOST=10.0.0.5 ./run_app.sh      listen on one address
# Data the app reads: uploads, /usr/share/datasets, data/ and $AELAB_DATA_ROOT (see aelab/paths.py).
# Other arguments go to streamlit (e.g. --server.port 8600).
set -euo pipefail
cd "$(dirname "$0")"
host="${AELAB_HOST:-127.0.0.1}"
if [[ "${1:-}" == "--classroom" ]]; then
    host="0.0.0.0"
    shift
fi
scripts/setup_env.sh requirements.txt
export NUMBA_CACHE_DIR="$PWD/.numba_cache"
# aelab.ui.serve starts the first warm worker, then runs `streamlit run app.py` in the same process
exec .venv/bin/python -m aelab.ui.serve --server.headless true --browser.gatherUsageStats false \
    --server.address "$host" --server.maxUploadSize 50 "$@"  # MB, as aelab.paths.MAX_UPLOAD_BYTES
