"""The example runs: one per preset plus a race, built once at background priority, never rebuilt when done."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from aelab import examples, jobs, race
from aelab.jobs.queue import BACKGROUND
from aelab.presets import PRESETS


@pytest.fixture(autouse=True)
def own_queue(tmp_path, monkeypatch):
    monkeypatch.setenv("AELAB_QUEUE_DIR", str(tmp_path / ".queue"))


def test_every_preset_is_an_example_with_its_own_config_and_the_race_is_greedy_vs_end_to_end():
    assert set(examples.EXAMPLES) == set(PRESETS) | {examples.RACE}
    for ex in examples.EXAMPLES.values():
        assert ex.versus is None or ex.versus in examples.EXAMPLES and ex.versus != ex.name
        preset = PRESETS[ex.preset].config()
        assert ex.config() == preset.with_overrides({"train.pause_after_stage": False})
    r = examples.EXAMPLES[examples.RACE]
    assert r.race == "strategy" and race.why_not(r.config(), r.race) is None


def fake_run(root: Path, name: str, status: str) -> str:
    """A run folder as the worker leaves it (only what the example states read)."""
    d = root / f"20260101-000000-{name}-{status}"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(PRESETS["keras-simple"].config().to_dict()))
    (d / "status.json").write_text(json.dumps({"status": status, "epoch": 3, "epochs_total": 3}))
    (d / "summary.json").write_text(json.dumps({"status": status, "test_full_sq_err": 12.5, "weights": False}))
    return d.name


def test_finished_examples_are_kept_and_missing_or_failed_ones_are_built(tmp_path, monkeypatch):
    launched = []

    def launch(root, ex, overrides):  # what _launch records, without training
        launched.append(ex.name)
        m = examples.manifest(root)
        m[ex.name] = {"runs": [fake_run(root, ex.name, "completed")], "race": None, "overrides": overrides}
        (examples.folder(root) / "manifest.json").write_text(json.dumps(m))
        return []
    monkeypatch.setattr(examples, "_launch", launch)
    examples.folder(tmp_path).mkdir()
    done, failed = fake_run(tmp_path, "a", "completed"), fake_run(tmp_path, "b", "failed")
    (examples.folder(tmp_path) / "manifest.json").write_text(json.dumps({
        "keras-simple": {"runs": [done]}, "keras-deep": {"runs": [failed]}, "conv": {"runs": ["gone"]}}))
    states = {s.example.name: s.state for s in examples.statuses(tmp_path)}
    assert (states["keras-simple"], states["keras-deep"], states["conv"], states["race"]) == \
        ("done", "failed", "missing", "missing")
    assert not examples.complete(tmp_path)
    spawned = []  # what the app does at its start while some are missing: one background build, tied to it
    monkeypatch.setattr(jobs, "spawn", lambda *args, **kw: spawned.append((args, kw["service"])) or "proc")
    assert examples.start_background(tmp_path) == "proc" and spawned == [(("aelab.examples", str(tmp_path)), True)]
    examples.build(tmp_path, poll_s=0.01)
    assert launched == [n for n in examples.EXAMPLES if n != "keras-simple"]  # in order, all but the done one
    assert not (tmp_path / failed).exists()  # the failed run is replaced, not left beside its successor
    assert examples.complete(tmp_path) and jobs.state(examples.folder(tmp_path)) == "completed"
    launched.clear()
    examples.build(tmp_path, poll_s=0.01)
    assert launched == [] and examples.start_background(tmp_path) is None  # nothing to build: no process


def test_cli_builds_a_tiny_race_at_background_priority_once(tmp_path):
    def cli():
        return subprocess.run([sys.executable, "-m", "aelab", "examples", "--runs-dir", str(tmp_path), "--only", "race",
                               "--set", "data.name=shapes", "--set", "train.epochs=1", "--set", "train.finetune_epochs=1",
                               "--set", "model.layers=16,8,4"], capture_output=True, text=True, timeout=300, check=False)
    out = cli()
    assert out.returncode == 0, out.stderr
    name, state, *folders = out.stdout.split()
    assert (name, state, len(folders)) == ("race", "done", 2)
    entry = examples.manifest(tmp_path)["race"]
    assert [Path(f).name for f in folders] == entry["runs"] and race.load(tmp_path, entry["race"]).run_ids == tuple(entry["runs"])
    assert [jobs.read(f)["priority"] for f in folders] == [BACKGROUND] * 2
    assert [json.loads((Path(f) / "summary.json").read_text())["strategy"] for f in folders] == ["greedy", "end_to_end"]
    again = cli()  # idempotent: the same folders, nothing trained
    assert again.returncode == 0 and again.stdout == out.stdout
    assert len([d for d in tmp_path.iterdir() if (d / "config.json").exists()]) == 2


def test_home_lists_the_examples_with_their_links_and_the_build_progress(tmp_path, monkeypatch):
    import os
    import time

    from apptest import lab_env, open_page

    lab_env(monkeypatch, tmp_path)
    examples.folder(tmp_path).mkdir()
    simple, deep = fake_run(tmp_path, "simple", "completed"), fake_run(tmp_path, "deep", "completed")
    arms = [fake_run(tmp_path, "greedy", "completed"), fake_run(tmp_path, "e2e", "completed")]
    r = race.save(tmp_path, "strategy", ["greedy", "end-to-end"], arms)
    training = fake_run(tmp_path, "tied", "running")  # tied-stacked, half way, its worker alive
    (tmp_path / training / "status.json").write_text(json.dumps({"status": "running", "epoch": 5, "epochs_total": 10}))
    (tmp_path / training / "job.json").write_text(json.dumps(
        {"state": "running", "pid": os.getpid(), "heartbeat": time.time(), "priority": BACKGROUND}))
    (examples.folder(tmp_path) / "manifest.json").write_text(json.dumps({
        "keras-simple": {"runs": [simple]}, "keras-deep": {"runs": [deep]}, "race": {"runs": arms, "race": r.id},
        "tied-stacked": {"runs": [training]}}))
    at = open_page()
    assert at.get("progress")[0].proto.text.startswith("building 4 of 11: Tied stacked AE (greedy), 50%")
    df = at.dataframe[0].value.set_index("example")
    assert len(df) == len(examples.EXAMPLES)
    deep_row, race_row = df.loc[PRESETS["keras-deep"].title], df.loc[examples.EXAMPLES["race"].title]
    assert deep_row.to_dict() == {
        "status": "ready", "test error": "12.50", "compare": f"Compare?runs={deep},{simple}", "inspect": f"Inspect?run={deep}",
        "replay": f"Inspect?run={deep}&present=1"}
    assert race_row["test error"] == "12.50 vs 12.50"
    assert (race_row["compare"], race_row["replay"]) == (f"Compare?runs={arms[0]},{arms[1]}", f"Train?race={r.id}&present=1")
    assert df.loc[PRESETS["tied-stacked"].title, "status"] == "building…"
    conv = df.loc[PRESETS["conv"].title]
    assert conv["status"] == "not built yet" and conv.drop("status").isna().all()
    assert any("No runs yet besides the examples" in i.value for i in at.info)  # examples stay out of Recent runs
    cmp = open_page("app_pages/2_Compare.py", runs=f"{arms[1]},{arms[0]}")  # the race's Compare link
    assert cmp.multiselect(key="compare.runs").value == [arms[1], arms[0]]
