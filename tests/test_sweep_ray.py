"""Sweep cells on Ray (aelab/sweep_ray.py): the same records as the local queue, a folder shipped complete."""
import pytest

from aelab import sweep as S
from aelab.config import RunConfig
from aelab.runs import RunStore
from aelab.sweep_ray import apply, changes

TIMING = ("seconds",)  # wall-clock fields differ between any two runs


def test_a_folder_streamed_in_pieces_arrives_whole(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "snapshots").mkdir(parents=True)
    sent = {}
    (src / "metrics.jsonl").write_bytes(b'{"a": 1}\n{"b": 2')  # a line still being written
    (src / "status.json").write_text('{"status": "running", "pid": 4242}')
    (src / "job.json").write_text("{}")  # stays on its machine
    apply(dst, changes(src, sent), pid=7)
    assert (dst / "metrics.jsonl").read_bytes() == b'{"a": 1}\n'
    assert '"pid": 7' in (dst / "status.json").read_text() and not (dst / "job.json").exists()
    with open(src / "metrics.jsonl", "ab") as f:
        f.write(b'}\n{"c": 3}\n')
    (src / "snapshots" / "00001.npz").write_bytes(b"npz")
    pieces = changes(src, sent)
    assert {p[0] for p in pieces} == {"metrics.jsonl", "snapshots/00001.npz"}  # only what changed
    apply(dst, pieces, pid=7)
    assert (dst / "metrics.jsonl").read_bytes() == (src / "metrics.jsonl").read_bytes()
    assert (dst / "snapshots" / "00001.npz").read_bytes() == b"npz" and changes(src, sent) == []


def test_a_ray_cell_gives_the_local_records_and_arrives_complete(ray_local, tmp_path, monkeypatch):
    """The same cell on Ray (a scratch store on the node, streamed back) and here (worker.execute in this
    process, as a local worker runs it), one torch thread each: the same epoch records, timing aside."""
    import torch

    from aelab.sweep_ray import run_ray
    from aelab.worker import execute

    base = RunConfig().with_overrides({"data.name": "shapes", "model.layers": "16", "train.epochs": 2,
                                       "train.batch_size": 32, "train.lr": 0.003})
    cells = S.expand(base, {}, 1)
    store = RunStore(tmp_path / "ray")
    sweep = S.Sweep.open(store.root, {}, 1, cells)
    run_ray(sweep, store, threads=1)
    (remote,) = sweep.runs(store)
    monkeypatch.setattr("signal.signal", lambda *a: None)  # execute() would take over pytest's SIGTERM
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = RunStore(tmp_path / "here").create(cells[0].config)
        execute(here)
    finally:
        torch.set_num_threads(threads)
    drop = lambda recs: [{k: v for k, v in r.items() if k not in TIMING} for r in recs]  # noqa: E731
    assert drop(remote.epochs()) == drop(here.epochs())
    names = {p.name for p in remote.dir.rglob("*") if p.is_file()}
    assert {"config.json", "metrics.jsonl", "weights.safetensors", "summary.json", "probe.npz"} <= names
    assert "job.json" not in names  # the job record stayed on the node
    assert len(remote.snapshot_files()) == len(here.snapshot_files()) >= 2
    assert remote.status()["status"] == "completed" and remote.damage() is None
    assert remote.config.name == sweep.id  # tagged with its sweep, as a local cell
    assert remote.summary()["test_full_sq_err"] == pytest.approx(here.summary()["test_full_sq_err"])
    assert remote.load_model() is not None  # the weights came across whole


def test_tuning_trials_run_as_ray_tasks_and_land_in_the_callers_store(ray_local, tmp_path):
    """--tune with --ray: each cell's trial is a Ray task (the two cells' studies side by side); every trial
    arrives as a finished run in the caller's store, and the value the study learnt from is that run's own
    validation error."""
    from aelab import tune as T
    from aelab.sweep_ray import Remote

    base = RunConfig().with_overrides({"data.name": "shapes", "model.layers": "16,4", "train.epochs": 1,
                                       "train.finetune_epochs": 1, "train.strategy": "greedy",
                                       "train.batch_size": 64, "train.lr": 0.003})
    spaces = T.parse(["train.lr=1e-3:1e-2:log"], base)
    cells = S.expand(base, S.parse_grid(["train.strategy=greedy,end_to_end"]), 1, (1, 16, 16))
    store = RunStore(tmp_path)
    sweep = S.Sweep.open(tmp_path, {}, 1, cells, ([s.describe() for s in spaces], 1))
    remote = Remote(store, threads=1)
    try:
        best = T.tune(sweep, store, spaces, train=T.run_trial_on(remote))
    finally:
        remote.close()
    trials = [t for c in sweep.tuning["cells"].values() for t in c["trials"]]
    assert len(trials) == 2 and set(best) == set(sweep.tuning["cells"])
    for t in trials:
        run = store.get(t["run_id"])
        assert run.status()["status"] == "completed" and run.config.name == f"{sweep.id}-trial"
        assert run.config.train.lr == pytest.approx(t["params"]["train.lr"])
        assert t["value"] == run.summary()[T.OBJECTIVE] and (run.dir / "weights.safetensors").exists()


def test_stop_and_cancel_in_the_callers_store_reach_remote_cells(ray_local, tmp_path):
    """The app's Stop writes control.json into the caller's copy of the run; the task on the node obeys it: the
    run ends "stopped" with its weights, long before its planned epochs. A second cell, waiting for the CPUs the
    first holds (2 threads each, 2 CPUs), is cancelled as a queued local job is (cancel.request): it leaves Ray's
    queue at once and never trains."""
    import time

    from aelab import jobs
    from aelab.sweep_ray import Remote

    cfg = RunConfig().with_overrides({"data.name": "shapes", "model.layers": "16", "train.epochs": 200,
                                      "train.batch_size": 32, "train.lr": 0.003})
    remote = Remote(RunStore(tmp_path), threads=2)
    try:
        run, ref = remote.submit(cfg)
        waiting, ref2 = remote.submit(cfg)
        jobs.cancel(waiting.dir)  # what the Cancel button of a queued run does
        remote.drain()
        assert waiting.status()["status"] == "cancelled"
        with pytest.raises(ray_local.exceptions.TaskCancelledError):
            ray_local.get(ref2, timeout=30)
        remote.finish(ref2, waiting)
        t = time.time()
        while not run.epochs() and time.time() - t < 60:
            remote.drain()
            time.sleep(0.1)
        assert run.epochs(), "no epoch arrived from the task"
        run.request("stop")  # what the Stop button does
        while not ray_local.wait([ref], timeout=0.2)[0]:
            remote.drain()
            assert time.time() - t < 90, "the task did not stop"
        remote.finish(ref, run)
    finally:
        remote.close()
    assert run.status()["status"] == "stopped" and run.summary()["status"] == "stopped"
    assert 1 <= len(run.epochs()) < 200 and (run.dir / "weights.safetensors").exists()
    assert waiting.status()["status"] == "cancelled" and not waiting.epochs() and not waiting.summary()
