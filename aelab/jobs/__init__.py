"""The job system: one launcher, one record per job with one liveness rule, one queue for the cores.

    launcher (parent)                      job process (child)                  anyone
    rec = jobs.prepare(folder, kind)       with jobs.Job(folder, kind):         jobs.state(folder)
    proc = jobs.spawn(module, arg, ...)        work()                           jobs.read(folder)
                                                                                jobs.cancel(folder)

Modules: record (job.json, liveness), queue (tickets + flock slots, fair thread share), job (the
child side: heartbeat thread, slot), launch (prepare/spawn), watch (services end with their parent),
__main__ (`python -m aelab.jobs MODULE ARGS`, the one entry point). Training is the worker's business
(aelab/worker.py); this package knows nothing about runs.
"""
import importlib

# Loaded on first use: `python -m aelab.jobs` must start a service's parent watch before the module it runs
# imports torch, and this package's __init__ runs first; aelab.standby, which spawns the app's first worker
# before Streamlit is imported, loads only the launcher (no numpy: record reads JSON through fsutil).
_API = {"Job": "job", "Cancelled": "job", "Queue": "queue", "fair_threads": "queue", "max_jobs": "queue",
        "RESERVED_ENV": "queue",
        "prepare": "launch", "spawn": "launch", "read": "record", "state": "record", "judge": "record",
        "cancel": "record", "cancel_requested": "record", "ordinal": "record", "STALE_S": "record", "HEARTBEAT_S": "record"}
__all__ = list(_API)


def __getattr__(name):
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
