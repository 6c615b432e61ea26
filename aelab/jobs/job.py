"""The process side of one job: its record, a heartbeat thread, and (for queued jobs) a slot in the queue.

    with Job(folder, "payoff") as job:      # record: running, pid, a heartbeat every HEARTBEAT_S
        work()                             # job.set(...) adds structured fields when useful
    # on leaving: completed; on an exception: failed, error = "Type: message" (and it is re-raised)

A queued job (training) calls `wait_turn`, `start` and `end` itself, as the worker does; a background
one (priority > 0) also asks `should_yield` as it works and, when told to, `give_way`.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from .queue import Queue, fair_threads
from .record import HEARTBEAT_S, cancel_requested, judge, new_record, read, write

GROUP_WAIT_S = 60.0  # a member of a group waits at most this long for the others (a cold worker: ~5 s)
GROUP_POLL_S = 0.1


class Cancelled(Exception):
    """The job was cancelled while it waited in the queue."""


class Job:
    def __init__(self, folder: str | os.PathLike, kind: str, queue: Queue | None = None,
                 heartbeat_s: float = HEARTBEAT_S):
        self.folder, self.queue, self.slot = Path(folder), queue, None
        self._lock, self._stop = threading.Lock(), threading.Event()
        self.rec = read(self.folder) or new_record(self.folder, kind)
        self.rec.update(kind=kind, pid=os.getpid(), heartbeat=time.time())
        self._write()
        self._beat = threading.Thread(target=self._beat_loop, args=(heartbeat_s,), name="aelab-heartbeat",
                                      daemon=True)
        self._beat.start()

    def _write(self) -> None:
        write(self.folder, self.rec)

    def set(self, **fields) -> None:
        """Update structured fields of the record (written at once, atomically)."""
        with self._lock:
            self.rec.update(fields)
            self._write()

    def _beat_loop(self, every: float) -> None:
        # a thread, so the heartbeat goes on while the job waits in line, is paused, or computes
        while not self._stop.wait(every):
            self.set(heartbeat=time.time())

    def wait_turn(self, cancelled=lambda: False) -> bool:
        """Wait for a slot (no wait without a queue); False if cancelled (cancel() or `cancelled()`)."""
        if self.queue is None:
            return True
        ticket = self.rec.get("ticket") or self.queue.take_ticket(self.folder)
        self.set(ticket=ticket)
        self.slot = self._wait(ticket, cancelled)
        if self.slot is None:
            self.end("cancelled")
            return False
        self.set(position=None, slot=self.slot[0])
        return True

    @property
    def priority(self) -> int:
        return self.rec.get("priority", 0)

    def _wait(self, ticket: int, cancelled):
        return self.queue.wait(ticket, on_position=lambda p: self.set(position=p),
                               cancelled=lambda: cancel_requested(self.folder) or cancelled(),
                               priority=self.priority, folder=self.folder)

    def should_yield(self) -> bool:
        """A background job that holds a slot while work of higher priority runs or waits."""
        return self.slot is not None and self.queue.busy_above(self.priority)

    def give_way(self, cancelled=lambda: False) -> bool:
        """Give the slot back, wait in line again (state queued, a new ticket) and take a slot when the work
        above is done; False if cancelled meanwhile (the job then still runs: its caller ends it)."""
        self.slot[1].close()
        self.slot = None
        self.set(state="queued", slot=None)  # first, so the new ticket points at a queued job
        self.set(ticket=self.queue.take_ticket(self.folder), yielded=self.rec.get("yielded", 0) + 1)
        self.slot = self._wait(self.rec["ticket"], cancelled)
        self.set(state="running", position=None, slot=self.slot and self.slot[0])
        return self.slot is not None

    def start(self) -> None:
        self.set(state="running", started=time.time())

    def wait_group(self, timeout: float = GROUP_WAIT_S, cancelled=lambda: False) -> None:
        """A job of a group (a race), ready to work, marks itself ready and waits (holding its slot) until
        every other member is ready too or has ended (one without a record yet is not), so they start their work together and share the
        cores from the first step. No wait when the group is bigger than the queue's slots (they could
        never all run at once); at most `timeout` seconds."""
        self.set(ready=True)
        others = [Path(g) for g in self.rec.get("group", []) if Path(g).resolve() != self.folder.resolve()]
        t0 = time.monotonic()
        while others and self.queue is not None and len(others) < self.queue.slots:
            recs = [read(g) for g in others]
            if all(rec is not None and (rec.get("ready") or judge(rec) not in ("queued", "running")) for rec in recs) \
                    or time.monotonic() - t0 > timeout or cancelled():
                break
            time.sleep(GROUP_POLL_S)
        self.set(go=time.time())

    def share_threads(self) -> int:
        """This job's fair share of the cores given the jobs running now (recorded as threads/sharing)."""
        running = self.queue.running() if self.queue else 1
        n = fair_threads(running)
        if (n, running) != (self.rec.get("threads"), self.rec.get("sharing")):
            self.set(threads=n, sharing=running)
        return n

    def end(self, state: str, error: str | None = None) -> None:
        """Final state; stops the heartbeat and frees the slot (after the record says ended)."""
        self._stop.set()
        self.set(state=state, ended=time.time(), error=error, heartbeat=time.time())
        if self.slot is not None:
            self.slot[1].close()
            self.slot = None

    def __enter__(self) -> "Job":
        if not self.wait_turn():
            raise Cancelled(str(self.folder))
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.end("completed")
        elif exc_type is KeyboardInterrupt:
            self.end("interrupted", "interrupted (Ctrl-C)")
        elif exc_type is not Cancelled:
            self.end("failed", f"{exc_type.__name__}: {exc}")
        return False
