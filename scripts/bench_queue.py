"""The job queue's fair share: N training runs launched at once against the same N one after the other.

    nice .venv/bin/python -m scripts.bench_queue [--preset keras-simple] [--epochs 3] [--runs 4]

Every run goes through the launcher the app and the CLI use (`worker.start_run`: a worker process that
waits in the queue for a slot and sets torch's threads to its share of the cores). Without the queue,
runs launched at once oversubscribed the cores (each with all cores' worth of threads). Each mode uses
a fresh runs folder and a queue folder of its own, so jobs elsewhere on the machine do not count; the
sequential mode starts first, so any warm disk cache favours neither. Prints both wall times (from the
first launch to the last run's end) and their ratio (at once / one after the other: <= 1 is the goal).
"""
import argparse
import os
import tempfile
import time
from pathlib import Path

from aelab.jobs.queue import max_jobs
from aelab.presets import get_preset
from aelab.worker import start_run


def wall(cfg, n: int, at_once: bool) -> float:
    root = Path(tempfile.mkdtemp(prefix="aelab-bench-queue-"))
    os.environ["AELAB_QUEUE_DIR"] = str(root / ".queue")
    t = time.perf_counter()
    if at_once:
        launched = [start_run(cfg, root) for _ in range(n)]
        codes = [proc.wait() for _, proc in launched]
    else:
        launched, codes = [], []
        for _ in range(n):
            launched.append(start_run(cfg, root))
            codes.append(launched[-1][1].wait())
    seconds = time.perf_counter() - t
    bad = [run.id for (run, _), c in zip(launched, codes) if c != 0 or run.summary()["status"] != "completed"]
    if bad:
        raise SystemExit(f"runs did not complete: {bad} (see their worker.log)")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="keras-simple")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--runs", type=int, default=4)
    args = ap.parse_args()
    cfg = get_preset(args.preset).config().with_overrides({"train.epochs": args.epochs})
    print(f"{args.runs} x {args.preset}, {args.epochs} epochs; {os.cpu_count()} cores, "
          f"AELAB_MAX_JOBS={max_jobs()}, nice {os.nice(0)}")
    seq = wall(cfg, args.runs, at_once=False)
    par = wall(cfg, args.runs, at_once=True)
    print(f"one after the other: {seq:7.1f} s")
    print(f"launched at once:    {par:7.1f} s")
    print(f"ratio (at once / one after the other): {par / seq:.2f}")


if __name__ == "__main__":
    main()
