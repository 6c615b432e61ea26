"""Sweep benchmark: the same cells run three ways on this machine, wall time and what Ray ships per cell.

    nice .venv/bin/python -m scripts.bench_sweep [--preset tied-stacked] [--seeds 5] [--set KEY=VALUE ...]

The grid is train.strategy=greedy,end_to_end (equal compute) x seeds on the preset's data. Modes, in this order,
each into a fresh store:
- sequential: the cells one after another in this process (`worker.execute`, no queue, no worker start-up);
- queue: `sweep.run_local`, the lab's job queue (one cell per 2 cores, each a fresh worker process);
- ray: `sweep_ray.run_ray` on a local Ray instance (its start-up included), one task per 2 CPUs.
Ray's overhead is reported against the queue (the issue's goal: <= 10 % on a sweep of >= 10 minutes), and the
bytes one cell ships back (its finished folder), which is what a remote node sends over the network.
"""
from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time

from aelab import sweep as S
from aelab.cli import _build_config
from aelab.config import RunConfig
from aelab.data import load_data
from aelab.runs import RunStore


def folder_bytes(run) -> int:
    return sum(p.stat().st_size for p in run.dir.rglob("*") if p.is_file() and p.name not in ("job.json",))


def timed(apply, shipped: dict):
    """sweep_ray.apply, counting the bytes the caller receives and the seconds it spends writing them."""
    def wrapper(run_dir, chunks, pid):
        t = time.perf_counter()
        apply(run_dir, chunks, pid)
        shipped["seconds"] += time.perf_counter() - t
        shipped["bytes"] += sum(len(c[2]) for c in chunks)
        shipped["calls"] += 1
    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tied-stacked")
    ap.add_argument("--config")
    ap.add_argument("--set", action="append")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--modes", default="sequential,queue,ray")
    args = ap.parse_args()
    base = _build_config(args)
    cells = S.expand(base, {"train.strategy": ["greedy", "end_to_end"]}, args.seeds, load_data(base.data).input_shape)
    threads = max(1, (os.cpu_count() or 1) // S.local_jobs())
    print(f"{len(cells)} cells of {base.name} on {base.data.name}, {os.cpu_count()} cores, {threads} threads a cell")
    walls, shipped = {}, {"seconds": 0.0, "bytes": 0, "calls": 0}
    for mode in args.modes.split(","):
        store = RunStore(tempfile.mkdtemp(prefix=f"bench-sweep-{mode}-"))
        sweep = S.Sweep.open(store.root, {}, args.seeds, cells)
        t = time.perf_counter()
        if mode == "sequential":
            import torch

            from aelab.worker import execute

            torch.set_num_threads(threads)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            for cell in sweep.cells:
                run = store.create(RunConfig.from_dict(cell["config"]))
                cell["run_id"] = run.id
                execute(run)
            sweep.save(store.root)
        elif mode == "queue":
            S.run_local(sweep, store)
        else:
            from aelab import sweep_ray

            sweep_ray.apply = timed(sweep_ray.apply, shipped)
            sweep_ray.run_ray(sweep, store, threads=threads)
        walls[mode] = time.perf_counter() - t
        runs = [r for r in sweep.runs(store) if r is not None]
        done = sum(r.status().get("status") == "completed" for r in runs)
        sizes = [folder_bytes(r) for r in runs]
        print(f"{mode:>10}: {walls[mode]:7.1f} s wall, {done}/{len(cells)} completed, a cell's folder "
              f"{sum(sizes) / len(sizes) / 1e6:.2f} MB on average ({min(sizes) / 1e6:.2f}-{max(sizes) / 1e6:.2f})")
        print(S.report(sweep, store))
    if shipped["calls"]:
        print(f"the caller wrote what Ray cells shipped: {shipped['bytes'] / 1e6:.1f} MB in {shipped['calls']} pieces, "
              f"{shipped['seconds']:.2f} s in all ({shipped['seconds'] / len(cells):.3f} s a cell)")
    if "queue" in walls and "ray" in walls:
        print(f"Ray vs the local queue: {100 * (walls['ray'] / walls['queue'] - 1):+.1f} % wall time")
    if "sequential" in walls and "queue" in walls:
        print(f"queue vs sequential: {100 * (walls['queue'] / walls['sequential'] - 1):+.1f} % wall time")


if __name__ == "__main__":
    main()
