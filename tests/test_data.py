import gzip
import os
import struct

import numpy as np
import pytest
import torch

from aelab import data as data_mod
from aelab.config import DataConfig
from aelab.data import load_data, load_file, make_shapes


def _rows(t: torch.Tensor) -> set:
    return {bytes(r) for r in (t.reshape(len(t), -1).numpy() * 255).round().astype(np.uint8)}


def _assert_disjoint(d) -> None:
    tr, va, te = _rows(d.x_train), _rows(d.x_val), _rows(d.x_test)
    assert not tr & va and not tr & te and not va & te


def test_mnist5k_is_bundled_split_three_ways_and_in_unit_range():
    d = load_data(DataConfig(name="mnist5k"))
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (3000, 1000, 1000)
    assert d.input_shape == (1, 28, 28) and d.kind == "image"
    assert 0.0 <= float(d.x_train.min()) and float(d.x_train.max()) <= 1.0
    # shuffled with a fixed seed: all ten digits in validation and test, same split every time
    assert len(torch.unique(d.y_val)) == 10 and len(torch.unique(d.y_test)) == 10
    again = load_data(DataConfig(name="mnist5k"))
    assert torch.equal(again.y_val, d.y_val) and torch.equal(again.x_test, d.x_test)
    _assert_disjoint(d)


def test_small_sets_have_disjoint_test_splits():
    for d in (load_data(DataConfig(name="digits")), make_shapes(200, size=12, seed=3)):
        assert len(d.x_test) == round(0.2 * (len(d.x_train) + len(d.x_val) + len(d.x_test)))
        assert d.y_test is not None and len(d.y_test) == len(d.x_test)


def test_digits_and_shapes():
    d = load_data(DataConfig(name="digits"))
    assert d.input_shape == (1, 8, 8) and float(d.x_train.max()) <= 1.0
    s = make_shapes(40, size=12)
    assert s.input_shape == (1, 12, 12) and set(s.y_train.tolist()) | set(s.y_val.tolist()) == {0, 1, 2, 3}


def _write_idx(path, arr, magic):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        for dim in arr.shape:
            f.write(struct.pack(">I", dim))
        f.write(arr.astype(np.uint8).tobytes())


def test_torchvision_mnist_reads_local_idx_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("t10k", 8)):
        _write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), 0x0803)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, (n,)), 0x0801)
    d = load_data(DataConfig(name="mnist", data_dir=str(tmp_path)))
    # the official test set is the test split; validation is 10 % carved out of the official train set
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (18, 2, 8)
    assert d.x_test.shape == (8, 1, 28, 28)
    assert float(d.x_train.max()) <= 1.0 and d.y_train.dtype == torch.int64


def test_torchvision_offline_error_names_folder_files_and_package(tmp_path, monkeypatch):
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", tmp_path / "no-package")
    with pytest.raises(FileNotFoundError) as e:
        load_data(DataConfig(name="fashion_mnist", data_dir=str(tmp_path / "nowhere")))
    msg = str(e.value)
    assert "FashionMNIST/raw" in msg and "train-images-idx3-ubyte" in msg and "dataset-fashion-mnist" in msg


def _write_idx_gz(path, arr, magic):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in arr.shape))
        f.write(arr.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_debian_idx_gz_in_place(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (30, 28, 28)),
              "train-labels-idx1-ubyte.gz": np.arange(30) % 10,
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (7, 28, 28)),
              "t10k-labels-idx1-ubyte.gz": np.arange(7) % 10}
    for name, a in arrays.items():
        _write_idx_gz(tmp_path / name, a, 0x0803 if a.ndim == 3 else 0x0801)
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    d = load_data(DataConfig(name="fashion_mnist", data_dir=str(tmp_path / "never-created")))
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (27, 3, 7)
    # the test split is the official t10k file, pixel for pixel
    assert np.array_equal((d.x_test[:, 0].numpy() * 255).round(), arrays["t10k-images-idx3-ubyte.gz"])
    assert d.y_test.tolist() == arrays["t10k-labels-idx1-ubyte.gz"].tolist() and len(d.classes) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # read in place: nothing copied or created


def test_idx_reader_rejects_a_truncated_file(tmp_path):
    _write_idx_gz(tmp_path / "x.gz", np.zeros((3, 4, 4)), 0x0803)
    raw = gzip.decompress((tmp_path / "x.gz").read_bytes())[:-5]
    (tmp_path / "x.gz").write_bytes(gzip.compress(raw))
    with pytest.raises(ValueError, match="header says"):
        data_mod.read_idx_gz(tmp_path / "x.gz")


@pytest.mark.skipif(not data_mod._has_debian_fashion(data_mod.DEBIAN_FASHION_MNIST) and not os.environ.get("AELAB_CI"),
                    reason="Debian's dataset-fashion-mnist is not installed (run_tests.sh installs it as root)")
def test_full_fashion_mnist_from_debian_package():
    d = load_data(DataConfig(name="fashion_mnist"))
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (54_000, 6_000, 10_000)
    assert d.input_shape == (1, 28, 28) and d.classes[0] == "T-shirt/top"


def test_csv_with_label_column_is_standardised(tmp_path):
    p = tmp_path / "t.csv"
    rows = "\n".join(f"{i},{2 * i + 1},{i % 2}" for i in range(30))
    p.write_text("a,b,label\n" + rows + "\n")
    d = load_file(p)
    assert d.kind == "tabular" and d.input_shape == (2,) and d.classes == ["0", "1"]
    assert abs(float(d.x_train.mean())) < 1e-5 and len(d.x_train) + len(d.x_val) + len(d.x_test) == 30


def test_npz_images_channels_last_0_255(tmp_path):
    p = tmp_path / "imgs.npz"
    np.savez(p, x=np.random.default_rng(0).integers(0, 256, (10, 6, 6, 3)), y=np.arange(10) % 2)
    d = load_file(p)
    assert d.kind == "image" and d.input_shape == (3, 6, 6) and float(d.x_train.max()) <= 1


@pytest.mark.parametrize("name,content,needle", [
    ("empty.csv", b"", "empty"),
    ("text.csv", b"a,b\n1,x\n2,y\n3,z\n", "non-numeric"),
    ("nan.csv", b"a,b\n1,2\nnan,3\n4,5\n", "NaN"),
    ("thing.txt", b"1,2,3", "unsupported"),
])
def test_bad_csv_files_are_rejected_with_a_reason(tmp_path, name, content, needle):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(ValueError, match=needle):
        load_file(p)


def test_bad_npz_files_are_rejected_with_a_reason(tmp_path):
    p = tmp_path / "nox.npz"
    np.savez(p, data=np.zeros((5, 3)))
    with pytest.raises(ValueError, match="named 'x'"):
        load_file(p)
    np.savez(p, x=np.zeros(5))
    with pytest.raises(ValueError, match="shape"):
        load_file(p)
    np.savez(p, x=np.array([{"a": 1}] * 4, dtype=object))
    with pytest.raises(ValueError, match="numeric|objects"):
        load_file(p)
    np.savez(p, x=np.full((5, 4, 4), 300.0))
    with pytest.raises(ValueError, match=r"\[0,255\]"):
        load_file(p)
    np.savez(p, x=np.zeros((5, 3)), y=np.arange(4))
    with pytest.raises(ValueError, match="labels"):
        load_file(p)
