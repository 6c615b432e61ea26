"""TensorBoard and MLflow (aelab/tracking.py): what is written reads back, counted against the run folder."""
import json

import numpy as np
import pytest

from aelab.cli import main
from aelab.config import RunConfig, flat_items
from aelab.race import RACES_DIR
from aelab.runs import RunStore
from aelab.worker import execute


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A small greedy run trained with AELAB_TENSORBOARD set (the live log), and its folder."""
    root = tmp_path_factory.mktemp("tracking")
    cfg = RunConfig(name="tracked").with_overrides({"data.name": "shapes", "model.layers": "32,8", "train.epochs": 2,
                                                    "train.batch_size": 32, "train.strategy": "greedy",
                                                    "train.finetune_epochs": 1})
    mp = pytest.MonkeyPatch()
    mp.setattr("signal.signal", lambda *a: None)  # execute() would take over pytest's SIGTERM
    mp.setenv("AELAB_TENSORBOARD", str(root / "live"))
    run = RunStore(root / "runs").create(cfg)
    assert execute(run)["status"] == "completed"
    mp.undo()
    return run, root


def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    ea.Reload()
    return ea


def _check_board(run, folder):
    ea = _events(folder)
    epochs = run.epochs()
    val = ea.Scalars("val_full_sq_err")
    assert [e.step for e in val] == [r["epoch"] for r in epochs]
    assert np.allclose([e.value for e in val], [r["val_full_sq_err"] for r in epochs], rtol=1e-6)
    assert {"train_loss", "val_loss", "val_stage_sq_err", "gflop", "loss"} <= set(ea.Tags()["scalars"])
    assert len(ea.Scalars("loss")) == sum(r["kind"] == "step" for r in run.metrics())
    assert len(ea.Images("reconstructions")) == len(run.snapshot_files())
    stages = {r["stage_name"] for r in epochs}
    assert len(ea.Tensors("stages/text_summary")) == len(stages) == 3  # 2 pretraining layers + fine-tuning
    texts = " ".join(t.tensor_proto.string_val[0].decode() for t in ea.Tensors("stages/text_summary"))
    assert all(name in texts for name in stages)
    meta = next(folder.glob("*/code/metadata.tsv")).read_text().splitlines()
    codes = run.load_snapshot(run.snapshot_files()[-1])["codes"]
    probe = run.probe()
    assert len(meta) == len(codes) and meta[:5] == [str(probe["classes"][i]) for i in probe["labels"][:5]]
    assert (folder / "projector_config.pbtxt").exists()


def test_tensorboard_export_reads_back(logged, tmp_path):
    run, _ = logged
    assert main(["export", str(run.dir), "--tensorboard", str(tmp_path)]) == 0
    _check_board(run, tmp_path / run.id)


def test_a_run_logs_live_when_asked(logged):
    run, root = logged
    _check_board(run, root / "live" / run.id)


def test_mlflow_params_metrics_and_artifacts_read_back(logged, tmp_path, capsys, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # a sqlite store keeps its artifacts in ./mlruns: not in the checkout
    run, _ = logged
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (run.dir.parent / RACES_DIR).mkdir(exist_ok=True)  # make it an arm of a race: nested under its parent
    (run.dir.parent / RACES_DIR / "race-x.json").write_text(json.dumps({"id": "race-x", "run_ids": [run.id]}))
    try:
        assert main(["export", str(run.dir), "--mlflow", uri]) == 0
    finally:
        (run.dir.parent / RACES_DIR / "race-x.json").unlink()
    mid = capsys.readouterr().out.split()[-1]
    client = MlflowClient(uri)
    got = client.get_run(mid)
    assert got.data.params == {k: ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
                               for k, v in flat_items(run.config).items()}
    history = client.get_metric_history(mid, "val_full_sq_err")
    assert [m.step for m in history] == [r["epoch"] for r in run.epochs()]
    assert [m.value for m in history] == pytest.approx([r["val_full_sq_err"] for r in run.epochs()])
    assert got.data.metrics["summary.test_full_sq_err"] == pytest.approx(run.summary()["test_full_sq_err"])
    assert {a.path for a in client.list_artifacts(mid)} == {"config.json", "summary.json", "weights.safetensors"}
    parent = client.get_run(got.data.tags["mlflow.parentRunId"])
    assert parent.data.tags["aelab.race_parent"] == "race-x" and got.info.status == "FINISHED"
    assert main(["export", str(run.dir), "--mlflow", uri]) == 0  # again: the same MLflow run, not a copy
    assert capsys.readouterr().out.split()[-1] == mid


def test_a_sweep_cell_or_trial_is_nested_under_its_sweep(logged):
    """MLflow's parent for a run: its race, or the sweep that lists it as a cell or as a tuning trial."""
    from aelab.sweep import SWEEPS_DIR
    from aelab.tracking import _group_of

    run, _ = logged
    sweeps = run.dir.parent / SWEEPS_DIR
    sweeps.mkdir(exist_ok=True)
    try:
        assert _group_of(run) is None
        record = {"id": "sweep-a", "cells": [{"run_id": "other"}], "tuning": {"cells": {"greedy": {"trials": [
            {"run_id": run.id, "value": 1.0}]}}}}
        (sweeps / "sweep-a.json").write_text(json.dumps(record))
        assert _group_of(run) == ("sweep", "sweep-a")  # a tuning trial
        record.update(tuning=None, cells=[{"run_id": run.id}])
        (sweeps / "sweep-a.json").write_text(json.dumps(record))
        assert _group_of(run) == ("sweep", "sweep-a")  # a cell
    finally:
        (sweeps / "sweep-a.json").unlink()
