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


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance (2 CPUs) for every Ray test."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_cells_give_the_local_records_and_arrive_complete(ray_local, tmp_path):
    from aelab.sweep_ray import run_ray

    base = RunConfig().with_overrides({"data.name": "shapes", "model.layers": "16", "train.epochs": 2,
                                       "train.batch_size": 32})
    cells = S.expand(base, S.parse_grid(["train.lr=0.001,0.003"]), 1)
    stores = {}
    for where in ("local", "ray"):
        store = RunStore(tmp_path / where)
        sweep = S.Sweep.open(store.root, {}, 1, cells)
        if where == "ray":
            run_ray(sweep, store, threads=1)
        else:
            S.run_local(sweep, store, jobs=2, threads=1)
        stores[where] = (store, sweep)
    for (lrun, rrun) in zip(*(s.runs(store) for store, s in stores.values())):
        drop = lambda recs: [{k: v for k, v in r.items() if k not in TIMING} for r in recs]  # noqa: E731
        assert drop(rrun.epochs()) == drop(lrun.epochs())
        names = {p.name for p in rrun.dir.rglob("*") if p.is_file()}
        assert {"config.json", "metrics.jsonl", "weights.safetensors", "summary.json", "probe.npz"} <= names
        assert len(rrun.snapshot_files()) == len(lrun.snapshot_files()) >= 2
        assert rrun.status()["status"] == "completed" and rrun.damage() is None
        assert rrun.summary()["test_full_sq_err"] == pytest.approx(lrun.summary()["test_full_sq_err"])
        assert rrun.load_model() is not None  # the weights came across whole
