"""Server-wide singletons and per-run caches: the run store, the warm worker pool, the UMAP process.

`cache_resource` holds only shared things (the pool, the projection process, Run readers, loaded
datasets); per-user choices live in `st.session_state` and the URL.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import streamlit as st

from .. import jobs, standby
from ..config import DataConfig, RunConfig
from ..embed import READY_FILE, FrameLayouts
from ..runs import Run, RunStore

RUNS_ENV = "AELAB_RUNS_DIR"  # where runs are stored (tests point it at a temporary folder)
UMAP_ENV = "AELAB_UMAP"  # "0" turns the UMAP projection process off (maps stay PCA)


def runs_dir() -> Path:
    return Path(os.environ.get(RUNS_ENV, "runs"))


def store() -> RunStore:
    return RunStore(runs_dir())


# A new warm worker imports torch for seconds: only once the launched runs have ended, and soon after, so that
# a Launch right after Stop (change one setting, go again) finds it warm: it was up to 5 s later, and a relaunch 8 s
# after a Stop waited 5.8 s for a worker still importing. The 1 s lets the page and the map draw the run's end.
STANDBY_DELAY_S = 1.0
# Two warm workers, so that a race's two runs start as fast as one run: with one, its second arm was a fresh process
# importing torch and the race began 4.1-7.4 s after the click. The second starts this long after the first (one
# import at a time) and, like the first, not beside a launched run (unless none has been left for a minute).
STANDBY_GAP_S = 10.0
WARM_WORKERS_ENV = "AELAB_WARM_WORKERS"  # how many warm workers the app keeps (default 2; 1 saves ~0.4 GB)
WORKER_ENV = standby.APP_ENV  # what the app's workers (runs, races, sweeps) get: one core left to the live view


@st.cache_resource(show_spinner=False)
def _pool(root: str):
    from ..worker import WorkerPool

    # a test's in-process AppTest keeps one (its pools outlive each test, and every second standby is an import)
    return WorkerPool(root, respawn_delay_s=STANDBY_DELAY_S, env=WORKER_ENV, spares=warm_workers() if _served else 1,
                      spare_gap_s=STANDBY_GAP_S, first=standby.take())


def warm_workers() -> int:
    """AELAB_WARM_WORKERS, at least 1; a value that is not a whole number is said on stderr and read as 2."""
    raw = os.environ.get(WARM_WORKERS_ENV, "2")
    try:
        return max(1, int(raw))
    except ValueError:
        print(f"aelab: {WARM_WORKERS_ENV}={raw!r} is not a whole number; keeping 2 warm workers", file=sys.stderr)
        return 2


def pool():
    """Warm training workers of this server (one per arm of a race): a click starts training without paying the
    imports."""
    return _pool(str(runs_dir()))


@st.cache_resource(show_spinner=False)
def _projector(root: str) -> subprocess.Popen | None:
    if os.environ.get(UMAP_ENV, "1") == "0":
        return None
    Path(root).mkdir(parents=True, exist_ok=True)
    # a service of this server (it ends when the server does), at low priority (embed.serve nices itself)
    return jobs.spawn("aelab.embed", "--serve", root, log=Path(root) / ".embed.log", service=True,
                      env={"NUMBA_NUM_THREADS": "1"})  # leave the other cores to training


def start_projector() -> None:
    """Start the long-lived UMAP process once per app start (it warms itself up in the background)."""
    _projector(str(runs_dir()))


def start_services() -> None:
    """The warm worker and the projector of this server (once; again only if the server's runs folder changes)."""
    if _served:
        one_thread_each()
    pool()
    start_projector()


def one_thread_each() -> None:
    """One BLAS and one torch thread in the server. What it computes is small (a PCA of 1,000 codes, a grid of
    probe images) and runs beside a training worker and a browser on few cores, where a second thread mostly
    waits for a core: a live run's PCA maps took 4-30x longer with OpenBLAS's two threads (scripts/bench_ui).
    Cheap on every page run; torch is only ever imported later, by a page that needs it."""
    global _blas_limited
    if not _blas_limited:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # every BLAS / OpenMP library loaded so far (numpy's OpenBLAS)
        _blas_limited = True
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads") and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


_blas_limited = False
_served = False  # set by app.py's lifespan: this process is the app's server (not a test's AppTest)


def serve() -> None:
    """The server process starts: its services start now, and its numeric libraries use one thread."""
    global _served
    _served = True
    start_services()


def umap_state() -> str:
    """'off', 'warming' or 'ready'."""
    proc = _projector(str(runs_dir()))
    if proc is None or proc.poll() is not None:
        return "off"
    return "ready" if (runs_dir() / READY_FILE).exists() else "warming"


@st.cache_resource(show_spinner=False)
def _run_readers(root: str) -> dict:
    return {}


def get_run(run_id: str | None) -> Run | None:
    """The same Run object across reruns, so metrics are read incrementally."""
    if not run_id:
        return None
    readers = _run_readers(str(runs_dir()))
    if run_id not in readers:
        try:
            readers[run_id] = store().get(run_id)
        except KeyError:
            return None
    return readers[run_id]


@st.cache_resource(show_spinner=False)
def _frame_layouts(root: str) -> dict:
    return {}


def frame_layouts(run: Run) -> FrameLayouts:
    cache = _frame_layouts(str(runs_dir()))
    return cache.setdefault(run.id, FrameLayouts()).update(run.snapshot_files())


@st.cache_resource(show_spinner="loading the dataset ...", max_entries=4)
def _dataset(data_json: str):
    from ..data import load_data

    return load_data(DataConfig(**json.loads(data_json)))


def dataset(cfg: RunConfig):
    return _dataset(json.dumps(cfg.to_dict()["data"], sort_keys=True))


@st.cache_data(show_spinner="computing the PCA baseline ...", max_entries=32)
def pca_baseline(data_json: str, k: int) -> float:
    from ..evaluate import pca_baseline as pb

    return pb(_dataset(data_json), k)["test_sq_err_per_image"]


def pca_baseline_for(cfg: RunConfig, k: int) -> float:
    return pca_baseline(json.dumps(cfg.to_dict()["data"], sort_keys=True), k)


@st.cache_resource(show_spinner="loading the model ...", max_entries=8)
def _model(run_dir: str, mtime: float):
    return Run(run_dir).load_model()


def model_of(run: Run):
    """The trained model of a finished run (None without saved weights)."""
    if not run.has_weights():
        return None
    return _model(str(run.dir), (run.dir / "weights.safetensors").stat().st_mtime)
