"""`python -m aelab.jobs MODULE [ARGS...]`: the entry point of every background process.

It starts the parent watch of a service (AELAB_PARENT_PID) before anything heavy is imported, then runs
MODULE as `__main__`, exactly as `python -m MODULE ARGS...` would.
"""
import os
import runpy
import sys

from .watch import HANDOFF_ENV, PARENT_ENV, exit_with_parent

if len(sys.argv) < 2:
    print("usage: python -m aelab.jobs MODULE [ARGS...]", file=sys.stderr)
    sys.exit(2)
parent = os.environ.pop(PARENT_ENV, None)
if parent:
    exit_with_parent(int(parent), handoff=os.environ.pop(HANDOFF_ENV, None) == "1")
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
