"""The worker process and the run store it writes: what a caller polls, controls and reads back."""
import errno
import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from aelab.config import RunConfig
from aelab.runs import RunStore
from aelab.worker import WorkerPool, execute, start_run


@pytest.fixture(autouse=True)
def own_queue(tmp_path, monkeypatch):
    """A queue of this test's own: runs elsewhere on the machine never hold these tests up."""
    monkeypatch.setenv("AELAB_QUEUE_DIR", str(tmp_path / ".queue"))


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


def _in_thread(run, monkeypatch):
    """execute(run) in a thread of this process, as a worker process runs it (the same file control, without an
    interpreter to start: the process itself is test_worker_trains_and_writes_a_complete_run's subject)."""
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(_execute(run, monkeypatch)), daemon=True)
    t.start()
    return t, out


def test_pause_resume_and_stop_with_saved_weights(tmp_path, tiny_cfg, monkeypatch):
    run = RunStore(tmp_path).create(tiny_cfg.with_overrides({"train.epochs": 2000}))
    thread, out = _in_thread(run, monkeypatch)
    _wait(run, until=lambda st: st.get("epoch", 0) >= 1)
    run.request("pause")
    _wait(run, until=lambda st: st["status"] == "paused")
    n = len(run.metrics())
    time.sleep(0.6)
    assert len(run.metrics()) == n  # nothing trains while paused
    run.request("resume")
    _wait(run, until=lambda st: st["status"] == "running")
    run.request("stop")
    thread.join(60)
    assert not thread.is_alive() and out["status"] == "stopped"
    assert run.summary()["status"] == "stopped" and run.has_weights()


def test_stage_by_stage_waits_for_next_stage(tmp_path, tiny_cfg, monkeypatch):
    cfg = tiny_cfg.with_overrides({"train.strategy": "greedy", "train.epochs": 1, "train.pause_after_stage": True})
    run = RunStore(tmp_path).create(cfg)
    thread, out = _in_thread(run, monkeypatch)
    st = _wait(run, until=lambda st: st["status"] == "paused")
    assert st["message"] == "pretraining layer 1 of 2 done" and run.epochs()[-1]["stage"] == 1
    run.request("resume", pause_after_stage=False)  # "Run all stages"
    thread.join(60)
    assert not thread.is_alive() and out["status"] == "completed" and run.summary()["status"] == "completed"


# A killed worker: tests/test_jobs.py (interrupted, readable, run again) and tests/test_resume.py (resumed).


def test_diverging_run_is_marked_with_a_hint(tmp_path, tiny_cfg, monkeypatch):
    cfg = tiny_cfg.with_overrides({"train.loss": "mse", "train.lr": 10.0, "train.optimizer": "sgd",
                                   "model.activation": "linear", "train.epochs": 50})
    s = _execute(RunStore(tmp_path).create(cfg), monkeypatch)  # in this process: the worker's exit code is
    assert s["status"] == "diverged" and "train.lr" in s["message"]  # test_failure_inside_the_worker's subject


def test_failure_inside_the_worker_is_reported(tmp_path, tiny_cfg):
    run, proc = start_run(tiny_cfg.with_overrides({"data.name": "file", "data.path": str(tmp_path / "x.csv")}),
                          tmp_path)
    assert proc.wait(timeout=60) == 1
    s = run.summary()
    assert s["status"] == "failed" and "x.csv" in s["message"]


def test_warm_pool_starts_runs_and_its_next_standby_once_they_have_ended(tmp_path, tiny_cfg):
    from aelab import jobs

    # as the app's pool: a core left to its view, and the next standby only after the launched run
    pool = WorkerPool(tmp_path, respawn_delay_s=0.3, env={jobs.RESERVED_ENV: "1"})
    try:
        first = pool._standby
        run = pool.start(tiny_cfg.with_overrides({"train.epochs": 40}))
        while run.status().get("status") not in ("completed", "failed"):
            assert pool._standby is None  # no warm-up beside the training: the launched run has the cores
            time.sleep(0.1)
        assert _wait(run)["status"] == "completed"
        assert [r.id for r in RunStore(tmp_path).list()] == [run.id]
        assert jobs.read(run.dir)["threads"] == max(1, (os.cpu_count() or 1) - 1)  # the standby got the variable
        for _ in range(50):
            if pool._standby is not None:
                break
            time.sleep(0.1)
        assert pool._standby is not None and pool._standby is not first and pool._standby.poll() is None
    finally:
        pool.shutdown()


def test_a_pool_of_two_standbys_hands_a_race_both_and_refills_one_import_at_a_time(tmp_path, tiny_cfg):
    """The app's pool keeps a warm worker per arm of a race: the second starts a gap after the first (never two
    imports at once), both arms go to them (no fresh process), and the refill waits for the arms to end."""
    from aelab import jobs

    t0 = time.monotonic()
    pool = WorkerPool(tmp_path, respawn_delay_s=0.2, spares=2, spare_gap_s=1.0)
    refilled = []
    try:
        first = pool._standby
        while len(pool._spares) < 2:
            assert time.monotonic() - t0 < 30, "the second standby never started"
            time.sleep(0.05)
        assert time.monotonic() - t0 >= 1.0  # not with the first: one import at a time
        spares = [p.pid for p in pool._spares]
        assert spares[0] == first.pid
        runs = pool.start_group([tiny_cfg.with_overrides({"train.epochs": 30}),
                                 tiny_cfg.with_overrides({"train.epochs": 30, "train.seed": 1})])
        assert [jobs.read(r.dir)["pid"] for r in runs] == spares  # both arms in warm workers
        assert pool._spares == []
        while any(r.status().get("status") in ("queued", "running") for r in runs):
            assert pool._spares == []  # no import beside the race
            time.sleep(0.05)
        assert all(_wait(r)["status"] == "completed" for r in runs)
        t0 = time.monotonic()
        while len(pool._spares) < 2 and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        assert len(pool._spares) == 2 and not {p.pid for p in pool._spares} & set(spares)
        refilled = list(pool._spares)
    finally:
        pool.shutdown()
    assert all(p.poll() is not None for p in refilled)  # shut down with the pool


def test_a_launch_that_cannot_be_queued_leaves_the_standby_for_the_next(tmp_path, tiny_cfg):
    pool = WorkerPool(tmp_path, respawn_delay_s=0.2)
    try:
        standby = pool._standby
        run = RunStore(tmp_path).create(tiny_cfg)  # never ran: nothing to resume
        with pytest.raises(ValueError, match="cannot resume"):
            pool.resume(run)
        assert pool._standby is standby and standby.poll() is None
    finally:
        pool.shutdown()


def test_the_apps_warm_worker_count_comes_from_the_environment(monkeypatch, capsys):
    from aelab.ui import state

    monkeypatch.setenv("AELAB_WARM_WORKERS", "3")
    assert state.warm_workers() == 3
    monkeypatch.setenv("AELAB_WARM_WORKERS", "0")
    assert state.warm_workers() == 1  # a Launch always has one
    monkeypatch.setenv("AELAB_WARM_WORKERS", "two")
    assert state.warm_workers() == 2 and "AELAB_WARM_WORKERS='two' is not a whole number" in capsys.readouterr().err
    monkeypatch.delenv("AELAB_WARM_WORKERS")
    assert state.warm_workers() == 2


def test_a_run_handed_to_a_warming_standby_survives_the_launcher_dying(tmp_path, tiny_cfg):
    """The server hands a run to its standby (still importing torch) and is killed at once: the standby must
    train that run to the end, not exit with its dead parent."""
    import subprocess
    import sys

    (tmp_path / "cfg.json").write_text(json.dumps(tiny_cfg.to_dict()))
    launcher = ("import os, sys; from aelab.config import RunConfig; from aelab.worker import WorkerPool; "
                "pool = WorkerPool(sys.argv[1]); import json; run = pool.start(RunConfig.from_dict(json.load(open(sys.argv[2])))); "
                "print(run.id, pool._children[-1].pid, flush=True); os.kill(os.getpid(), 9)")
    out = subprocess.run([sys.executable, "-c", launcher, str(tmp_path / "runs"), str(tmp_path / "cfg.json")],
                         capture_output=True, text=True, env=dict(os.environ), timeout=60, check=False)
    assert out.returncode == -signal.SIGKILL, out.stderr
    run_id, _ = out.stdout.split()
    run = RunStore(tmp_path / "runs").get(run_id)
    assert _wait(run, timeout=90)["status"] == "completed"
    assert run.has_weights() and len(run.epochs()) == tiny_cfg.train.epochs


def test_invalid_config_is_refused_before_a_process_starts(tmp_path, tiny_cfg):
    with pytest.raises(ValueError, match="train.lr"):
        start_run(tiny_cfg.with_overrides({"train.lr": -1}), tmp_path)
    assert not list(tmp_path.iterdir())


def _execute(run, monkeypatch):
    """Train the run in this process (so a test can inject faults into it); returns the summary."""
    monkeypatch.setattr(signal, "signal", lambda *a: None)  # keep pytest's SIGTERM handler
    return execute(run)


def _fill_the_disk(monkeypatch, full):
    """Writes of the files for which `full(path)` is true fail as on a full disk, after writing a part."""
    import aelab.fsutil

    real = aelab.fsutil.atomic_write

    def atomic_write(path, data, durable=False):
        if full(str(path)):
            def partial(tmp):
                tmp.write_bytes(b"part")
                raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
            data = partial
        return real(path, data, durable)

    monkeypatch.setattr(aelab.runs, "atomic_write", atomic_write)
    monkeypatch.setattr(aelab.fsutil, "atomic_write", atomic_write)  # atomic_write_json's


def test_disk_full_while_saving_weights_fails_the_run_and_keeps_its_epochs(tmp_path, tiny_cfg, monkeypatch):
    run = RunStore(tmp_path).create(tiny_cfg)
    _fill_the_disk(monkeypatch, lambda p: p.endswith("weights.safetensors"))
    s = _execute(run, monkeypatch)
    assert s["status"] == "failed" and s["message"].startswith("disk full while saving weights: [Errno 28]")
    assert s["error"] == {"kind": "disk_full", "during": "saving weights", "errno": errno.ENOSPC}
    assert run.summary() == json.loads(json.dumps(s)) and run.status()["error"] == s["error"]
    assert not run.has_weights() and s["weights"] is False and not list(run.dir.glob(".*.tmp"))
    assert s["epochs_completed"] == len(run.epochs()) == 2  # readable up to its last complete epoch
    assert run.damage() is None and run.listing()["status"] == "failed"  # failed, with its reason; not damaged


def test_disk_full_while_saving_a_snapshot_stops_the_run_at_once(tmp_path, tiny_cfg, monkeypatch):
    run = RunStore(tmp_path).create(tiny_cfg.with_overrides({"train.strategy": "greedy"}))
    _fill_the_disk(monkeypatch, lambda p: p.endswith(".npz") and not p.endswith(("00001.npz", "probe.npz")))
    s = _execute(run, monkeypatch)
    assert s["status"] == "failed" and s["message"].startswith("disk full while saving a snapshot")
    assert s["error"]["during"] == "saving a snapshot" and not run.has_weights()
    assert run.status()["epochs_total"] > 2  # planned: two greedy stages and fine-tuning
    assert [r["epoch"] for r in run.epochs()] == [1, 2] and s["epochs_completed"] == 2  # stopped in epoch 2
    assert [p.name for p in run.snapshot_files()] == ["00001.npz"] and run.damage() is None


def test_disk_full_for_the_summary_still_leaves_a_failed_status(tmp_path, tiny_cfg, monkeypatch):
    run = RunStore(tmp_path).create(tiny_cfg)
    _fill_the_disk(monkeypatch, lambda p: p.endswith("summary.json"))
    s = _execute(run, monkeypatch)
    assert s["status"] == "failed" and s["message"].startswith("disk full while writing the summary")
    st = run.status()  # the summary could not be written; the (smaller) status says why
    assert run.summary() is None and st["status"] == "failed" and st["error"]["during"] == "writing the summary"


def test_every_training_thread_of_a_worker_computes_subnormals_as_zero(tmp_path):
    """The flag is per thread and inherited at thread start: the worker must set it before torch's pool starts."""
    import subprocess
    import sys

    check = ("import sys, torch\nfrom aelab import worker\nworker.main(['--standby'])\n"  # stdin at EOF: no run
             "x = torch.full((1 << 22,), 1e-39)\nprint(torch.get_num_threads(), int(((x * 1.0) == 0).sum()))\n")
    out = subprocess.run([sys.executable, "-c", check], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="2"), timeout=120, check=True)
    threads, zeros = map(int, out.stdout.split())
    assert threads == 2 and zeros == 1 << 22  # a thread without the flag would keep its half of them


def test_a_standby_started_before_the_pool_is_its_first_and_trains_the_first_launch(tmp_path, tiny_cfg):
    """The app starts its first warm worker before the pool exists (aelab.standby.prestart): the pool hands it the first
    launch rather than a worker of its own."""
    from aelab import jobs
    from aelab import standby

    early = standby.spawn()
    pool = WorkerPool(tmp_path, first=early)
    try:
        assert pool._spares == [early]
        run = pool.start(tiny_cfg)
        assert jobs.read(run.dir)["pid"] == early.pid
        assert _wait(run)["status"] == "completed"
    finally:
        pool.shutdown()
