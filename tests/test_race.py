"""Races: two arms derived from one config, launched as one job group, recorded in the store."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aelab import flops, jobs, race
from aelab.model import build_model
from aelab.runs import RunStore
from aelab.worker import WorkerPool

SHAPE = (1, 12, 12)


@pytest.fixture(autouse=True)
def own_queue(tmp_path, monkeypatch):
    monkeypatch.setenv("AELAB_QUEUE_DIR", str(tmp_path / ".queue"))


@pytest.fixture
def greedy(tiny_cfg):
    return tiny_cfg.with_overrides({"model.layers": "48,24,8", "train.strategy": "greedy", "train.epochs": 2,
                                    "train.finetune_epochs": 3, "train.pause_after_stage": True})


def _differences(a, b) -> set[str]:
    da, db = a.to_dict(), b.to_dict()
    return {f"{sec}.{k}" for sec in da if isinstance(da[sec], dict) for k in da[sec] if da[sec][k] != db[sec][k]}


def test_the_end_to_end_arm_matches_the_greedy_compute_and_nothing_else_differs(greedy):
    (_, g), (label, e) = race.arms(greedy, "strategy", SHAPE)
    assert e.train.strategy == "end_to_end" and e.train.finetune_epochs == 0
    assert _differences(g, e) == {"train.strategy", "train.epochs", "train.finetune_epochs"}
    assert not g.train.pause_after_stage  # a race runs through
    model = build_model(g, SHAPE)
    one_epoch = flops.planned_macs(model, e.with_overrides({"train.epochs": 1}), 100)
    assert abs(flops.planned_macs(model, g, 100) - flops.planned_macs(model, e, 100)) <= one_epoch / 2
    # hand count, dense 144-48-24-8: a stage trains its encoder and decoder (3 x forward), caching h1, h2 once
    stage = [144 * 48 * 2, 48 * 24 * 2, 24 * 8 * 2]
    greedy_macs = 3 * sum(stage) * 2 + 144 * 48 + 48 * 24 + 3 * sum(stage) * 3
    assert e.train.epochs == round(greedy_macs / (3 * sum(stage))) and f"{e.train.epochs} epochs" in label


def test_the_equal_compute_count_from_the_config_is_the_built_models(greedy):
    for cfg, shape in [(greedy, SHAPE), (greedy.with_overrides({"model.kind": "conv", "model.layers": "4,2"}),
                                          (1, 10, 14)), (greedy.with_overrides({"model.tied": True}), (3, 4, 4))]:
        assert flops.stage_macs(flops.Arch.of(cfg, shape)) == flops.stage_macs(build_model(cfg, shape))


# What the server does on Launch race, in a fresh interpreter; the workers it spawns are stand-ins (sleep).
LAUNCH = """
import subprocess, sys, json
from aelab import jobs, race
from aelab.config import RunConfig
from aelab.worker import WorkerPool
spawned = []
def spawn(*args, **kwargs):
    spawned.append(subprocess.Popen(["sleep", "60"], stdin=subprocess.PIPE))
    return spawned[-1]
jobs.spawn = spawn
cfg = RunConfig.from_dict(json.loads(sys.argv[1]))
pool = WorkerPool(sys.argv[2], spares=0)
r = race.start(pool, cfg, "strategy", (1, 12, 12))
for p in spawned:
    p.kill()
print(json.dumps({"arms": len(r.run_ids), "spawned": len(spawned), "torch": "torch" in sys.modules}))
"""


def test_the_server_launches_a_race_without_importing_torch(tmp_path, greedy):
    """Matching the arms' compute once built both models (1.7 s of torch import on a fresh server's first race,
    before either run existed); it is counted from the shapes now."""
    env = dict(os.environ, AELAB_QUEUE_DIR=str(tmp_path / ".queue"))
    out = subprocess.run([sys.executable, "-c", LAUNCH, json.dumps(greedy.to_dict()), str(tmp_path / "runs")],
                         capture_output=True, text=True, env=env, timeout=120, cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"arms": 2, "spawned": 2, "torch": False}


def test_noise_and_tied_races_change_one_thing(greedy):
    noisy = greedy.with_overrides({"noise.kind": "gaussian", "noise.level": 0.3})
    (_, a), (_, b) = race.arms(noisy, "noise", SHAPE)
    assert _differences(a, b) == {"noise.kind"} and b.noise.kind == "none"
    (_, a), (_, b) = race.arms(greedy, "tied", SHAPE)
    assert _differences(a, b) == {"model.tied"}


def test_a_config_that_cannot_race_that_way_is_told_why(tiny_cfg, greedy):
    with pytest.raises(ValueError, match="strategy race starts from a greedy config"):
        race.arms(tiny_cfg, "strategy", SHAPE)
    with pytest.raises(ValueError, match="noise.kind is none"):
        race.arms(greedy, "noise", SHAPE)
    assert race.why_not(greedy, "bogus").startswith("race kind 'bogus'")


def test_race_records_read_back_and_ids_never_reach_outside_the_store(tmp_path):
    r = race.save(tmp_path, "noise", ["a", "b"], ["r1", "r2"])
    assert race.load(tmp_path, r.id) == r
    for bad in ("../x", "/etc/passwd", "a/b", "nope"):
        with pytest.raises(KeyError):
            race.load(tmp_path, bad)


def test_a_race_starts_both_runs_at_once_one_thread_each(tmp_path, greedy, monkeypatch):
    monkeypatch.setenv("AELAB_MAX_JOBS", "2")
    pool = WorkerPool(tmp_path)
    try:
        r = race.start(pool, greedy, "strategy", SHAPE)
        runs = [RunStore(tmp_path).get(i) for i in r.run_ids]
        assert [x.config.train.strategy for x in runs] == ["greedy", "end_to_end"]
        t0 = time.time()
        while any(x.status()["status"] in ("queued", "running") for x in runs) and time.time() - t0 < 120:
            time.sleep(0.2)
        assert [x.status()["status"] for x in runs] == ["completed", "completed"]
        recs = [jobs.read(x.dir) for x in runs]
        assert [rec["go_threads"] for rec in recs] == [jobs.fair_threads(2)] * 2  # one thread each on 2 cores
        assert all(rec["ready"] for rec in recs)
        assert abs(recs[0]["go"] - recs[1]["go"]) < 1.0  # their first steps came together (a warm, a cold worker)
        gf = [x.summary()["gflop"] for x in runs]
        assert abs(gf[0] - gf[1]) / gf[0] < 0.2
    finally:
        pool.shutdown()
