"""Launch a payoff grid in its own process and tell whether it is still alive.

    runs/payoff/<key>/config.json     the PayoffConfig (the job's only input)
                      progress.json   done / total / message / status / pid, rewritten by the job
                      results.json, results.csv, paired.csv   at the end
                      worker.log      the job's stdout and stderr

Small on purpose: payoff jobs will move onto the lab's generic job system; until then a job whose recorded pid
is gone reads as "interrupted" instead of "running" forever.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from ..runs import atomic_write_json, pid_alive, read_json
from .grid import PayoffConfig, run_payoff


def payoff_dir(cfg: PayoffConfig, runs_dir: str | os.PathLike) -> Path:
    return Path(runs_dir) / "payoff" / cfg.key()


def cached(cfg: PayoffConfig, runs_dir) -> dict | None:
    return read_json(payoff_dir(cfg, runs_dir) / "results.json")


def job_status(out: Path) -> dict:
    """progress.json with `status` made honest: "completed" once results exist, "interrupted" when the job
    says "running" but its process is gone (killed, machine restarted), "none" when never started."""
    if (out / "results.json").exists():
        return {"status": "completed", "message": "done"}
    p = read_json(out / "progress.json")
    if p is None:
        return {"status": "none"}
    if p.get("status") == "running" and not pid_alive(p.get("pid")):
        return {**p, "status": "interrupted", "message": f"the job's process (pid {p.get('pid')}) is gone"}
    return p


def start_payoff(cfg: PayoffConfig, runs_dir: str | os.PathLike = "runs") -> tuple[Path, subprocess.Popen | None]:
    """Start the grid in a worker process; return (its folder, the process), or (folder, None) when the
    result is cached or the same grid is already running (never twice)."""
    out = payoff_dir(cfg, runs_dir)
    if job_status(out)["status"] in ("completed", "running"):
        return out, None
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", asdict(cfg))
    with open(out / "worker.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "aelab.payoff.job", str(out)], stdout=log,
                                stderr=subprocess.STDOUT)
    # The child writes progress only after importing torch and loading data, so this record comes first.
    atomic_write_json(out / "progress.json", {"done": 0, "total": None, "message": "starting", "status": "running",
                                              "pid": proc.pid})
    return out, proc


def load_config(out: Path) -> PayoffConfig:
    """The PayoffConfig a job folder was started with (JSON lists back to tuples)."""
    return PayoffConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in read_json(out / "config.json").items()})


def _job_main(out_dir: str) -> int:
    out = Path(out_dir)
    cfg = load_config(out)

    def progress(done, total, msg):
        atomic_write_json(out / "progress.json", {"done": done, "total": total, "message": msg,
                                                  "status": "running", "pid": os.getpid()})
    try:
        run_payoff(cfg, out, progress)
    except Exception as e:
        atomic_write_json(out / "progress.json", {"status": "failed", "message": f"{type(e).__name__}: {e}"})
        return 1
    atomic_write_json(out / "progress.json", {"status": "completed", "message": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(_job_main(sys.argv[1]))
