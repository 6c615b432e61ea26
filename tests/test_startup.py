"""The first paint stays light: serving Home and the Train page (settings, diagram, Launch) must not import
torch, torchvision, umap, scikit-learn or matplotlib into the server process (they cost seconds; the warm
worker and the projector pay them in their own processes), nor may the live view's reconstruction grid, drawn
every second beside a training run. What the first pages do import, the server's warm-up thread imports while
the first browser loads (aelab/ui/warm.py): the test fails if they import an aelab, pandas or plotly module it did
not. Checked on sys.modules, in a fresh interpreter, which then also checks that the server's numeric libraries
run one thread each (a second one only waits for a core beside training)."""
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

HEAVY = ("torch", "torchvision", "umap", "sklearn", "matplotlib")
APP = Path(__file__).resolve().parents[1] / "lab.py"  # the frame: app.py only serves it
SCRIPT = f"""
import json, sys
from streamlit.testing.v1 import AppTest
from aelab.ui import warm
warm.warm()  # what app.py's lifespan starts before the first browser connects
warmed = set(sys.modules)
home = AppTest.from_file({str(APP)!r}, default_timeout=60)
home.run()
train = AppTest.from_file({str(APP)!r}, default_timeout=60)
train.query_params["preset"] = "stacked-denoising"
train.run()
train.switch_page("app_pages/1_Train.py").run()
assert not home.exception and not train.exception, (home.exception, train.exception)
assert train.button(key="launch") and not train.button(key="launch").disabled
import numpy as np
from aelab import viz
viz.recon_rows(np.zeros((8, 1, 28, 28), np.uint8), np.full((8, 1, 28, 28), 9, np.uint8))
heavy = [m for m in {HEAVY!r} if m in sys.modules]
late = sorted(m for m in set(sys.modules) - warmed if m.split(".")[0] in ("aelab", "pandas", "plotly"))
from threadpoolctl import threadpool_info
from aelab.ui import state
state.one_thread_each()
print(json.dumps({{"heavy": heavy, "late": late, "threads": [i["num_threads"] for i in threadpool_info()]}}))
"""


def test_home_and_train_pages_are_served_without_heavy_imports(tmp_path):
    env = dict(os.environ, AELAB_RUNS_DIR=str(tmp_path / "runs"), AELAB_UMAP="0")
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120,
                         cwd=Path(__file__).parents[1], check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["heavy"] == []
    assert seen["late"] == [], f"{seen['late']}: imported by the first pages, not by aelab/ui/warm.py's PAGE_MODULES"
    assert seen["threads"] and set(seen["threads"]) == {1}


def test_the_servers_pool_takes_the_warm_worker_started_before_it(tmp_path, monkeypatch):
    """The first warm worker starts before the server has finished starting (aelab.ui.serve, or app.py as the server
    imports it): the pool must take that one as its first standby, not start a second torch import beside it."""
    from aelab import standby
    from aelab.ui import state

    early = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    spawned, spawn, me = [], standby.spawn, threading.current_thread()

    def stub(env=None):  # only this test's calls: another test's pool may refill itself from its own thread
        if threading.current_thread() is not me:
            return spawn(env)
        spawned.append(env)
        return early
    monkeypatch.setattr(standby, "spawn", stub)
    monkeypatch.setattr(standby, "_prestarted", False)
    monkeypatch.setattr(standby, "_early", None)
    standby.prestart()
    standby.prestart()  # once per process (run_app.sh's aelab.ui.serve, then app.py)
    assert spawned == [state.WORKER_ENV]
    pool = state._pool(str(tmp_path / "runs"))
    try:
        assert pool._spares == [early] and standby.take() is None
        assert len(spawned) == 1
    finally:
        pool.shutdown()
    assert early.poll() is not None  # a service of the pool: shut down with it


SERVE = """
import json, sys, types
from aelab import standby
from aelab.ui import serve
light = [m for m in ("streamlit", "torch", "numpy") if m in sys.modules]
order = []
standby.spawn = lambda env=None: order.append(["spawn", env]) or "worker"
cli = types.ModuleType("streamlit.web.cli")  # stand-ins: no server starts, and taking the CLI is recorded
cli.main = lambda **kw: order.append(["streamlit", sys.argv[1:], kw]) or 0
web = types.ModuleType("streamlit.web")
web.__getattr__ = lambda name: order.append(["import", name]) or cli if name == "cli" else None
sys.modules.update({"streamlit": types.ModuleType("streamlit"), "streamlit.web": web})
serve.main(["--server.port", "8999"])
print(json.dumps({"light": light, "order": order, "taken": standby.take()}))
"""


def test_run_app_starts_the_warm_worker_before_streamlit():
    """./run_app.sh runs aelab.ui.serve: it spawns the first warm worker (the longest job of a cold start) before
    Streamlit starts, importing nothing heavy first, then runs `streamlit run app.py` with the options given."""
    from aelab.ui import serve, state

    out = subprocess.run([sys.executable, "-c", SERVE], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).parents[1], check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["light"] == []
    first, *between, last = seen["order"]
    assert first == ["spawn", state.WORKER_ENV]  # before Streamlit's CLI is even taken
    assert between and all(step == ["import", "cli"] for step in between)
    assert last == ["streamlit", ["run", str(serve.APP), "--server.port", "8999"], {"prog_name": "streamlit"}]
    assert seen["taken"] == "worker"
    assert "aelab.ui.serve" in (Path(__file__).parents[1] / "run_app.sh").read_text()
