"""The one launcher: every background process starts as `python -m aelab.jobs MODULE ARGS...`.

`prepare` writes a job's first record (and its ticket, for a queued job) before any process exists, so
the job is visible, in line and judged by the liveness rule from its first moment; `spawn` starts the
process. Services (the standby worker, the projector) are tied to the process that starts them.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .queue import Queue
from .record import new_record, write
from .watch import HANDOFF_ENV, PARENT_ENV


def prepare(folder: str | os.PathLike, kind: str, queue: Queue | None = None, pid: int | None = None,
            group: list[str] | None = None, priority: int = 0) -> dict:
    """The job's first record: state queued (with a ticket when a queue is given). group: the folders of
    the jobs that must start together with this one (a race), itself included. priority: 0 for what a
    person launched, queue.BACKGROUND for work nobody waits for (it goes last and yields the cores)."""
    rec = new_record(folder, kind, pid=pid, priority=priority,
                     **({"group": [str(g) for g in group]} if group else {}))
    write(folder, rec)  # first, so a ticket never points at a folder without a record
    if queue is not None:
        rec["ticket"] = queue.take_ticket(folder)
        write(folder, rec)
    return rec


def command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "aelab.jobs", module, *args]


def spawn(module: str, *args: str, log: str | os.PathLike | None = None, service: bool = False,
          stdin=subprocess.DEVNULL, env: dict | None = None) -> subprocess.Popen:
    """Start `python -m MODULE ARGS` through the job entry point.

    service=False (a job): its own session, so a Ctrl-C or a restart of the launching server or
    terminal does not take it down. service=True: it stays in the launcher's process group and ends
    as soon as the launcher is gone (a thread in the child watches its parent pid). env: extra variables.
    """
    env = dict(os.environ, **(env or {}))
    env.setdefault("NUMBA_CACHE_DIR", str(Path.cwd() / ".numba_cache"))
    env.pop(PARENT_ENV, None)
    env.pop(HANDOFF_ENV, None)
    if service:
        env[PARENT_ENV] = str(os.getpid())
        if stdin == subprocess.PIPE:  # it waits for its job on stdin (watch.handed_line)
            env[HANDOFF_ENV] = "1"
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(command(module, *args), stdin=stdin, stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=not service)
    finally:
        if log:
            out.close()
