"""Start and stop the app headless (`python -m aelab.ui.serve`, as ./run_app.sh does) for the browser test and the
UI benchmark.

Does not import streamlit: it only launches it in a child process and polls its health endpoint.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(runs_dir: str | os.PathLike, port: int | None = None, env: dict | None = None,
          log: str | os.PathLike | None = None, app: str | os.PathLike | None = None) -> tuple[subprocess.Popen, str]:
    """Launch the app (or another Streamlit script: the UI benchmark's one-page baseline) on a free port;
    returns (process, base URL) once the process is up (not yet healthy)."""
    port = port or free_port()
    e = dict(os.environ, AELAB_RUNS_DIR=str(runs_dir), **(env or {}))
    e.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    e.setdefault("AELAB_EXAMPLES", "0")  # no minutes of background training beside a test or a benchmark
    out = open(log, "ab") if log else subprocess.DEVNULL
    # the app as ./run_app.sh starts it (its first warm worker, then `streamlit run app.py`); another script plainly
    command = ["-m", "aelab.ui.serve"] if app is None else ["-m", "streamlit", "run", str(app)]
    proc = subprocess.Popen([sys.executable, *command, "--server.headless", "true", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
                             "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=e, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 60) -> float:
    t = time.time()
    while time.time() - t < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/_stcore/health", timeout=1) as r:
                if r.read().strip() == b"ok":
                    return time.time() - t
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{base} not healthy after {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group; fall back to SIGINT, then SIGKILL (SIGTERM is sometimes ignored)."""
    for sig, wait in ((signal.SIGTERM, 8), (signal.SIGINT, 5), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    try:  # children (worker, projection process) share the group: make sure none is left
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
