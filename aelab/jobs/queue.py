"""A local job queue shared by every process on this machine: FIFO tickets plus slot files held with flock.

There is no dispatcher. A queued job's launcher takes a ticket (so the order is launch order, whoever
launches: the app or the CLI); the job's own process waits until no live queued job holds an earlier
ticket, then locks one of `AELAB_MAX_JOBS` slot files (`fcntl.flock`) and keeps it until it exits. The
kernel drops the lock of a dead process, so a killed job frees its slot at once, and the queue lives
on through a server restart (it is only files and the jobs' own processes).
"""
from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path

from ..fsutil import atomic_write
from .record import judge, read

MAX_ENV = "AELAB_MAX_JOBS"  # how many queued jobs (training runs) may run at once; default: one per core
DIR_ENV = "AELAB_QUEUE_DIR"  # where tickets and slots live; default: one folder per user on this machine
POLL_S = 0.1  # the head of the line looks for a free slot this often (later places look less often)


def cores() -> int:
    return os.cpu_count() or 1


def max_jobs() -> int:
    v = os.environ.get(MAX_ENV, "")
    if not v:
        return cores()
    if not v.isdigit() or int(v) < 1:
        raise ValueError(f"{MAX_ENV}={v!r}: give a whole number >= 1")
    return int(v)


def fair_threads(running: int, n_cores: int | None = None) -> int:
    """Torch threads for one of `running` jobs: the cores shared out, at least one each."""
    return max(1, (n_cores or cores()) // max(1, running))


class Queue:
    """Tickets in `<root>/tickets/<number>` (holding the job folder) and slots `<root>/slot-<i>.lock`."""

    def __init__(self, root: str | os.PathLike | None = None, slots: int | None = None):
        self.root = Path(root or os.environ.get(DIR_ENV) or Path(tempfile.gettempdir()) / f"aelab-queue-{os.getuid()}")
        self.slots = slots or max_jobs()
        (self.root / "tickets").mkdir(parents=True, exist_ok=True)

    def take_ticket(self, folder: str | os.PathLike) -> int:
        """The next number (a counter under flock, so concurrent launchers never share one)."""
        with open(self.root / "counter", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            n = int(f.read().strip() or 0) + 1
            f.seek(0)
            f.truncate()
            f.write(str(n))
        atomic_write(self.root / "tickets" / f"{n:012d}", str(Path(folder).resolve()).encode())
        return n

    def drop(self, ticket: int) -> None:
        (self.root / "tickets" / f"{ticket:012d}").unlink(missing_ok=True)

    def ahead(self, ticket: int) -> int:
        """How many live queued jobs hold an earlier ticket; tickets of jobs no longer waiting are swept."""
        n = 0
        for p in sorted((self.root / "tickets").iterdir()):
            if not p.name.isdigit():
                continue  # a ticket being written
            if int(p.name) >= ticket:
                break
            try:
                waiting = judge(read(p.read_text())) == "queued"
            except FileNotFoundError:
                continue
            if waiting:
                n += 1
            else:
                p.unlink(missing_ok=True)
        return n

    def try_slot(self):
        """(index, open file holding the lock) for a free slot, or None when all are taken."""
        for i in range(self.slots):
            f = open(self.root / f"slot-{i}.lock", "a")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return i, f
            except BlockingIOError:
                f.close()
        return None

    def running(self) -> int:
        """Slots held right now (by any process; ours included, as flock locks are per open file)."""
        n = 0
        for p in self.root.glob("slot-*.lock"):
            with open(p, "a") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(f, fcntl.LOCK_UN)
                except BlockingIOError:
                    n += 1
        return n

    def wait(self, ticket: int, on_position=lambda p: None, cancelled=lambda: False):
        """Block until this ticket heads the line and a slot is free; returns the slot, or None if
        `cancelled()` turned true first. on_position(p) hears each new place in line (1 = next)."""
        last = None
        while not cancelled():
            ahead = self.ahead(ticket)
            slot = self.try_slot() if ahead == 0 else None
            if slot is not None:
                self.drop(ticket)
                return slot
            if ahead + 1 != last:
                last = ahead + 1
                on_position(last)
            time.sleep(min(1.0, POLL_S * last))
        self.drop(ticket)
        return None
