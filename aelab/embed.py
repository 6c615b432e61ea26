"""2-D maps of code layers: PCA at once, UMAP from one long-lived, warmed projection process.

`pca_2d` and `align` are cheap pure functions used by the pages for every frame. UMAP compiles its
numba kernels in a new process (10-40 s; from numba's disk cache after the first, see `cache_kernels`), so
it runs only in `python -m aelab.embed --serve RUNS_DIR`:
started once per app start, it warms up, then watches the run store and writes
`snapshots/NNNNN.umap.npy` beside each new snapshot of a live run (and of runs whose folder holds a
`umap.request` file, for replays), each frame initialised from the previous frame's layout so points
do not jump. Pages show PCA until that file exists. This module does not import streamlit.
"""
from __future__ import annotations

import io
import os
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .fsutil import atomic_write

UMAP_SUFFIX = ".umap.npy"
REQUEST_FILE = "umap.request"  # touched by a page that wants a saved run's frames projected too
POLL_S = 0.3
# Enough to settle a frame that starts from the previous layout: over the 44 frames of a live keras-deep run (1,000
# codes each) the chained layouts' trustworthiness (scikit-learn, 10 neighbours) read 0.971 at 100 epochs, 0.966 at
# 50 and 0.959 at 30, against 0.967 for a fresh fit of the last frame; 50 takes 0.6 of the CPU of 100 (the SGD
# epochs are 95 % of a refresh). scripts/bench_ui reports both for the frames it measures.
UMAP_EPOCHS_FROM_INIT = 50
# A live run's newest frame is projected at most this often. On 2 cores or fewer the Train page redraws its map only
# every 4 s (aelab.ui.live.SNAPSHOT_VIEW_S) while the worker writes a frame every 2 s: a layout for every frame was
# 0.2 of a core taken from the training a class watches (scripts/bench_ui), half of it for frames never shown.
LIVE_EVERY_S = 4.0 if (os.cpu_count() or 1) <= 2 else 0.0


def pca_2d(codes: np.ndarray, whiten: bool = True) -> np.ndarray:
    """First two principal components of codes (N, d) -> (N, 2) float32.

    Whitened by default (each axis scaled to unit variance) so the map fills its box instead of
    collapsing onto the first component; a 1-unit code gets a zero second axis.
    """
    x = np.asarray(codes, dtype=np.float64)
    x = x - x.mean(0, keepdims=True)
    if x.shape[1] == 1:
        return np.hstack([x, np.zeros_like(x)]).astype(np.float32)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T
    if whiten:
        xy = xy / np.maximum(xy.std(0, keepdims=True), 1e-12)
    return xy.astype(np.float32)


def align(new: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
    """Rotate/reflect and shift `new` (N, 2) onto `prev` (orthogonal Procrustes), scaled to prev's spread.

    Consecutive frames of a run (or the maps of two runs on the same probe points) then share an
    orientation, so only real changes move points. The scale is the ratio of the two spreads, not the least-squares
    one, which shrinks a layout that matches prev poorly towards its centre (a race's arms on shared axes: one map
    drawn as a small knot beside the other). Returns new unchanged when shapes differ.
    """
    new = np.asarray(new, dtype=np.float64)
    if prev is None or np.shape(prev) != new.shape or len(new) < 3:
        return new.astype(np.float32)
    prev = np.asarray(prev, dtype=np.float64)
    mu_n, mu_p = new.mean(0), prev.mean(0)
    a, b = new - mu_n, prev - mu_p
    u, s, vt = np.linalg.svd(a.T @ b)
    r = u @ vt
    norm = (a ** 2).sum()
    scale = np.sqrt((b ** 2).sum() / norm) if norm > 0 else 1.0
    return (a @ r * scale + mu_p).astype(np.float32)


def umap_path(snapshot: Path) -> Path:
    return snapshot.with_name(snapshot.stem + UMAP_SUFFIX)


def read_layout(snapshot: Path) -> np.ndarray | None:
    """The UMAP layout of a snapshot if the projection process has written it."""
    p = umap_path(Path(snapshot))
    try:
        return np.load(p, allow_pickle=False)
    except (FileNotFoundError, ValueError, EOFError, OSError):
        return None


def layouts(frames: list[np.ndarray | None], prev: np.ndarray | None = None) -> list[np.ndarray | None]:
    """Aligned 2-D layouts for consecutive frames of codes (PCA), each aligned to the one before."""
    out = []
    for codes in frames:
        if codes is None or len(codes) == 0:
            out.append(None)
            continue
        prev = align(pca_2d(codes), prev)
        out.append(prev)
    return out


class FrameLayouts:
    """Aligned layouts of one run's snapshots, extended as new frames (or UMAP files) appear.

    Each frame uses the UMAP layout when the projection process has written it, else PCA, and is
    aligned to the frame before it; only frames that are new or whose UMAP file appeared are redone.
    """

    def __init__(self):
        self.names: list[str] = []
        self.methods: list[str] = []
        self.xy: list[np.ndarray | None] = []

    def update(self, snapshots: list[Path]) -> "FrameLayouts":
        names = [s.name for s in snapshots]
        start = 0
        while (start < len(self.names) and start < len(names) and self.names[start] == names[start]
               and (self.methods[start] == "UMAP" or not umap_path(snapshots[start]).exists())):
            start += 1
        del self.names[start:], self.methods[start:], self.xy[start:]
        prev = self.xy[-1] if self.xy else None
        for s in snapshots[start:]:
            lay, method = read_layout(s), "UMAP"
            if lay is None:
                codes, method = load_codes(s), "PCA"
                lay = pca_2d(codes) if codes is not None and len(codes) else None
            if lay is not None:
                lay = prev = align(lay, prev)
            self.names.append(s.name)
            self.methods.append(method)
            self.xy.append(lay)
        return self


# ----------------------------------------------------------------------------- UMAP (server side)

def cache_kernels() -> int:
    """Let umap-learn's and pynndescent's numba kernels use numba's on-disk cache (NUMBA_CACHE_DIR), as if each
    were declared with cache=True: most are not, so every new projection process compiled them again, ~7 s of its
    warm-up (0.4 s from the cache). Returns how many it enabled; a kernel numba cannot cache compiles as before."""
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    n = 0
    for name, mod in list(sys.modules.items()):
        if not name.startswith(("umap", "pynndescent")) or mod is None:
            continue
        for f in list(vars(mod).values()):
            if isinstance(f, Dispatcher) and isinstance(getattr(f, "_cache", None), NullCache):
                try:
                    f.enable_caching()
                    n += 1
                except Exception:  # noqa: BLE001  (numba's internals changed: compile as before)
                    pass
    return n


class Projector:
    """A warm UMAP: `fit(codes, init)` -> (N, 2). Only ever created inside the projection process."""

    def __init__(self, seed: int = 0):
        import umap  # noqa: F401  (lazy: 2-14 s of numba work)

        cache_kernels()
        self.seed = seed

    def fit(self, codes: np.ndarray, init: np.ndarray | None = None) -> np.ndarray:
        import umap
        from sklearn.neighbors import NearestNeighbors

        x = np.asarray(codes, dtype=np.float32)
        n = len(x)
        k = min(15, max(2, n - 1))
        # Exact neighbours, given to UMAP: below 4096 points umap-learn would compute every pairwise distance
        # through sklearn with a Python-level callable (1.2 s of a 1.5 s refresh at 1,000 points).
        dist, idx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
        kw = dict(n_components=2, n_neighbors=k, min_dist=0.1, random_state=self.seed, n_jobs=1, low_memory=True,
                  precomputed_knn=(idx, dist.astype(np.float32), None))
        if init is not None and init.shape == (n, 2):
            kw.update(init=np.asarray(init, dtype=np.float64), n_epochs=UMAP_EPOCHS_FROM_INIT)
        else:
            kw.update(init=pca_2d(x).astype(np.float64) + 1e-4 * np.random.default_rng(0).standard_normal((n, 2)))
        with warnings.catch_warnings():  # "no search index: transform() unavailable": we never transform
            warnings.simplefilter("ignore", UserWarning)
            return umap.UMAP(**kw).fit_transform(x).astype(np.float32)

    def warm(self) -> None:
        """Compile the kernels now, on a small fit. Every map has at most train.N_PROBE_CODES (2,000) points, where
        umap-learn finds neighbours exactly: its approximate (NN-descent) path, which only a >= 4096-point fit
        compiles (about 25 s more), is never needed, so it is not warmed."""
        rng = np.random.default_rng(0)
        self.fit(rng.standard_normal((300, 8)).astype(np.float32))


def load_codes(snapshot: Path) -> np.ndarray | None:
    try:
        with np.load(snapshot, allow_pickle=False) as z:
            return z["codes"].astype(np.float32) if "codes" in z.files else None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):  # a damaged snapshot: no codes
        return None


def pending(run_dir: Path, live: bool, every_s: float | None = None, last_epoch: int | None = None) -> list[Path]:
    """Snapshots of one run that still need a UMAP layout, in the order to project them.

    A live run only needs its newest frame (skipping ones the process fell behind on), and no more often than
    every_s (default LIVE_EVERY_S) unless it is the run's last (its epoch is last_epoch: the finished run's page
    shows it); a requested replay needs every frame, oldest first, so each starts from the previous layout.
    """
    snaps = sorted((run_dir / "snapshots").glob("[0-9]*.npz"))
    every_s = LIVE_EVERY_S if every_s is None else every_s
    if live:
        last = bool(snaps) and last_epoch is not None and snaps[-1].stem.isdecimal() and \
            int(snaps[-1].stem) >= last_epoch
        if every_s and not last and \
                time.time() - _newest_mtime(run_dir / "snapshots", "*" + UMAP_SUFFIX) < every_s:
            return []  # its last layout is as recent as what the page shows
        return [s for s in snaps[-1:] if not umap_path(s).exists()]
    return [s for s in snaps if not umap_path(s).exists()]


def _newest_mtime(folder: Path, pattern: str) -> float:
    """Modification time of the newest file matching pattern in folder (0 when none, or gone meanwhile)."""
    times = []
    for f in folder.glob(pattern):
        try:
            times.append(f.stat().st_mtime)
        except OSError:
            pass
    return max(times, default=0.0)


def previous_layout(snapshot: Path) -> np.ndarray | None:
    """Layout of the nearest earlier snapshot of the same run that has one."""
    snaps = sorted(snapshot.parent.glob("[0-9]*.npz"))
    earlier = [s for s in snaps if s.name < snapshot.name]
    for s in reversed(earlier):
        lay = read_layout(s)
        if lay is not None:
            return lay
    return None


def project_snapshot(proj, snapshot: Path) -> bool:
    codes = load_codes(snapshot)
    if codes is None or len(codes) < 5:
        return False
    prev = previous_layout(snapshot)
    lay = align(proj.fit(codes, init=prev), prev)
    buf = io.BytesIO()
    np.save(buf, lay)
    atomic_write(umap_path(snapshot), buf.getvalue())
    return True


_seen_live: set[Path] = set()  # runs this process has seen live (their last frame is projected when they end)


def _status(run_dir: Path) -> dict:
    import json

    try:
        st = json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    return st if isinstance(st, dict) else {}


def work_once(proj, runs_dir: Path) -> int:
    """One sweep over the run store; returns how many frames were projected."""
    if not runs_dir.exists():
        return 0
    done = 0
    dirs = sorted((d for d in runs_dir.iterdir() if (d / "snapshots").is_dir()), reverse=True)
    _seen_live.intersection_update(dirs)  # runs deleted meanwhile
    status = {d: _status(d) for d in dirs}
    live = {d: st.get("status") in ("queued", "running", "paused") for d, st in status.items()}
    for d in dirs:  # live runs first: their frames are being watched right now
        st = status[d]
        if live[d]:
            _seen_live.add(d)
            total = st.get("epochs_total")
            done += sum(project_snapshot(proj, s) for s in
                        pending(d, live=True, last_epoch=total if isinstance(total, int) else None))
        elif d in _seen_live:  # ended (stopped, say) before its last frame got one: the finished run's page shows it
            _seen_live.discard(d)
            done += sum(project_snapshot(proj, s) for s in pending(d, live=True, every_s=0.0))
    for d in dirs:
        if (d / REQUEST_FILE).exists() and not live[d]:
            for s in pending(d, live=False)[:5]:  # a few at a time, so a new live frame never waits long
                done += project_snapshot(proj, s)
            if not pending(d, live=False):
                (d / REQUEST_FILE).unlink(missing_ok=True)
    return done


READY_FILE = ".umap_ready"  # written once the process is warm (its warm-up seconds inside)
WARMING_FILE = ".umap_warming"  # when this start's warm-up began
LAST_WARMUP_FILE = ".umap_warmup_s"  # how long the last warm-up took: outlives the server, for the estimate


def warmup_eta(runs_dir: str | os.PathLike, now: float | None = None) -> tuple[float, float | None]:
    """(seconds the warm-up has run, seconds it took the last time or None when never measured here)."""
    root, now = Path(runs_dir), time.time() if now is None else now

    def number(name: str) -> float | None:
        try:
            return float((root / name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
    started = number(WARMING_FILE)
    return (max(0.0, now - started) if started else 0.0), number(LAST_WARMUP_FILE)


def serve(runs_dir: str, parent: int | None = None) -> int:
    """The projection process: warm up, then project new frames until the parent (app) goes away.

    The app starts it through the job launcher as a service (`jobs.spawn(..., service=True)`), whose
    entry point ends it within a second of the app's death, even in the middle of the warm-up."""
    parent = parent or os.getppid()
    os.nice(10)  # a map may lag a little; the server and the training worker must not
    root = Path(runs_dir)
    ready = root / READY_FILE
    ready.unlink(missing_ok=True)
    t = time.time()
    root.mkdir(parents=True, exist_ok=True)
    (root / WARMING_FILE).write_text(f"{t}\n")  # for the app's wait estimate
    proj = Projector()
    proj.warm()
    took = f"{time.time() - t:.1f}"
    ready.write_text(took + "\n")
    (root / LAST_WARMUP_FILE).write_text(took + "\n")  # kept: the next start's estimate
    print(f"aelab.embed: UMAP warm after {took} s, watching {root}", flush=True)
    while os.getppid() == parent:
        if not work_once(proj, root):
            time.sleep(POLL_S)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--serve":
        return serve(argv[1])
    print("usage: python -m aelab.embed --serve RUNS_DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
