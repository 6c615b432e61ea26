"""The pages over a run store holding damaged runs among good ones: each damaged run says why,
every page still renders, and the good run keeps working everywhere (AppTest, as in test_pages.py)."""
import json
import shutil
import signal
from pathlib import Path

import pytest

from aelab.config import RunConfig
from aelab.metrics import header
from aelab.runs import RunStore
from aelab.worker import execute

from apptest import lab_env, open_page
TINY = {"data.name": "shapes", "model.layers": "32,8", "train.epochs": 2, "train.batch_size": 32}
GOOD, INTERRUPTED = "2026-a-good", "2026-d-interrupted"
DAMAGE = {"2026-b-status": "status.json: not valid JSON", "2026-c-config": "config.json: not valid JSON",
          "2026-e-line": "metrics.jsonl: 1 unreadable line skipped (line 3)",
          "2026-f-summary": "summary.json: holds an array, not an object",
          "2026-g-npz": "probe.npz: not a readable .npz"}


def _damage(d: Path) -> None:
    """Damage the copy of the good run in `d` the way its name says."""
    garbage = bytes(range(256))
    if d.name == INTERRUPTED:  # killed before it saved weights: not damaged, but nothing to load
        (d / "weights.safetensors").unlink()
        (d / "status.json").write_text(json.dumps({"status": "interrupted", "message": "killed"}))
        summary = json.loads((d / "summary.json").read_text())
        (d / "summary.json").write_text(json.dumps({**summary, "status": "interrupted", "weights": False}))
    elif d.name == "2026-b-status":
        (d / "status.json").write_bytes(garbage)
    elif d.name == "2026-c-config":
        (d / "config.json").write_bytes(garbage)
    elif d.name == "2026-e-line":
        lines = (d / "metrics.jsonl").read_bytes().splitlines(keepends=True)
        (d / "metrics.jsonl").write_bytes(b"".join(lines[:2] + [garbage[128:168] + b"\n"] + lines[2:]))
    elif d.name == "2026-f-summary":
        (d / "summary.json").write_text("[1, 2]")
    elif d.name == "2026-g-npz":  # a truncated last snapshot and a garbage probe file
        last = d / "snapshots" / "00002.npz"
        last.write_bytes(last.read_bytes()[:200])
        (d / "probe.npz").write_bytes(garbage)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    d = tmp_path_factory.mktemp("runs")
    lab_env(mp, d)
    run = RunStore(tmp_path_factory.mktemp("src")).create(RunConfig(name="tiny").with_overrides(TINY))
    mp.setattr(signal, "signal", lambda *a: None)  # execute() would take over pytest's SIGTERM
    assert execute(run)["status"] == "completed"
    mp.undo()
    lab_env(mp, d)
    for name in (GOOD, INTERRUPTED, *DAMAGE):
        shutil.copytree(run.dir, d / name)
        _damage(d / name)
    yield d
    mp.undo()


app = open_page


def test_store_damage_is_what_the_pages_should_show(runs_dir):
    got = {r.id: r.damage() for r in RunStore(runs_dir).list()}
    assert set(got) == {GOOD, INTERRUPTED, *DAMAGE} and got[GOOD] is None and got[INTERRUPTED] is None
    assert all(got[rid].startswith(why) for rid, why in DAMAGE.items())  # then the parser's own words


def test_home_lists_every_run_and_says_why_the_damaged_ones_are(runs_dir):
    at = app()
    df = at.dataframe[0].value.set_index("run")
    assert df.loc[GOOD, "status"] == "completed" and df.loc[INTERRUPTED, "status"] == "interrupted"
    for rid, why in DAMAGE.items():
        assert df.loc[rid, "status"] == "damaged" and df.loc[rid, "damage"].startswith(why)
    assert df.loc[GOOD, header("test_full_sq_err")] > 0
    assert df.loc[GOOD, "inspect"] == f"Inspect?run={GOOD}"  # each row links to its pages


@pytest.mark.parametrize("run_id", list(DAMAGE))
def test_inspect_names_the_damage_and_shows_what_still_reads(runs_dir, run_id):
    at = app("app_pages/3_Inspect.py", run=run_id)
    assert at.error[0].value.startswith(f"This run is damaged: {DAMAGE[run_id]}")
    heads = [s.value for s in at.subheader]
    if run_id == "2026-c-config":
        assert heads == []  # nothing can be rebuilt without the config; the error says so
    elif run_id == "2026-g-npz":  # the damaged frame says so; the model below still shows
        assert at.error[1].value.startswith("This snapshot cannot be read: 00002.npz: not a readable .npz")
        assert heads[:3] == ["Replay", "Take it home", "First-layer filters"]
    else:
        assert heads[0] == "Replay" and len(at.get("plotly_chart")) >= 1


def test_inspect_keeps_working_for_the_good_run(runs_dir):
    at = app("app_pages/3_Inspect.py", run=GOOD)
    assert not at.error
    assert [s.value for s in at.subheader] == ["Replay", "Take it home", "First-layer filters",
                                                "Interpolation through the code", "Denoising demo",
                                                "Worst-reconstructed validation images"]


def test_inspect_explains_an_interrupted_run_without_weights(runs_dir):
    at = app("app_pages/3_Inspect.py", run=INTERRUPTED)
    assert not at.error
    text = at.info[0].value
    assert "interrupted before saving them" in text and "appear here when the run ends" not in text


@pytest.mark.parametrize("run_id", ["2026-b-status", "2026-c-config"])
def test_train_re_attaches_to_a_damaged_run_without_crashing(runs_dir, run_id):
    at = app("app_pages/1_Train.py", run=run_id)
    assert any(e.value.startswith(f"This run is damaged: {DAMAGE[run_id]}") for e in at.error)


def test_compare_with_damaged_runs_picked(runs_dir):
    at = app("app_pages/2_Compare.py")
    picked = [GOOD, "2026-b-status", "2026-c-config"]
    at.multiselect(key="compare.runs").set_value(picked).run()
    assert not at.exception, at.exception
    df = at.dataframe[0].value.set_index("run id")
    assert list(df.index) == picked and df.loc[GOOD, header("pca_test_sq_err")] > 0


def test_payoff_offers_only_the_intact_trained_run(runs_dir):
    at = app("app_pages/4_Payoff.py")
    options = at.multiselect(key="payoff.runs").options  # shown as "name · strategy · id"
    assert len(options) == 1 and options[0].endswith(GOOD)
