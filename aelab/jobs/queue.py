"""A local job queue shared by every process on this machine: tickets plus slot files held with flock.

There is no dispatcher. A queued job's launcher takes a ticket (so the order is launch order, whoever
launches: the app or the CLI); the job's own process waits until no live queued job is ahead of it, then
locks one of `AELAB_MAX_JOBS` slot files (`fcntl.flock`) and keeps it until it exits. The kernel drops
the lock of a dead process, so a killed job frees its slot at once, and the queue lives on through a
server restart (it is only files and the jobs' own processes).

Priorities: a job record's `priority` (0, the default: anything a person launched; BACKGROUND: the
example runs) orders the line first, its ticket second. A background job also keeps off the cores while
any job above it runs or waits: it takes a slot only when none is held from above (a slot file names its
holder), and a running one gives its slot back when work from above appears (`busy_above`; the worker
asks between batches), so a person's run never shares the cores with an example build.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path

from ..fsutil import atomic_write
from .record import ACTIVE, judge, read

MAX_ENV = "AELAB_MAX_JOBS"  # how many queued jobs (training runs) may run at once; default: one per core
DIR_ENV = "AELAB_QUEUE_DIR"  # where tickets and slots live; default: one folder per user on this machine
POLL_S = 0.1  # the head of the line looks for a free slot this often (later places look less often)
BACKGROUND = 1  # the priority of work nobody is waiting for (example runs); 0 = a person's launch


def cores() -> int:
    return os.cpu_count() or 1


def max_jobs() -> int:
    v = os.environ.get(MAX_ENV, "")
    if not v:
        return cores()
    if not v.isdigit() or int(v) < 1:
        raise ValueError(f"{MAX_ENV}={v!r}: give a whole number >= 1")
    return int(v)


THREADS_ENV = "AELAB_THREADS"  # a fixed thread count per job (a sweep's --threads), instead of the fair share
# Cores left out of the share: the app sets 1 for the workers it starts, whose live view (the server redrawing
# it, the UMAP process, the browser) needs a core. Training with 2 torch threads on 2 cores beside it ran at
# 3,100 samples/s, with 1 thread at 19,800 (keras-deep, batch 256; scripts/bench_ui): threads that wait on
# each other at every operation stall whenever one of them is pushed off its core.
RESERVED_ENV = "AELAB_RESERVED_CORES"


def fair_threads(running: int, n_cores: int | None = None) -> int:
    """Torch threads for one of `running` jobs: the cores (less AELAB_RESERVED_CORES) shared out, at least one
    each (or AELAB_THREADS)."""
    fixed = os.environ.get(THREADS_ENV, "")
    if fixed.isdigit() and int(fixed) > 0:
        return int(fixed)
    reserved = os.environ.get(RESERVED_ENV, "")
    usable = (n_cores or cores()) - (int(reserved) if reserved.isdigit() else 0)
    return max(1, usable // max(1, running))


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

    def _waiting(self):
        """(priority, ticket) of each live queued job; tickets of jobs no longer waiting are swept."""
        for p in sorted((self.root / "tickets").iterdir()):
            if not p.name.isdigit():
                continue  # a ticket being written
            try:
                rec = read(p.read_text())
            except FileNotFoundError:
                continue
            if judge(rec) == "queued":
                yield rec.get("priority", 0), int(p.name)
            else:
                p.unlink(missing_ok=True)

    def ahead(self, ticket: int, priority: int = 0) -> int:
        """How many live queued jobs are ahead of this ticket: higher priority (a lower number) first,
        then earlier tickets."""
        return sum(1 for key in self._waiting() if key < (priority, ticket))

    def try_slot(self, folder: str | os.PathLike | None = None):
        """(index, open file holding the lock) for a free slot, or None when all are taken. The slot file
        then names its holder's folder (read by `held`)."""
        for i in range(self.slots):
            f = open(self.root / f"slot-{i}.lock", "a")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            f.truncate(0)
            f.write(str(Path(folder).resolve()) if folder else "")
            f.flush()
            return i, f
        return None

    def held(self) -> list[int]:
        """The priority of each slot held right now (by any process; ours included, as flock locks are per
        open file). A holder that cannot be named (a job started by an older aelab) counts as priority 0."""
        out = []
        for p in self.root.glob("slot-*.lock"):
            with open(p, "a+") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(f, fcntl.LOCK_UN)
                    continue
                except BlockingIOError:
                    f.seek(0)
                    name = f.read().strip()
            rec = read(name) if name else None
            out.append(rec.get("priority", 0) if judge(rec) in ACTIVE else 0)
        return out

    def running(self) -> int:
        """Slots held right now."""
        return len(self.held())

    def busy_above(self, priority: int) -> bool:
        """A job of higher priority (a lower number) holds a slot or waits in line."""
        return priority > 0 and (any(p < priority for p in self.held())
                                 or any(p < priority for p, _ in self._waiting()))

    def wait(self, ticket: int, on_position=lambda p: None, cancelled=lambda: False, priority: int = 0,
             folder: str | os.PathLike | None = None):
        """Block until this ticket heads the line and a slot is free (for a background priority: and no
        slot is held from above); returns the slot, or None if `cancelled()` turned true first.
        on_position(p) hears each new place in line (1 = next)."""
        last = None
        while not cancelled():
            ahead = self.ahead(ticket, priority)
            free = ahead == 0 and not (priority and any(p < priority for p in self.held()))
            slot = self.try_slot(folder) if free else None
            if slot is not None:
                self.drop(ticket)
                return slot
            if ahead + 1 != last:
                last = ahead + 1
                on_position(last)
            time.sleep(min(1.0, POLL_S * last))
        self.drop(ticket)
        return None
