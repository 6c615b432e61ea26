"""The Train page's race (aelab/ui/race.py) through AppTest: one click, two runs, shared axes."""
import json
import os
import time

import numpy as np
import pytest

from aelab import race
from aelab.metrics import label
from aelab.runs import Run

from apptest import lab_env, open_page

TINY = {"data.name": "shapes", "model.layers": "32,8", "train.epochs": 2, "train.batch_size": 32,
        "train.strategy": "greedy", "train.finetune_epochs": 2}


@pytest.fixture
def at(tmp_path, monkeypatch):
    lab_env(monkeypatch, tmp_path / "runs")
    monkeypatch.setenv("AELAB_QUEUE_DIR", str(tmp_path / ".queue"))
    page = open_page("app_pages/1_Train.py", **{k: str(v) for k, v in TINY.items()})
    return page, tmp_path / "runs"


def charts(at) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {s["layout"].get("title", {}).get("text", ""): s for s in specs}


def map_titles(at) -> list[str]:
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
    return sorted(t for t in titles if t.startswith("code map"))


def test_one_click_races_greedy_against_end_to_end_on_the_compute_axis(at):
    at, runs = at
    assert at.selectbox(key="race.kind").value == "strategy"
    at.button(key="launch_race").click().run()
    assert not at.exception, at.exception
    race_id = at.query_params["race"][-1] if isinstance(at.query_params["race"], list) else at.query_params["race"]
    r = race.load(runs, race_id)
    t0 = time.time()
    while time.time() - t0 < 120:
        at.run()
        assert not at.exception, at.exception
        if sum("completed" in p.proto.text for p in at.get("progress")) == 2:
            break
        time.sleep(0.3)
    assert sum("completed" in p.proto.text for p in at.get("progress")) == 2
    curves = next(f for t, f in charts(at).items() if t.startswith("validation squared error"))
    assert [d["name"] for d in curves["data"]] == list(r.labels)
    assert curves["layout"]["xaxis"]["title"]["text"] == label("gflop")
    ends = [d["x"][-1] for d in curves["data"]]
    assert abs(ends[0] - ends[1]) / ends[0] < 0.25  # equal compute: both curves end near the same GFLOP
    assert len(at.image) == 2 and sum(t.startswith("code map") for t in charts(at)) == 2
    reading = next(c.value for c in at.caption if "leads by" in c.value)
    # recompute the reading from the run folders themselves
    last = [Run(runs / i).epochs()[-1]["val_full_sq_err"] for i in r.run_ids]
    tests = [json.loads((runs / i / "summary.json").read_text())["test_full_sq_err"] for i in r.run_ids]
    leader = r.labels[0] if last[0] < last[1] else r.labels[1]
    assert f"**{leader}** leads by {abs(last[0] - last[1]):.3g}" in reading
    assert f"on the test split {tests[0]:.4g} vs {tests[1]:.4g}" in reading
    from aelab.export import RaceReplay, race_timeline

    arms = RaceReplay(tuple(Run(runs / i) for i in r.run_ids), r.labels)
    n = len(race_timeline(arms.runs))
    at.toggle(key="race.replay").set_value(True).run()  # the finished race again, as an animation
    assert not at.exception, at.exception
    film = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "frames" in json.loads(c.proto.spec))
    assert len(film["frames"]) == n >= 2 and [d["name"] for d in film["data"][:2]] == list(r.labels)
    assert {b.proto.label for b in at.get("download_button")} >= {"Replay as GIF", "Replay as MP4", "Last frame as PNG"}
    status = [json.loads((runs / i / "status.json").read_text()) for i in r.run_ids]
    for i, st in zip(r.run_ids, status):  # the projector view while the race runs: both arms live
        (runs / i / "status.json").write_text(json.dumps({**st, "status": "running", "pid": os.getpid()}))
    shown = open_page("app_pages/1_Train.py", race=race_id, present="1")
    assert not shown.get("button") and len(shown.image) == 2  # no settings, no Launch: the panels only
    assert len(shown.get("plotly_chart")) == 3  # the curves and both code maps
    assert map_titles(shown) == ["code map (PCA)"] * 2
    from aelab.embed import load_codes, umap_path

    snaps = [sorted((runs / i / "snapshots").glob("[0-9]*.npz")) for i in r.run_ids]
    assert all(len(s) >= 2 for s in snaps)
    older = [s[-2] for s in snaps]  # not the newest frames
    try:
        for f in older[:1]:  # one arm has a UMAP frame, the other none yet: both stay PCA
            np.save(umap_path(f), np.random.default_rng(0).standard_normal((len(load_codes(f)), 2)).astype("f4"))
        assert map_titles(open_page("app_pages/1_Train.py", race=race_id, present="1")) == ["code map (PCA)"] * 2
        for f in older[1:]:  # the UMAP process got to these; the newest frames get theirs later, rarely both at once
            np.save(umap_path(f), np.random.default_rng(1).standard_normal((len(load_codes(f)), 2)).astype("f4"))
        shown = open_page("app_pages/1_Train.py", race=race_id, present="1")
        assert map_titles(shown) == sorted(f"code map (UMAP, epoch {int(f.stem)})" for f in older)  # which epoch
    finally:
        for f in older:
            umap_path(f).unlink(missing_ok=True)
    for i, st in zip(r.run_ids, status):
        (runs / i / "status.json").write_text(json.dumps(st))
    shown = open_page("app_pages/1_Train.py", race=race_id, present="1")  # ended: its replay, one screen
    (film,) = [json.loads(c.proto.spec) for c in shown.get("plotly_chart")]
    assert len(film["frames"]) == n and film["layout"]["font"]["size"] == 18
    assert any("leads by" in m.value for m in shown.markdown)
    replay = open_page("app_pages/3_Inspect.py", run=r.run_ids[0], present="1")
    assert replay.select_slider(key=f"present.frame.{r.run_ids[0]}").value == len(
        list((runs / r.run_ids[0] / "snapshots").glob("*.npz"))) - 1
    replay.select_slider(key=f"present.frame.{r.run_ids[0]}").set_value(0).run()
    assert not replay.exception and len(replay.image) == 1 and not replay.get("subheader")


def test_a_race_the_config_cannot_run_is_disabled_and_says_why(at):
    at, _ = at
    at.selectbox(key="race.kind").set_value("noise").run()
    assert at.button(key="launch_race").disabled
    assert any("noise.kind is none" in c.value for c in at.caption)


def test_mid_race_the_reading_compares_both_arms_at_equal_compute():
    from aelab.ui.race import verdict

    class Arm:  # the three things the reading uses from a run
        def __init__(self, points):
            self.points = points

        def epochs(self):
            return [{"gflop": g, "val_full_sq_err": v} for g, v in self.points]

        def status(self):
            return {"status": "running"}

        def summary(self):
            return None

    fast = Arm([(1.0, 50.0), (2.0, 30.0), (3.0, 10.0)])  # ahead in compute: read off at 1.5 GFLOP -> 40
    slow = Arm([(0.5, 60.0), (1.5, 35.0)])
    r = race.Race("race-x", "strategy", ("fast", "slow"), ("a", "b"), 0.0)
    text = verdict(r, [fast, slow])
    assert "at equal compute so far (1.5 GFLOP)" in text and "fast 40 vs slow 35" in text
    assert "**slow** leads by 5" in text  # not "fast leads by 25", which its lead in compute would have said


class _FakeRun:
    def __init__(self, status, epochs):
        self.s, self.e = status, epochs

    def status(self):
        return {"status": self.s}

    def epochs(self):
        return self.e


@pytest.mark.parametrize("arms, every", [
    ((("running", []), ("running", [])), "first"),  # just launched: fast, as a single run's panel
    ((("running", [{"epoch": 1}]), ("queued", [])), "first"),  # one arm still to start
    ((("running", [{"epoch": 1}]), ("running", [{"epoch": 1}])), "refresh"),
    ((("running", [{"epoch": 1}]), ("failed", [])), "refresh"),  # a failed arm does not keep the fast timer
    ((("completed", [{"epoch": 1}]), ("stopped", [])), None),
])
def test_a_race_polls_fast_until_each_live_arm_has_an_epoch(monkeypatch, arms, every):
    from aelab.ui import live

    timers = []
    monkeypatch.setattr(live.st, "fragment", lambda run_every=None: timers.append(run_every) or (lambda f: f))
    live.poll([_FakeRun(*a) for a in arms], lambda: None)
    assert timers == [{"first": live.FIRST_REFRESH_S, "refresh": live.REFRESH_S, None: None}[every]]
