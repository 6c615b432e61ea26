"""One record per job (`job.json` in the job's folder) and the one liveness rule.

A record holds structured fields only: id, kind, pid, state, heartbeat, created/started/ended, error,
and for queued jobs priority/ticket/position/threads. Messages for people live elsewhere (a run's status.json).
This module reads and judges records; the process side that writes them is `job.Job`.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from ..fsutil import atomic_write_json, pid_alive, read_json

RECORD = "job.json"
CANCEL_FILE = "cancel.request"  # touched by `cancel`; a queued job looks for it while it waits
HEARTBEAT_S = 3.0  # the job's heartbeat thread rewrites its record this often
STALE_S = 30.0  # a job silent for this long is interrupted, even if its pid still exists (hung, or reused)
START_S = 120.0  # a job whose process has not begun to beat yet (imports torch, warms up) on a loaded machine
ACTIVE = ("queued", "running")
ENDED = ("completed", "failed", "cancelled", "interrupted")


def read(folder: str | os.PathLike) -> dict | None:
    rec = read_json(Path(folder) / RECORD)
    return rec if isinstance(rec, dict) else None


def write(folder: str | os.PathLike, rec: dict) -> None:
    atomic_write_json(Path(folder) / RECORD, rec)


def new_record(folder: str | os.PathLike, kind: str, **fields) -> dict:
    now = time.time()
    return {"id": Path(folder).name, "kind": kind, "pid": None, "state": "queued", "created": now,
            "heartbeat": None, "started": None, "ended": None, "error": None, **fields}


def judge(rec: dict | None, now: float | None = None, stale_s: float = STALE_S) -> str | None:
    """The state a record stands for: an active job whose process is gone, or whose heartbeat is older
    than stale_s (or, before its process began to beat, whose record is older than START_S), is
    'interrupted'."""
    if rec is None:
        return None
    s = rec.get("state")
    if s not in ACTIVE:
        return s
    now = time.time() if now is None else now
    if rec.get("pid") and not pid_alive(rec["pid"]):
        return "interrupted"
    beat = rec.get("heartbeat")
    if (now - beat > stale_s) if beat else (now - (rec.get("created") or 0) > max(stale_s, START_S)):
        return "interrupted"
    return s


def state(folder: str | os.PathLike, now: float | None = None, stale_s: float = STALE_S) -> str | None:
    """queued / running / completed / failed / cancelled / interrupted (None: no job record here)."""
    return judge(read(folder), now, stale_s)


def cancel(folder: str | os.PathLike) -> None:
    """Ask a queued job to leave the queue (a running job ignores this; stop it through its own control)."""
    (Path(folder) / CANCEL_FILE).touch()


def cancel_requested(folder: str | os.PathLike) -> bool:
    return (Path(folder) / CANCEL_FILE).exists()


def ordinal(n: int) -> str:
    """1 -> '1st', 2 -> '2nd', 11 -> '11th' (for "2nd in queue")."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
