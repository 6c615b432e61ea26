"""The app reads data only inside its data folders, keeps uploads only after they load, and stays in its store."""
import io
import pickle

import numpy as np
import pytest

from aelab import paths
from aelab.config import RunConfig
from aelab.runs import RunStore


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A run store and an operator data root in a temporary folder, and a secret file outside both."""
    runs, root, outside = tmp_path / "runs", tmp_path / "course", tmp_path / "elsewhere"
    for d in (runs, root, outside):
        d.mkdir()
    monkeypatch.setenv(paths.DATA_ROOT_ENV, str(root))
    (outside / "secret.csv").write_text("a,b\n1,2\n3,4\n5,6\n")
    return runs, root, outside


def refusal(path, runs) -> str:
    with pytest.raises(ValueError) as e:
        paths.check_inside(path, paths.data_roots(runs), "data.path")
    return str(e.value)


def test_paths_inside_the_data_folders_are_accepted(lab):
    runs, root, _ = lab
    (root / "sub").mkdir()
    assert paths.check_inside(root / "sub" / "x.csv", paths.data_roots(runs)) == (root / "sub" / "x.csv").resolve()
    assert paths.check_inside("/usr/share/datasets/fashion-mnist", paths.data_roots(runs))
    assert paths.check_inside(runs / "uploads" / "ab" / "x.npz", paths.data_roots(runs))


def test_outside_paths_are_refused_alike_whether_or_not_they_exist(lab):
    runs, root, outside = lab
    (root / "link.csv").symlink_to(outside / "secret.csv")  # a symlink out of the data root
    tricks = ["/etc/passwd", str(outside / "secret.csv"), str(root / ".." / "elsewhere" / "secret.csv"),
              str(root / "link.csv"), "data/../../etc/passwd", "", str(runs)]
    for p in tricks:
        assert "outside the lab's data folders" in refusal(p, runs), p
    # the message names the path as given and nothing about the file: the same for a file that is not there
    assert refusal("/etc/passwd", runs).replace("/etc/passwd", "X") == \
        refusal("/etc/no-such-file", runs).replace("/etc/no-such-file", "X")


def test_a_refused_config_reads_nothing_and_creates_no_folder(lab, monkeypatch):
    runs, _, outside = lab

    def boom(*a, **k):
        raise AssertionError("the loader was called")
    monkeypatch.setattr("aelab.data.load_file", boom)
    monkeypatch.setattr("aelab.data._torchvision", boom)
    file_cfg = RunConfig().with_overrides({"data.name": "file", "data.path": str(outside / "secret.csv")})
    with pytest.raises(ValueError, match="data.path"):
        paths.check_data_paths(file_cfg, runs)
    target = outside / "new" / "folder"
    tv_cfg = RunConfig().with_overrides({"data.name": "mnist", "data.data_dir": str(target)})
    with pytest.raises(ValueError, match="data.data_dir"):
        paths.check_data_paths(tv_cfg, runs)
    assert not (outside / "new").exists()
    # the CLI's configs are not judged: the same paths validate as plain configs
    from aelab.config import validate
    validate(file_cfg)
    validate(tv_cfg)


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def bad_uploads() -> dict:
    nan = np.random.default_rng(0).random((10, 4))
    nan[3, 2] = np.nan
    return {
        "shape.npz": (npz(x=np.zeros((10, 2, 5, 5))), "channels"),  # 2-channel images
        "rank.npz": (npz(x=np.zeros((10, 2, 3, 4, 5))), "shape"),
        "nan.csv": (("a,b,c,d\n" + "\n".join(",".join(map(str, r)) for r in nan)).encode(), "NaN"),
        "text.csv": (b"name,city\nann,oslo\nbob,rome\ncid,lima\n", "non-numeric"),
        "pickle.npz": (npz(x=np.array([{"a": 1}] * 5, dtype=object)), "not objects"),
        "raw.npz": (pickle.dumps({"x": [1, 2, 3]}), "not a readable NPZ"),
        "big.csv": (b"a\n" + b"1\n" * (paths.MAX_UPLOAD_BYTES // 2), "upload limit of 50 MB"),
        "notes.txt": (b"a,b\n1,2\n", "only .csv and .npz"),
    }


@pytest.mark.parametrize("name", list(bad_uploads()))
def test_a_bad_upload_is_named_and_nothing_is_kept(lab, name):
    runs = lab[0]
    raw, reason = bad_uploads()[name]
    with pytest.raises(ValueError, match=reason) as e:
        paths.keep_upload(name, raw, runs)
    assert name in str(e.value)
    assert not paths.uploads_dir(runs).exists() or not any(paths.uploads_dir(runs).rglob("*"))


def test_uploads_with_the_same_name_do_not_collide(lab):
    runs = lab[0]
    one = "a,b,label\n" + "\n".join(f"{i},{i % 3},{i % 2}" for i in range(12))
    two = "a,b,label\n" + "\n".join(f"{i * 2},{i % 5},{i % 2}" for i in range(12))
    p1 = paths.keep_upload("../../table.csv", one.encode(), runs)  # a crafted name cannot climb out
    p2 = paths.keep_upload("table.csv", two.encode(), runs)
    assert p1 != p2 and p1.name == p2.name == "table.csv"
    assert p1.read_text() == one and p2.read_text() == two
    assert p1.parent.parent == p2.parent.parent == paths.uploads_dir(runs)
    assert paths.keep_upload("table.csv", one.encode(), runs) == p1  # the same file is kept once
    assert paths.check_inside(p1, paths.data_roots(runs))


def test_run_ids_stay_inside_the_store(tmp_path):
    store = RunStore(tmp_path / "runs")
    store.create(RunConfig(name="x"))
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "config.json").write_text("{}")  # looks like a run, but outside the store
    for bad in ["../outside", "..", "", "/etc", str(tmp_path / "outside"), "a/../../outside"]:
        with pytest.raises(KeyError):
            store.get(bad)
