"""Checkpoints and resume: an interrupted run continues where it stopped and (on CPU) ends bit-identical
to the run that was never interrupted; a killed worker's run resumes to completion with whole curves."""
import io
import json
import os
import signal
import time

import pytest
import torch

from apptest import open_page
from aelab import cli, jobs
from aelab import train as T
from aelab.model import build_model
from aelab.runs import Run, RunStore, RunWriter
from aelab.worker import CHECKPOINT_ENV, execute, start_resume, start_run


@pytest.fixture(autouse=True)
def own_queue(tmp_path, monkeypatch):
    monkeypatch.setenv("AELAB_QUEUE_DIR", str(tmp_path / ".queue"))


class StopAfter(T.Control):
    """Stops the run at its n-th control check: an interruption at a known, reproducible moment."""

    def __init__(self, n: int):
        self.left = n

    def poll(self):
        self.left -= 1
        return "stop" if self.left <= 0 else None


def _train(cfg, data, control=None, resume_from=None):
    """(final weights, epoch records, [(checkpoint state, epoch records emitted before it)]) of one
    in-process run with a checkpoint at every control check; resume_from: a checkpoint state to continue
    from (on a freshly built model)."""
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, data.input_shape)
    epochs, states = [], []

    def emit(kind, **kw):
        if kind == "epoch":
            epochs.append(kw)
        elif kind == "checkpoint":  # through bytes, as through the file: no live tensor is shared
            buf = io.BytesIO()
            torch.save(kw["state"], buf)
            states.append((torch.load(io.BytesIO(buf.getvalue()), weights_only=True), len(epochs)))
    ctx = T.make_context(cfg, data, model, emit=emit, control=control)
    ctx.checkpoint_every_s = 0.0
    if resume_from is not None:
        T.restore(ctx, resume_from)
    try:
        T.run(ctx)
    except T.Stopped:
        pass
    return model.state_dict(), epochs, states


CONFIGS = {
    "end_to_end": {"train.epochs": 3, "noise.kind": "gaussian", "noise.level": 0.3},
    "greedy+finetune": {"train.strategy": "greedy", "train.epochs": 2, "train.finetune_epochs": 2,
                        "noise.kind": "masking", "noise.level": 0.3, "train.schedule": "cosine"},
}


@pytest.mark.parametrize("name", CONFIGS)
def test_interrupted_run_resumes_bit_identical(name, tiny_cfg, shapes, monkeypatch):
    monkeypatch.setattr(T, "LOG_EVERY_S", 0.0)  # a control check (and a checkpoint) after every batch
    cfg = tiny_cfg.with_overrides(CONFIGS[name])
    want, want_epochs, every = _train(cfg, shapes)
    n_batches = -(-int(len(shapes.x_train)) // cfg.train.batch_size)
    # stop mid-epoch, at an epoch's end, and (greedy) inside stage 2 and inside the fine-tuning
    # the n-th control check stops it, so the last checkpoint is the one after check n-1: after the first
    # batch, after an epoch's last batch (before its validation), at an epoch's end, mid-run, near the end
    stops = sorted({2, n_batches + 1, n_batches + 2, len(every) // 2, len(every) - 3})
    for stop in stops:
        _, before, states = _train(cfg, shapes, control=StopAfter(stop))
        state, n_before = states[-1]
        got, after, _ = _train(cfg, shapes, resume_from=state)
        for k, v in want.items():
            assert torch.equal(v, got[k]), (stop, k)
        records = before[:n_before] + after
        assert [e["epoch"] for e in records] == [e["epoch"] for e in want_epochs], stop
        for a, b in zip(records, want_epochs):
            assert (a["train_loss"], a["val_loss"], a["val_full_sq_err"], a["val_stage_pixel_loss"], a["step"], a["samples"]) == \
                (b["train_loss"], b["val_loss"], b["val_full_sq_err"], b["val_stage_pixel_loss"], b["step"], b["samples"]), (stop, a["epoch"])
    stages = {s["stage"] for s, _ in every}
    assert stages == ({1} if name == "end_to_end" else {1, 2, 3})


def test_checkpoint_saves_every_numeric_context_counter(tiny_cfg, shapes):
    """Counters added to the Context later (a compute total, say) travel with the checkpoint unasked."""
    ctx = T.make_context(tiny_cfg, shapes, build_model(tiny_cfg, shapes.input_shape))
    ctx.step, ctx.samples, ctx.epoch = 7, 224, 2
    saved = T.counters(ctx)
    assert {"step", "samples", "epoch", "last_snapshot", "last_checkpoint"} <= set(saved)
    assert "n_stages_total" not in saved and "checkpoint_every_s" not in saved
    assert (saved["step"], saved["samples"], saved["epoch"]) == (7, 224, 2)


def _wait(cond, timeout=120, what="condition"):
    t = time.time()
    while time.time() - t < timeout:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_worker_resumes_to_completion(tmp_path, tiny_cfg, monkeypatch):
    monkeypatch.setenv(CHECKPOINT_ENV, "0")  # a checkpoint at every control check
    run, proc = start_run(tiny_cfg.with_overrides({"train.epochs": 20, "noise.kind": "gaussian",
                                                   "noise.level": 0.2}), tmp_path)
    _wait(lambda: (run.dir / "checkpoint.pt").exists(), what="a checkpoint")
    run.request("pause")  # held at a control check, with records written after the last checkpoint
    _wait(lambda: run.status()["status"] == "paused", what="the pause")
    os.kill(proc.pid, signal.SIGKILL)  # no chance to save anything more
    proc.wait()
    _wait(lambda: run.status()["status"] == "interrupted", what="the run to read interrupted")
    at = Run(run.dir).checkpoint()["counters"]
    assert run.resumable() and run.metrics()[-1]["step"] >= at["step"]
    monkeypatch.setenv(CHECKPOINT_ENV, "1000")  # the rest without durable writes at every check
    assert cli.main(["resume", str(run.dir)]) == 0  # follows the resumed worker to its end
    run = Run(run.dir)
    assert run.status()["status"] == "completed" and run.summary()["status"] == "completed"
    assert jobs.state(run.dir) == "completed" and run.has_weights() and not run.damage()
    assert [e["epoch"] for e in run.epochs()] == list(range(1, 21))  # no duplicates, no gaps
    assert run.summary()["epochs_completed"] == 20 and run.summary()["step"] == run.epochs()[-1]["step"]
    steps = [r["step"] for r in run.metrics() if r["kind"] == "step"]
    assert steps == sorted(set(steps))  # the step records the kill cut off were dropped, not repeated
    snaps = [int(p.stem) for p in run.snapshot_files()]
    assert snaps == sorted(set(snaps)) and snaps[-1] == 20


def test_only_an_interrupted_run_with_a_checkpoint_resumes(tmp_path, tiny_cfg):
    run = RunStore(tmp_path).create(tiny_cfg)
    (run.dir / "status.json").write_text(json.dumps({"status": "completed"}))
    with pytest.raises(ValueError, match="it is completed"):
        start_resume(run)
    (run.dir / "status.json").write_text(json.dumps({"status": "interrupted"}))
    with pytest.raises(ValueError, match="no checkpoint"):
        start_resume(run)
    (run.dir / "checkpoint.pt").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ValueError, match="checkpoint.pt: not a readable checkpoint"):
        start_resume(run)
    assert jobs.read(run.dir) is None  # nothing was queued


def test_cli_resume_names_what_is_wrong(tmp_path, tiny_cfg, capsys):
    run = RunStore(tmp_path).create(tiny_cfg)
    (run.dir / "status.json").write_text(json.dumps({"status": "interrupted"}))
    assert cli.main(["resume", str(run.dir)]) == 2 and "no checkpoint" in capsys.readouterr().err
    assert cli.main(["resume", str(tmp_path / "nope")]) == 2 and "RUN_DIR" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(run.dir), "--set", "train.epochs=3"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_train_page_offers_resume_for_an_interrupted_run(tmp_path, tiny_cfg, monkeypatch):

    monkeypatch.setenv("AELAB_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("AELAB_UMAP", "0")
    monkeypatch.setenv(CHECKPOINT_ENV, "0")
    run = RunStore(tmp_path).create(tiny_cfg)
    emit = RunWriter.emit

    def ctrl_c_after_first_checkpoint(self, kind, **kw):
        emit(self, kind, **kw)
        if kind == "checkpoint":
            raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(RunWriter, "emit", ctrl_c_after_first_checkpoint)
        assert execute(run)["status"] == "interrupted"  # in this process, as a Ctrl-C leaves it

    def page():
        at = open_page("app_pages/1_Train.py", run=run.id)
        return at
    at = page()
    assert {"rerun", "resume_run"} <= {b.key for b in at.button}
    at.button(key="resume_run").click().run()
    assert not at.exception, at.exception
    assert at.query_params["run"] in (run.id, [run.id])  # the same run goes on, no new one
    _wait(lambda: Run(run.dir).status()["status"] == "completed", what="the resumed run to end")
    assert [e["epoch"] for e in Run(run.dir).epochs()] == [1, 2] and Run(run.dir).summary()["status"] == "completed"
    assert not (run.dir / "checkpoint.pt").exists()  # a completed run has nothing left to resume
    (run.dir / "status.json").write_text(json.dumps(dict(run.status(), status="interrupted")))
    assert "resume_run" not in {b.key for b in page().button}  # nothing to continue from: Re-run only
