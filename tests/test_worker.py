"""The worker process and the run store it writes: what a caller polls, controls and reads back."""
import json
import os
import signal
import time

import numpy as np
import pytest
import torch

from aelab.config import RunConfig
from aelab.runs import RunStore
from aelab.worker import WorkerPool, start_run


def _wait(run, proc=None, timeout=60, until=lambda st: st["status"] in ("completed", "stopped", "diverged",
                                                                         "failed", "interrupted")):
    t0 = time.time()
    while time.time() - t0 < timeout:
        st = run.status()
        if until(st):
            return st
        time.sleep(0.1)
    raise AssertionError(f"timed out; status {run.status()}")


def test_worker_trains_and_writes_a_complete_run(tmp_path, tiny_cfg):
    run, proc = start_run(tiny_cfg.with_overrides({"model.tied": True}), tmp_path)
    assert proc.wait(timeout=120) == 0
    d = run.dir
    assert RunConfig.from_dict(json.loads((d / "config.json").read_text())).model.tied
    s = run.summary()
    assert s["status"] == "completed" and s["epochs_completed"] == 2 and s["strategy"] == "end_to_end"
    for key in ("params", "val_full_loss", "val_full_sq_err", "test_full_sq_err", "code_mean_activation", "linear_probe_accuracy",
                "seconds", "samples_per_second", "gflop"):
        assert s[key] is not None, key
    assert len(run.epochs()) == 2 and len(run.snapshot_files()) == 2
    snap = run.load_snapshot(run.snapshot_files()[-1])
    assert snap["recon"].dtype == np.uint8 and snap["codes"].shape == (120, 8)  # 120 val points, code 8
    model = run.load_model()  # safetensors round trip keeps the tie
    assert model.decoders[0].weight is model.encoders[0].weight
    assert not list(d.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_stop_request_ends_with_status_stopped_and_saved_weights(tmp_path, tiny_cfg):
    run, proc = start_run(tiny_cfg.with_overrides({"train.epochs": 2000}), tmp_path)
    _wait(run, until=lambda st: st.get("epoch", 0) >= 1)
    run.request("stop")
    assert proc.wait(timeout=60) == 0
    assert run.summary()["status"] == "stopped" and run.has_weights()


def test_pause_and_resume(tmp_path, tiny_cfg):
    run, proc = start_run(tiny_cfg.with_overrides({"train.epochs": 2000}), tmp_path)
    _wait(run, until=lambda st: st.get("epoch", 0) >= 1)
    run.request("pause")
    _wait(run, until=lambda st: st["status"] == "paused")
    n = len(run.metrics())
    time.sleep(0.6)
    assert len(run.metrics()) == n  # nothing trains while paused
    run.request("resume")
    _wait(run, until=lambda st: st["status"] == "running")
    run.request("stop")
    proc.wait(timeout=60)


def test_stage_by_stage_waits_for_next_stage(tmp_path, tiny_cfg):
    cfg = tiny_cfg.with_overrides({"train.strategy": "greedy", "train.epochs": 1, "train.pause_after_stage": True})
    run, proc = start_run(cfg, tmp_path)
    st = _wait(run, until=lambda st: st["status"] == "paused")
    assert st["message"] == "stage 1 of 2 done" and run.epochs()[-1]["stage"] == 1
    run.request("resume", pause_after_stage=False)  # "Run all stages"
    assert proc.wait(timeout=60) == 0 and run.summary()["status"] == "completed"


def test_killed_worker_leaves_a_readable_interrupted_run(tmp_path, tiny_cfg):
    run, proc = start_run(tiny_cfg.with_overrides({"train.epochs": 2000}), tmp_path)
    _wait(run, until=lambda st: len(run.epochs()) >= 1)  # a whole epoch record is on disk
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    st = run.status()
    assert st["status"] == "interrupted"
    s = run.summary()
    assert s["status"] == "interrupted" and s["epochs_completed"] >= 1
    assert RunStore(tmp_path).get(run.id).epochs()  # metrics still readable


def test_diverging_run_is_marked_with_a_hint(tmp_path, tiny_cfg):
    cfg = tiny_cfg.with_overrides({"train.loss": "mse", "train.lr": 10.0, "train.optimizer": "sgd",
                                   "model.activation": "linear", "train.epochs": 50})
    run, proc = start_run(cfg, tmp_path)
    assert proc.wait(timeout=60) == 1
    s = run.summary()
    assert s["status"] == "diverged" and "train.lr" in s["message"]


def test_failure_inside_the_worker_is_reported(tmp_path, tiny_cfg):
    run, proc = start_run(tiny_cfg.with_overrides({"data.name": "file", "data.path": str(tmp_path / "x.csv")}),
                          tmp_path)
    assert proc.wait(timeout=60) == 1
    s = run.summary()
    assert s["status"] == "failed" and "x.csv" in s["message"]


def test_warm_pool_starts_runs(tmp_path, tiny_cfg):
    pool = WorkerPool(tmp_path)
    try:
        run = pool.start(tiny_cfg)
        assert _wait(run)["status"] == "completed"
        assert [r.id for r in RunStore(tmp_path).list()] == [run.id]
    finally:
        pool.shutdown()


def test_invalid_config_is_refused_before_a_process_starts(tmp_path, tiny_cfg):
    with pytest.raises(ValueError, match="train.lr"):
        start_run(tiny_cfg.with_overrides({"train.lr": -1}), tmp_path)
    assert not list(tmp_path.iterdir())


def test_metrics_reader_skips_a_half_written_line(tmp_path, tiny_cfg):
    run = RunStore(tmp_path).create(tiny_cfg)
    with open(run.dir / "metrics.jsonl", "w") as f:
        f.write('{"kind": "epoch", "epoch": 1}\n{"kind": "ep')
    assert len(run.metrics()) == 1
    with open(run.dir / "metrics.jsonl", "a") as f:
        f.write('och", "epoch": 2}\n')
    assert [r["epoch"] for r in run.metrics()] == [1, 2]


def test_pool_respawns_its_standby_after_the_delay(tmp_path, tiny_cfg):
    pool = WorkerPool(tmp_path, respawn_delay_s=0.5)
    try:
        first = pool._standby
        run = pool.start(tiny_cfg)
        assert pool._standby is None  # the launched run gets the cores to itself for a moment
        time.sleep(1.5)
        assert pool._standby is not None and pool._standby is not first and pool._standby.poll() is None
        assert _wait(run)["status"] == "completed"
    finally:
        pool.shutdown()
