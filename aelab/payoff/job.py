"""Launch a payoff grid as a job of the lab's job system and tell how it stands.

    runs/payoff/<key>/config.json     the PayoffConfig (the job's only input)
                      job.json        the job record: state, pid, heartbeat (aelab.jobs: one liveness rule)
                      progress.json   done / total / message, rewritten by the job
                      results.json, results.csv, paired.csv   at the end
                      worker.log      the job's stdout and stderr
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from .. import jobs
from ..runs import atomic_write_json, read_json
from .grid import PayoffConfig, run_payoff


def payoff_dir(cfg: PayoffConfig, runs_dir: str | os.PathLike) -> Path:
    return Path(runs_dir) / "payoff" / cfg.key()


def cached(cfg: PayoffConfig, runs_dir) -> dict | None:
    return read_json(payoff_dir(cfg, runs_dir) / "results.json")


def job_status(out: Path) -> dict:
    """progress.json with `status` from the job record: "completed" once results exist, else the job
    system's state (a killed or silent job reads "interrupted", never "running" forever), "none" when
    never started."""
    if (out / "results.json").exists():
        return {"status": "completed", "message": "done"}
    state = jobs.state(out)
    if state is None:
        return {"status": "none"}
    p = read_json(out / "progress.json", {})
    rec = jobs.read(out) or {}
    if state == "interrupted":
        return {**p, "status": "interrupted", "message": f"the job's process (pid {rec.get('pid')}) is gone or silent"}
    if state == "failed":
        return {**p, "status": "failed", "message": rec.get("error") or "failed"}
    return {**p, "status": "running" if state in ("queued", "running") else state}


def start_payoff(cfg: PayoffConfig, runs_dir: str | os.PathLike = "runs") -> tuple[Path, subprocess.Popen | None]:
    """Start the grid as a job; return (its folder, the process), or (folder, None) when the result is
    cached or the same grid is already running (never twice)."""
    out = payoff_dir(cfg, runs_dir)
    if job_status(out)["status"] in ("completed", "running"):
        return out, None
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", asdict(cfg))
    atomic_write_json(out / "progress.json", {"done": 0, "total": None, "message": "starting"})
    jobs.prepare(out, "payoff")  # the record exists (and is judged) before the process does
    proc = jobs.spawn("aelab.payoff.job", str(out), log=out / "worker.log")
    return out, proc


def load_config(out: Path) -> PayoffConfig:
    """The PayoffConfig a job folder was started with (JSON lists back to tuples)."""
    return PayoffConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in read_json(out / "config.json").items()})


def _job_main(out_dir: str) -> int:
    out = Path(out_dir)
    cfg = load_config(out)

    def progress(done, total, msg):
        atomic_write_json(out / "progress.json", {"done": done, "total": total, "message": msg})
    try:
        with jobs.Job(out, "payoff"):  # running + heartbeat; completed, or failed with the error, on exit
            run_payoff(cfg, out, progress)
    except Exception as e:
        atomic_write_json(out / "progress.json", {"message": f"{type(e).__name__}: {e}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_job_main(sys.argv[1]))
