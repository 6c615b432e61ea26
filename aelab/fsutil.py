"""Files written whole and read without surprises: the one atomic-write helper and the JSON readers.

Writers replace a file in one step (`atomic_write`), so readers see the old version or the new one,
never a part; append-only logs (metrics.jsonl) are the exception: their readers skip an unfinished last
line. Readers get a typed error naming the file (`Unreadable`) instead of whatever the bytes provoke.
"""
from __future__ import annotations

import errno
import json
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}  # no space left; quota exceeded
_JSON_KINDS = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


def atomic_write(path: str | os.PathLike, data: bytes | Callable[[Path], None], durable: bool = False) -> None:
    """Write `path` through a temporary file in the same folder and `os.replace`.

    Parameters
    ----------
    data : bytes, or a function that writes the temporary file whose path it is given (for libraries
        that write to a path themselves: safetensors, pandas).
    durable : fsync the file before the rename and the folder after it. Only for the files a run ends
        with (weights, summary): without it a power cut can leave an empty file under the final name.
        Not for per-epoch files: each fsync costs milliseconds and the training loop is benchmarked.

    On any error the temporary file is removed (on a full disk that frees what it took) and the error
    is raised again; the previous version of `path`, if any, is untouched.
    """
    path = Path(path)
    # pid + thread: two processes or two threads (a heartbeat) writing one file never share a temporary
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        if callable(data):
            data(tmp)
        else:
            tmp.write_bytes(data)
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_json(path: Path, obj, durable: bool = False) -> None:
    atomic_write(path, json.dumps(obj, indent=1, default=_json_default, allow_nan=False).encode(), durable)


def _json_default(o):
    np = sys.modules.get("numpy")  # a numpy scalar exists only once numpy is imported (the server's launcher has not)
    if np is not None and isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def is_disk_full(e: OSError) -> bool:
    return e.errno in DISK_FULL_ERRNOS


class StoreWriteError(Exception):
    """Writing a file of the store failed (a full disk, most often). `during` names what was being written."""

    def __init__(self, during: str, cause: OSError):
        self.during, self.cause = during, cause
        super().__init__(f"{'disk full' if is_disk_full(cause) else 'write error'} while {during}: {cause}")

    def record(self) -> dict:
        """The structured form kept in status.json and summary.json (`error`)."""
        return {"kind": "disk_full" if is_disk_full(self.cause) else "write_error", "during": self.during,
                "errno": self.cause.errno}


@contextmanager
def writing(during: str):
    """Turn an OSError inside the block into a StoreWriteError that says what was being written."""
    try:
        yield
    except OSError as e:
        raise StoreWriteError(during, e) from e


class Unreadable(ValueError):
    """A file that exists (or must exist) but cannot be read as what it should be.
    The message starts with the file's name and says why."""


def load_json(path: Path, expect: type | None = dict):
    """The JSON value in `path`, None when the file does not exist.

    Raises Unreadable (naming the file and why) for anything else that is not a JSON value of type
    `expect`: an unreadable file, bytes that are not UTF-8, invalid or too deeply nested JSON.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Unreadable(f"{path.name}: cannot be read ({e.strerror or e})") from None
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError too
        raise Unreadable(f"{path.name}: not valid JSON ({str(e)[:80]})") from None
    if expect is not None and not isinstance(obj, expect):
        raise Unreadable(f"{path.name}: holds {_JSON_KINDS.get(type(obj), type(obj).__name__)}, "
                         f"not {_JSON_KINDS.get(expect, expect.__name__)}")
    return obj


def read_json(path: Path, default=None, expect: type | None = dict):
    """Like `load_json`, but a missing or unreadable file gives `default` (for callers that can go on)."""
    try:
        obj = load_json(path, expect)
    except Unreadable:
        return default
    return default if obj is None else obj


def pid_alive(pid: int | None) -> bool:
    """A process of this id runs (a zombie does not)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child that nobody reaped yet is a zombie: dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return True
