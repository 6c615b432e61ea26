"""Where the lab's server may read data and write files: its data folders and the run store.

A link or a widget names files by path (`data.path`, `data.data_dir`), so the app checks every such
path against the lab's data folders before anything touches the disk; the CLI does not call this and
keeps reading any path its user gives. The bundled datasets (mnist5k, digits, shapes) are loaded by
name, never by path. The user's own data comes in through an upload, kept by `keep_upload` in one
folder per content under the run store's `uploads/`.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .config import TORCHVISION_DATASETS, RunConfig

DATA_ROOT_ENV = "AELAB_DATA_ROOT"  # one more folder the operator opens to the app (e.g. a course's data)
DEBIAN_DATASETS = Path("/usr/share/datasets")  # Debian's dataset packages (dataset-fashion-mnist)
DEFAULT_DATA_DIR = Path("data")  # DataConfig.data_dir's default: torchvision's downloads
MAX_UPLOAD_BYTES = 50 * 2**20  # a classroom server holds one folder per distinct upload
UPLOAD_TYPES = (".csv", ".npz")


def uploads_dir(runs_dir: str | os.PathLike) -> Path:
    return Path(runs_dir) / "uploads"


def data_roots(runs_dir: str | os.PathLike) -> list[Path]:
    """The folders the app may read data from (and torchvision may create folders in)."""
    roots = [DEBIAN_DATASETS, uploads_dir(runs_dir), DEFAULT_DATA_DIR]
    if os.environ.get(DATA_ROOT_ENV):
        roots.append(Path(os.environ[DATA_ROOT_ENV]))
    return roots


def check_inside(path: str | os.PathLike, roots: list[Path], key: str = "path") -> Path:
    """The resolved path (symlinks and `..` followed) if it lies inside one of `roots`, else ValueError.

    The message is the same whether or not the file exists, so a refused path reveals nothing.
    """
    resolved = Path(path).expanduser().resolve()
    if str(path).strip() and any(resolved.is_relative_to(r.expanduser().resolve()) for r in roots):
        return resolved
    names = ", ".join(str(r) for r in roots)
    raise ValueError(f"{key}: {str(path)!r} is outside the lab's data folders ({names}); "
                     "upload your file instead")


def check_data_paths(cfg: RunConfig, runs_dir: str | os.PathLike) -> RunConfig:
    """Refuse a config whose data the app would read (or create folders for) outside its data folders."""
    roots = data_roots(runs_dir)
    if cfg.data.name == "file":
        check_inside(cfg.data.path, roots, "data.path")
    if cfg.data.name in TORCHVISION_DATASETS:
        check_inside(cfg.data.data_dir, roots, "data.data_dir")
    return cfg


def keep_upload(name: str, raw: bytes, runs_dir: str | os.PathLike) -> Path:
    """Validate an uploaded CSV/NPZ (never unpickled) and keep it as uploads/<content hash>/<name>.

    Nothing is written unless the file loads; equal names with different content never collide, and
    the same file uploaded twice is kept once. Raises ValueError naming the problem.
    """
    from .data import load_file
    from .fsutil import atomic_write

    safe = Path(name).name
    if Path(safe).suffix.lower() not in UPLOAD_TYPES:
        raise ValueError(f"{safe}: only {' and '.join(UPLOAD_TYPES)} files can be uploaded")
    if len(raw) > MAX_UPLOAD_BYTES:
        raise ValueError(f"{safe}: {len(raw) / 2**20:.1f} MB is over the upload limit of "
                         f"{MAX_UPLOAD_BYTES // 2**20} MB")
    load_file(safe, raw=raw)  # raises ValueError naming what is wrong with the content
    dest = uploads_dir(runs_dir) / hashlib.sha256(raw).hexdigest()[:16] / safe
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(dest, raw)
    return dest
