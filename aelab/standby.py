"""The app's warm workers: `python -m aelab.worker --standby` processes that import torch and warm up, then wait on
stdin for a run folder (aelab.worker.WorkerPool keeps them).

The first one starts before anything else in the server process (`prestart`: aelab.ui.serve, which ./run_app.sh
runs, calls it before Streamlit is even imported; app.py calls it too, for a plain `streamlit run app.py`), and the
pool takes it (`take`). Its ~3 CPU-s of imports (torch, the first optimizer step's torch._dynamo, the data) are the
longest job of a cold start and the one a first Launch waits for, while Streamlit's own start-up is one thread:
the other core is free for them. This module imports nothing heavy (it runs first)."""
from __future__ import annotations

import subprocess

from . import jobs

APP_ENV = {jobs.RESERVED_ENV: "1"}  # what the app's workers (runs, races, sweeps) get: one core left to the live view
_early: subprocess.Popen | None = None
_prestarted = False


def spawn(env: dict | None = None) -> subprocess.Popen:
    """A warm worker, a service of this process (it ends when this process does)."""
    return jobs.spawn("aelab.worker", "--standby", service=True, stdin=subprocess.PIPE, env=env)


def prestart() -> None:
    """Start the app's first warm worker now; once per process."""
    global _early, _prestarted
    if not _prestarted:
        _prestarted = True
        _early = spawn(APP_ENV)


def take() -> subprocess.Popen | None:
    """The worker prestart() started, for the pool that will hand it its first run (None when there is none)."""
    global _early
    early, _early = _early, None
    return early
