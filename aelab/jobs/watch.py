"""Ending a service process (the warm standby worker, the projector) as soon as the process that
started it is gone. Standard library only: it runs before torch or umap is imported."""
from __future__ import annotations

import os
import threading
import time

PARENT_ENV = "AELAB_PARENT_PID"  # set by the launcher for services tied to their parent
CHECK_S = 0.5
_released = threading.Event()


def exit_with_parent(parent: int) -> threading.Thread:
    """A daemon thread that ends this process (exit code 0) once `parent` is no longer its parent
    (the parent died and the process was re-parented), unless `release()` was called first."""
    def watch():
        while not _released.is_set():
            if os.getppid() != parent:
                os._exit(0)  # no cleanup: a service holds nothing that needs it
            time.sleep(CHECK_S)
    t = threading.Thread(target=watch, name="aelab-parent-watch", daemon=True)
    t.start()
    return t


def release() -> None:
    """This process now lives on its own (a standby worker that took a run): stop watching the parent."""
    _released.set()
