"""The Payoff page through AppTest: pick a trained run, launch the grid in its worker, read the result."""
import json
import time
from dataclasses import asdict

import pytest
from streamlit.testing.v1 import AppTest

from aelab.config import RunConfig
from aelab.runs import RunStore
from aelab.worker import execute

from apptest import lab_env, open_page


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    d = tmp_path_factory.mktemp("payoff_runs")
    lab_env(mp, d)
    cfg = RunConfig(name="pre").with_overrides({"data.name": "shapes", "model.layers": "32,8", "train.epochs": 2})
    assert execute(RunStore(d).create(cfg))["status"] == "completed"
    yield d
    mp.undo()


def _page() -> AppTest:
    return open_page("app_pages/4_Payoff.py")


def test_payoff_page_runs_the_grid_and_shows_plot_table_and_reading(runs_dir):
    before = set((runs_dir / "payoff").glob("*/results.csv"))  # other tests of this module may have run first
    at = _page()
    assert at.title[0].value == "Does pretraining pay off?"
    at.multiselect(key="payoff.budgets").set_value([10, 0])
    at.number_input(key="payoff.repeats").set_value(1)
    at.number_input(key="payoff.max_steps").set_value(300).run()
    at.button(key="payoff.launch").click().run()
    assert not at.exception, at.exception
    t = time.time()
    while not at.get("plotly_chart") and time.time() - t < 120:
        time.sleep(0.5)
        at.run()
        assert not at.exception, at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = {tr.get("name") for tr in spec["data"]} - {None}
    assert {"scratch", "scratch + BN + Kaiming", "PCA + logistic"} <= names
    assert any(n.startswith("pretrained, fine-tuned") for n in names)
    assert spec["layout"]["xaxis"]["type"] == "log"
    assert "labels" in at.success[0].value and "best scratch baseline" in at.success[0].value  # the reading
    frames = [f.value for f in at.dataframe]
    assert any("95 % low" in f.columns for f in frames)  # the paired-difference table
    assert "test accuracy" in spec["layout"]["yaxis"]["title"]["text"]
    assert len(set((runs_dir / "payoff").glob("*/results.csv")) - before) == 1


def test_a_killed_job_shows_interrupted_with_a_rerun_button(runs_dir):
    import subprocess
    import sys

    from aelab.jobs import record
    from aelab.payoff import PayoffConfig, job_status, payoff_dir
    from aelab.runs import atomic_write_json

    run = next(r for r in RunStore(runs_dir).list() if r.has_weights())
    cfg = PayoffConfig.make([str(run.dir)], budgets=(10,), repeats=1, max_steps=300)
    out = payoff_dir(cfg, runs_dir)
    out.mkdir(parents=True)
    atomic_write_json(out / "config.json", asdict(cfg))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    atomic_write_json(out / "progress.json", {"done": 1, "total": 6, "message": "scratch at 10 labels"})
    record.write(out, record.new_record(out, "payoff", pid=dead.pid, state="running", heartbeat=time.time()))
    at = _page()
    at.multiselect(key="payoff.budgets").set_value([10])
    at.number_input(key="payoff.repeats").set_value(1)
    at.number_input(key="payoff.max_steps").set_value(300).run()
    assert not at.exception, at.exception
    assert at.warning and "interrupted" in at.warning[0].value
    at.button(key="payoff.rerun").click().run()
    assert not at.exception, at.exception
    t = time.time()
    while job_status(out)["status"] != "completed" and time.time() - t < 120:
        time.sleep(0.5)
    assert job_status(out)["status"] == "completed"  # the re-run finished the grid


def test_invalid_settings_are_explained_before_launch(runs_dir):
    at = _page()
    at.multiselect(key="payoff.runs").set_value([]).run()
    assert "runs" in at.error[0].value and not at.button
