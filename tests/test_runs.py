"""The run store's read side on damaged folders: each fault is named, nothing else is lost.

Each test copies one small finished run (trained once, in this process) into a store beside two
intact copies, damages one file by hand, and checks both the reason and that the other runs still
read in full.
"""
import errno
import json
import shutil
import signal

import pytest

from aelab.config import RunConfig
from aelab.fsutil import Unreadable, atomic_write, load_json, read_json
from aelab.runs import DAMAGED, Run, RunStore
from aelab.worker import execute

GARBAGE = bytes(range(256)) * 4  # not UTF-8, not JSON
TINY = {"data.name": "shapes", "model.layers": "32,8", "train.epochs": 2, "train.batch_size": 32, "train.lr": 3e-3}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 2-epoch run on the shapes set, trained in this process (about a second)."""
    run = RunStore(tmp_path_factory.mktemp("src")).create(RunConfig(name="tiny").with_overrides(TINY))
    handler = signal.getsignal(signal.SIGTERM)  # execute() installs its own; give pytest its own back
    try:
        assert execute(run)["status"] == "completed"
    finally:
        signal.signal(signal.SIGTERM, handler)
    return run.dir


@pytest.fixture
def store(tmp_path, trained):
    """Three intact copies of the trained run: a, b (the one the tests damage) and c."""
    for name in "abc":
        shutil.copytree(trained, tmp_path / f"2026-{name}")
    return RunStore(tmp_path)


def lines(run: Run) -> list[bytes]:
    return (run.dir / "metrics.jsonl").read_bytes().splitlines()


def assert_others_intact(store: RunStore, damaged: str = "2026-b"):
    """Every run is still listed; the undamaged ones read every metrics line and have no damage."""
    runs = {r.id: r for r in store.list()}
    assert set(runs) == {"2026-a", "2026-b", "2026-c"}
    for rid, r in runs.items():
        if rid != damaged:
            assert r.damage() is None
            assert len(r.metrics()) == len(lines(r)) > 2  # counted a second way: the file's lines
            assert r.listing()["status"] == "completed" and r.config.model.layers == (32, 8)


@pytest.mark.parametrize("content", [GARBAGE, b'{"status": "\x80\xff"}', b"", b'{"status": "comp', b"[1, 2]",
                                     b'"text"', b"[" * 100_000])
def test_read_json_survives_any_bytes(tmp_path, content):
    p = tmp_path / "status.json"
    p.write_bytes(content)
    assert read_json(p, {"x": 1}) == {"x": 1}
    with pytest.raises(Unreadable, match="^status.json: "):
        load_json(p)


def test_read_json_of_a_folder_or_a_missing_file(tmp_path):
    (tmp_path / "d.json").mkdir()
    with pytest.raises(Unreadable, match="d.json: cannot be read"):
        load_json(tmp_path / "d.json")
    assert load_json(tmp_path / "none.json") is None and read_json(tmp_path / "none.json", 7) == 7


@pytest.mark.parametrize("name", ["status.json", "summary.json", "config.json", "control.json"])
@pytest.mark.parametrize("content, why", [(GARBAGE, "not valid JSON"), (b"[1, 2]", "holds an array, not an object")])
def test_an_unreadable_json_file_is_named_and_the_other_runs_read_in_full(store, name, content, why):
    (store.root / "2026-b" / name).write_bytes(content)
    bad = store.get("2026-b")
    assert bad.damage().startswith(f"{name}: {why}")
    row = bad.listing()
    assert row["status"] == DAMAGED and row["damage"] == bad.damage()
    assert len(bad.metrics()) == len(lines(bad))  # what is intact still reads
    assert_others_intact(store)


def test_an_unreadable_config_is_an_error_never_the_default_config(store):
    d = store.root / "2026-b"
    (d / "config.json").write_text(json.dumps({"model": 5}))
    with pytest.raises(Unreadable, match="config.json: config section 'model' must be an object"):
        store.get("2026-b").config
    assert store.get("2026-b").config_dict() == {}  # labels go blank; no default model is built
    (d / "config.json").unlink()
    bad = store.get("2026-b")  # still a run (status.json is there), listed as damaged
    assert bad.damage() == "config.json: missing"
    with pytest.raises(Unreadable, match="config.json: missing"):
        bad.load_model()
    assert_others_intact(store)


def test_a_bad_complete_metrics_line_is_skipped_and_counted(store):
    d = store.root / "2026-b"
    good = lines(store.get("2026-b"))
    bad_lines = [b"\xff\xfe garbage", b'{"kind": "epoch", "epoch": 1}', b"[1]", b'{"kind": "step", "step": "x"}']
    (d / "metrics.jsonl").write_bytes(b"\n".join(good[:2] + bad_lines + good[2:]) + b"\n")
    bad = store.get("2026-b")
    assert bad.metrics() == [json.loads(x) for x in good]  # every good record, before and after
    assert bad.bad_metric_lines == [3, 4, 5, 6]
    assert bad.damage() == "metrics.jsonl: 4 unreadable lines skipped (first: line 3)"
    assert [r["epoch"] for r in bad.epochs()] == [1, 2]
    assert_others_intact(store)


def test_a_half_written_last_line_waits_for_its_end_and_is_not_damage(store):
    run = store.get("2026-b")
    n, last = len(run.metrics()), lines(run)[-1]
    with open(run.dir / "metrics.jsonl", "ab") as f:
        f.write(last[:10])
    assert len(run.metrics()) == n and run.damage() is None
    with open(run.dir / "metrics.jsonl", "ab") as f:
        f.write(last[10:] + b"\n")
    assert len(run.metrics()) == n + 1 and run.metrics()[-1] == json.loads(last) and run.damage() is None


def test_weights_the_summary_promises_but_the_folder_lacks(store):
    d = store.root / "2026-b"
    (d / "weights.safetensors").unlink()
    assert store.get("2026-b").damage() == "weights.safetensors: missing (the summary says the run saved it)"
    summary = json.loads((d / "summary.json").read_text())
    (d / "summary.json").write_text(json.dumps({**summary, "status": "interrupted", "weights": False}))
    assert store.get("2026-b").damage() is None  # an interrupted run that never saved weights is not damaged
    assert_others_intact(store)


def test_truncated_weights_give_a_clear_error_when_loaded(store):
    w = store.root / "2026-b" / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(Unreadable, match="^weights.safetensors: "):
        store.get("2026-b").load_model()
    assert store.get("2026-a").load_model().code_dim() == 8


def test_status_with_a_wrong_field_type_is_damage_not_a_crash(store):
    d = store.root / "2026-b"
    (d / "status.json").write_text(json.dumps({"status": 3, "pid": "x"}))
    bad = store.get("2026-b")
    assert bad.status() == {"status": DAMAGED, "message": "status.json: no 'status' text field"}
    (d / "status.json").write_text(json.dumps({"status": "running", "pid": "x"}))
    assert bad.status()["status"] == "running"  # a pid that is not a number is not looked up
    (d / "control.json").write_text(json.dumps({"seq": "x"}))
    bad.request("stop")
    assert json.loads((d / "control.json").read_text())["seq"] == 1


def test_atomic_write_keeps_the_old_file_and_no_temporary_on_a_full_disk(tmp_path):
    p = tmp_path / "weights.safetensors"
    p.write_bytes(b"old")

    def fill_the_disk(tmp):
        tmp.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(p, fill_the_disk, durable=True)
    assert p.read_bytes() == b"old" and [f.name for f in tmp_path.iterdir()] == ["weights.safetensors"]
    atomic_write(p, b"new", durable=True)
    assert p.read_bytes() == b"new" and len(list(tmp_path.iterdir())) == 1


def test_damaged_npz_files_are_named_and_the_last_good_snapshot_still_shows(store):
    d = store.root / "2026-b"
    last = d / "snapshots" / "00002.npz"
    last.write_bytes(last.read_bytes()[:200])  # truncated: not a zip any more
    bad = store.get("2026-b")
    with pytest.raises(Unreadable, match="^00002.npz: not a readable .npz"):
        bad.load_snapshot(last)
    assert int(bad.latest_snapshot()["epoch"]) == 1  # the newest readable one
    assert bad.damage() is None  # snapshots are checked where they are drawn, not on every listing
    (d / "probe.npz").write_bytes(GARBAGE)
    assert bad.probe() is None and bad.damage().startswith("probe.npz: not a readable .npz")
    assert_others_intact(store)


def test_a_full_disk_while_writing_metrics_names_what_was_being_written(tmp_path):
    from aelab.runs import RunWriter, StoreWriteError

    run = RunStore(tmp_path).create(RunConfig(name="tiny").with_overrides(TINY))
    writer = RunWriter(run)
    epoch = dict(stage=1, stage_name="end-to-end", epoch=1, step=4, samples=128, seconds=0.5, train_loss=0.3,
                 val_loss=0.3, val_pixel_loss=0.3, val_sq_err=12.5)
    writer.emit("epoch", **epoch)

    class FullDisk:
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    writer._metrics = FullDisk()
    with pytest.raises(StoreWriteError, match=r"^disk full while writing metrics: \[Errno 28\]") as e:
        writer.emit("epoch", **{**epoch, "epoch": 2})
    assert e.value.record() == {"kind": "disk_full", "during": "writing metrics", "errno": errno.ENOSPC}
    assert [r["epoch"] for r in run.epochs()] == [1] and run.status()["epoch"] == 1  # the last complete epoch
