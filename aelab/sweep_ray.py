"""Sweep cells as Ray tasks: the same cells, on a local Ray instance (`--ray`) or a cluster (`--ray-address`).

No shared filesystem is assumed. The caller creates each cell's run folder in its own store (so the app sees the
run at once, queued), and a task trains it into a scratch store on whichever node runs it, through the very
same `worker.execute` as a local cell. While it trains, a thread in the task sends what changed in the folder
(the appended part of metrics.jsonl, status.json, new snapshots and probe images) every CADENCE_S through a Ray
queue; the caller writes those pieces into its store, so the app's live view follows a remote cell as it follows
a local one. At the end the task returns the rest (weights, summary, the final files), and the folder in the
caller's store is complete: config, metrics, snapshots, weights, summary. The other way, a control request written
into the caller's copy (the app's Stop, Pause, Resume: control.json) reaches the task through a small actor
(`Controls`) at the same cadence, and the worker obeys it between batches as it would locally. A cell still
waiting for its CPUs that is cancelled (the app's Cancel touches cancel.request, as for a queued local job) or
stopped leaves Ray's queue at once (`ray.cancel`) and reads "cancelled", as a local job cancelled in the queue.

In the caller's copy, status.json names the caller's own process as the run's pid: if the caller dies, nothing
more can arrive, and the run reads as interrupted, as a local run whose worker died does.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from . import sweep as S
from .config import RunConfig
from .fsutil import atomic_write
from .jobs import cancel_requested
from .runs import RunStore, atomic_write_json, read_json

CADENCE_S = 1.0  # as often as the local worker's snapshots: the live view keeps its pace
GROWING = ("metrics.jsonl",)  # append-only: only the new bytes travel
LOCAL_ONLY = ("job.json", "control.json", "checkpoint.pt")  # the job record and control stay with their machine
CANCELLED = {"status": "cancelled", "message": "cancelled before it started"}  # as a local job's


def changes(folder: Path, sent: dict) -> list[tuple[str, int, bytes]]:
    """What changed in a run folder since `sent` ({relative path: (size, mtime)}, updated in place), as
    (relative path, offset, bytes): the appended bytes of a growing file, other changed files whole (offset -1)."""
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = str(path.relative_to(folder))
        if path.name in LOCAL_ONLY or path.name.startswith("."):  # .tmp files of atomic writes in flight
            continue
        try:
            st = path.stat()
            if sent.get(rel) == (st.st_size, st.st_mtime_ns):
                continue
            if rel in GROWING:
                start = sent.get(rel, (0, 0))[0]
                with open(path, "rb") as f:
                    f.seek(start)
                    data = f.read()
                end = data.rfind(b"\n") + 1  # whole lines only; the rest goes next time
                if end:
                    out.append((rel, start, data[:end]))
                    sent[rel] = (start + end, st.st_mtime_ns if start + end == st.st_size else -1)
            else:
                out.append((rel, -1, path.read_bytes()))
                sent[rel] = (st.st_size, st.st_mtime_ns)
        except FileNotFoundError:  # replaced mid-scan: the next scan sends it
            continue
    return out


def apply(run_dir: Path, chunks: list[tuple[str, int, bytes]], pid: int) -> None:
    """Write a cell's pieces into the caller's copy of its folder (status.json's pid: this process)."""
    for rel, offset, data in chunks:
        path = run_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if offset >= 0:
            with open(path, "r+b" if path.exists() else "wb") as f:
                f.seek(offset)
                f.write(data)
                f.truncate()
        elif rel == "status.json":
            st = read_json_bytes(data)
            atomic_write_json(path, {**st, "pid": pid} if "pid" in st else st)
        else:
            atomic_write(path, data)


def read_json_bytes(data: bytes) -> dict:
    import json

    try:
        d = json.loads(data)
        return d if isinstance(d, dict) else {}
    except ValueError:
        return {}


class Controls:
    """A Ray actor holding the control requests (control.json: stop, pause, resume) that the caller's copies of
    remote runs received, e.g. from the app's Stop button. Each task reads its own at the streaming cadence."""

    def __init__(self):
        self.by_run: dict[str, bytes] = {}

    def set(self, run_id: str, data: bytes) -> None:
        self.by_run[run_id] = data

    def get(self, run_id: str) -> bytes | None:
        return self.by_run.get(run_id)


def train_cell(run_id: str, config: dict, threads: int, queue, controls=None) -> list[tuple[str, int, bytes]]:
    """The task: train the cell into a scratch store on this node, streaming its folder (and taking the caller's
    control requests into it, where the worker reads them between batches); returns the rest."""
    import torch

    from .worker import execute

    scratch = Path(tempfile.mkdtemp(prefix="aelab-cell-"))
    try:
        run_dir = scratch / run_id
        (run_dir / "snapshots").mkdir(parents=True)
        atomic_write_json(run_dir / "config.json", config)
        atomic_write_json(run_dir / "status.json", {"status": "queued", "created": time.time()})
        torch.set_num_threads(threads)
        sent: dict = {}
        done = threading.Event()

        def stream():
            import ray

            told = None
            while not done.wait(CADENCE_S):
                if pieces := changes(run_dir, sent):
                    queue.put((run_id, pieces))
                if controls is not None:
                    ctl = ray.get(controls.get.remote(run_id))
                    if ctl is not None and ctl != told:
                        atomic_write(run_dir / "control.json", ctl)
                        told = ctl
        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()
        from .runs import Run

        execute(Run(run_dir))
        done.set()
        streamer.join()
        return changes(run_dir, sent)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def connect(address: str | None = None):
    """Ray, joined to `address` (a cluster) or to a local instance started here (address None)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    return ray


class Remote:
    """Runs trained as Ray tasks, each into a scratch store on its node; what they stream, and what they return at
    the end, is written into the caller's `store` (see the module's text). Thread-safe: the tuning of several
    cells waits on its own trials side by side."""

    def __init__(self, store: RunStore, address: str | None = None, threads: int = 1, gpus: float = 0.0):
        from ray.util.queue import Queue

        self.ray = connect(address)
        self.store, self.threads, self.gpus = store, threads, gpus
        self.queue = Queue()
        self.controls = self.ray.remote(Controls).options(num_cpus=0).remote()
        self.task = self.ray.remote(train_cell)
        self._lock = threading.Lock()  # one drainer at a time: a run's pieces are written in the order sent
        self._live: dict[str, list] = {}  # run id -> [run, its task, the control last passed on]
        self._cancelled: set[str] = set()  # cancelled while queued: what their tasks still send is dropped

    def submit(self, cfg: RunConfig):
        """Create the run in the caller's store (queued, so the app sees it at once) and start its task;
        returns (the run, the task's reference)."""
        run = self.store.create(cfg)
        atomic_write_json(run.dir / "status.json", {"status": "queued", "created": time.time(), "pid": os.getpid()})
        gpu = self.gpus or (1.0 if cfg.train.device == "cuda" else 0.0)
        ref = self.task.options(num_cpus=self.threads, num_gpus=gpu).remote(
            run.id, read_json(run.dir / "config.json", {}), self.threads, self.queue, self.controls)
        with self._lock:
            self._live[run.id] = [run, ref, None]
        return run, ref

    def drain(self) -> None:
        """Write what the tasks sent into the caller's store; pass on new control requests to them."""
        with self._lock:
            while not self.queue.empty():
                run_id, pieces = self.queue.get()
                if run_id not in self._cancelled:
                    apply(self.store.root / run_id, pieces, os.getpid())
            for run_id, live in list(self._live.items()):
                run, ref, told = live
                try:
                    ctl = (run.dir / "control.json").read_bytes()
                except FileNotFoundError:
                    ctl = b""
                leave = cancel_requested(run.dir) or read_json_bytes(ctl).get("command") == "stop"
                if leave and run.status().get("status") == "queued":
                    self.ray.cancel(ref)  # still waiting for its CPUs: it leaves Ray's queue
                    self._cancelled.add(run_id)
                    del self._live[run_id]
                    atomic_write_json(run.dir / "status.json", CANCELLED)
                elif ctl and ctl != told:
                    self.controls.set.remote(run_id, ctl)
                    live[2] = ctl

    def finish(self, ref, run) -> None:
        """The task is done: write the rest of its folder (or, when it died, a failed status saying why)."""
        self.drain()
        with self._lock:
            self._live.pop(run.id, None)
            if run.id in self._cancelled:
                return
        try:
            pieces = self.ray.get(ref)
            with self._lock:
                apply(run.dir, pieces, os.getpid())
        except self.ray.exceptions.TaskCancelledError:
            atomic_write_json(run.dir / "status.json", CANCELLED)
        except self.ray.exceptions.RayError as e:  # the run says why; a re-run starts it again
            atomic_write_json(run.dir / "status.json", {"status": "failed", "message": str(e)[:500]})

    def train(self, cfg: RunConfig, poll_s: float = 0.25):
        """One run, start to end (a tuning trial): the finished run in the caller's store."""
        run, ref = self.submit(cfg)
        while not self.ray.wait([ref], timeout=poll_s)[0]:
            self.drain()
        self.finish(ref, run)
        return run

    def close(self) -> None:
        self.queue.shutdown()
        self.ray.kill(self.controls)


def run_ray(sweep: S.Sweep, store: RunStore, address: str | None = None, threads: int = 1, gpus: float = 0.0,
            on_change=None, poll_s: float = 0.25) -> None:
    """Run the cells that need it as Ray tasks (each asks for `threads` CPUs, and a GPU when the cell's
    train.device is cuda); the pieces they stream are written into `store` as they come."""
    remote = Remote(store, address, threads, gpus)
    pending = {}
    for i, run in enumerate(sweep.runs(store)):
        if S.cell_state(run) == "done":
            continue
        cfg = RunConfig.from_dict(sweep.cells[i]["config"])
        local, ref = remote.submit(replace(cfg, name=sweep.id))  # tagged with the sweep, as local cells are
        sweep.cells[i]["run_id"] = local.id
        pending[ref] = local
    sweep.save(store.root)
    try:
        while pending:
            ready, _ = remote.ray.wait(list(pending), timeout=poll_s)
            remote.drain()
            for ref in ready:
                remote.finish(ref, pending.pop(ref))
            if on_change:
                on_change(sweep)
        remote.drain()
    finally:
        remote.close()
