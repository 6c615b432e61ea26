"""Ending a service process (the warm standby worker, the projector) as soon as the process that
started it is gone. Standard library only: it runs before torch or umap is imported."""
from __future__ import annotations

import os
import sys
import threading
import time

PARENT_ENV = "AELAB_PARENT_PID"  # set by the launcher for services tied to their parent
CHECK_S = 0.5
_released = threading.Event()
HANDOFF_ENV = "AELAB_HANDOFF"  # set for a service that waits for its job as one line on stdin
_handoff = threading.Lock()
_handed: list[str] = []


def handed_line() -> str:
    """The one line a launcher writes to a waiting service's stdin ('' at EOF: no job came), read once
    under a lock: the service's main thread waits here, and the parent watch asks here when the launcher
    died, so a job handed over just before the launcher's death is still done. A job releases the watch."""
    with _handoff:
        if not _handed:
            _handed.append(sys.stdin.readline().strip())
            if _handed[0]:  # a job now: it outlives the launcher and leaves its process group (a Ctrl-C
                release()   # or a kill of the server's group is not for it)
                try:
                    os.setsid()
                except OSError:  # already a group leader
                    pass
        return _handed[0]


def exit_with_parent(parent: int, handoff: bool = False) -> threading.Thread:
    """A daemon thread that ends this process (exit code 0) once `parent` is no longer its parent
    (the parent died and the process was re-parented), unless `release()` was called first or, with
    handoff, the parent handed over a job on stdin before it died."""
    def watch():
        while not _released.is_set():
            if os.getppid() != parent:
                if handoff and handed_line():
                    return
                os._exit(0)  # no cleanup: a service holds nothing that needs it
            time.sleep(CHECK_S)
    t = threading.Thread(target=watch, name="aelab-parent-watch", daemon=True)
    t.start()
    return t


def release() -> None:
    """This process now lives on its own (a standby worker that took a run): stop watching the parent."""
    _released.set()
