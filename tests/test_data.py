import struct

import numpy as np
import pytest
import torch

from aelab.config import DataConfig
from aelab.data import load_data, load_file, make_shapes


def test_mnist5k_is_bundled_split_and_in_unit_range():
    d = load_data(DataConfig(name="mnist5k"))
    assert (len(d.x_train), len(d.x_val)) == (4000, 1000)
    assert d.input_shape == (1, 28, 28) and d.kind == "image"
    assert 0.0 <= float(d.x_train.min()) and float(d.x_train.max()) <= 1.0
    # shuffled with a fixed seed: all ten digits in validation, same split every time
    assert len(torch.unique(d.y_val)) == 10
    assert torch.equal(load_data(DataConfig(name="mnist5k")).y_val, d.y_val)


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
    assert d.x_train.shape == (20, 1, 28, 28) and d.x_val.shape == (8, 1, 28, 28)
    assert float(d.x_train.max()) <= 1.0 and d.y_train.dtype == torch.int64


def test_torchvision_offline_error_names_folder_and_files(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_data(DataConfig(name="fashion_mnist", data_dir=str(tmp_path / "nowhere")))
    msg = str(e.value)
    assert "FashionMNIST/raw" in msg and "train-images-idx3-ubyte" in msg


def test_csv_with_label_column_is_standardised(tmp_path):
    p = tmp_path / "t.csv"
    rows = "\n".join(f"{i},{2 * i + 1},{i % 2}" for i in range(30))
    p.write_text("a,b,label\n" + rows + "\n")
    d = load_file(p)
    assert d.kind == "tabular" and d.input_shape == (2,) and d.classes == ["0", "1"]
    assert abs(float(d.x_train.mean())) < 1e-5 and len(d.x_train) + len(d.x_val) == 30


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
