"""The on-disk run store: one folder per run, written by the worker, read by the CLI and the pages.

    runs/<run_id>/config.json        the full resolved config (re-runnable)
                  status.json        live state: running/paused/..., stage, epoch, pid (atomic)
                  control.json       requests to the worker: pause / resume / stop (atomic)
                  metrics.jsonl      append-only: one JSON record per log step and per epoch
                  probe.npz          fixed probe images (and their corrupted versions), probe labels
                  snapshots/*.npz    per epoch: reconstructions of the probe images (from the clean and
                                     the corrupted inputs), probe codes, the probes.py instruments
                  weights.safetensors, summary.json   at the end (atomic: write then rename)
                  checkpoint.pt      while training: what a resumed run continues from (atomic, durable)

Readers never crash on a damaged file: it is skipped and `Run.damage()` names it and says why. Writes
that fail (a full disk) raise StoreWriteError, which the worker turns into a `failed` run.
This module does not train; `RunWriter.emit` is the callback the training loop talks to.
"""
from __future__ import annotations

import io
import json
import math
import os
import secrets
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import RunConfig
from .fsutil import (StoreWriteError, Unreadable, atomic_write, atomic_write_json, load_json,  # noqa: F401
                     pid_alive, read_json, writing)
from .metrics import upgrade_record, upgrade_summary

if TYPE_CHECKING:  # torch is imported where it is used: reading runs and drawing pages need none
    import torch

LIVE = ("queued", "running", "paused")
FINAL = ("completed", "stopped", "diverged", "failed", "interrupted", "cancelled")
DAMAGED = "damaged"  # how listings show a run with an unreadable part (`Run.damage()` says which and why)
MAX_STORED_CODE_DIM = 64  # wider codes are stored as their top-64 principal components (UMAP's usual prep)
HEARTBEAT_S = 2.0
# A live run writes a snapshot (grid, codes, probe instruments) at most every 2 s between stage ends; the live view
# redraws its grid and map as often. Each new one costs the browser a redraw and the projector a UMAP fit: at 1 s,
# watching a run in Chromium took about a core from its training on 2 cores (scripts/bench_ui).
SNAPSHOT_EVERY_S = 2.0
CHECKPOINT = "checkpoint.pt"


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    import torch

    return (images.float().clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def finite_or_none(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) else None


class Run:
    """Read side of one run folder (safe to use while the worker writes it).

    Reading never raises for a damaged file except where going on would give a wrong answer
    (`config`, `load_model`: they raise Unreadable); `damage()` says what is damaged and why.
    """

    def __init__(self, path: str | os.PathLike):
        self.dir = Path(path)
        self.id = self.dir.name
        self._metrics_cache: list[dict] = []
        self._metrics_offset = 0
        self._metrics_lines = 0  # complete lines read so far, to name a bad one by its number
        self.bad_metric_lines: list[int] = []  # 1-based numbers of complete lines that were skipped
        self._metrics_error: str | None = None
        self._metrics_ino = None

    def _forget_metrics(self) -> None:
        self._metrics_cache, self._metrics_offset, self._metrics_lines = [], 0, 0
        self.bad_metric_lines = []

    def __repr__(self):
        return f"Run({self.id!r})"

    @property
    def config(self) -> RunConfig:
        """The saved config. Raises Unreadable when config.json is missing or damaged: a default config
        in its place would build a different model than the one trained."""
        d = load_json(self.dir / "config.json")
        if d is None:
            raise Unreadable("config.json: missing")
        try:
            return RunConfig.from_dict(d)
        except (ValueError, TypeError) as e:
            raise Unreadable(f"config.json: {e}") from None

    def config_dict(self) -> dict:
        """The full config as a dict ({} when config.json is damaged): for labels and listings."""
        try:
            return self.config.to_dict()
        except Unreadable:
            return {}

    def summary(self) -> dict | None:
        return upgrade_summary(read_json(self.dir / "summary.json"))

    def _json_file(self, name: str) -> tuple[dict | None, str | None]:
        """(the file's object or None if absent, the reason it is unusable or None)."""
        try:
            return load_json(self.dir / name), None
        except Unreadable as e:
            return None, str(e)

    def _status_file(self) -> tuple[dict | None, str | None]:
        st, problem = self._json_file("status.json")
        if st is not None and not isinstance(st.get("status"), str):
            return None, "status.json: no 'status' text field"
        return st, problem

    def status(self) -> dict:
        """Live status; a run whose worker died without saying so is marked interrupted here.
        An unreadable status.json gives {"status": "damaged", "message": why}."""
        st, problem = self._status_file()
        if problem:
            return {"status": DAMAGED, "message": problem}
        st = st or {"status": "queued"}
        if st["status"] in LIVE and self._job_gone(st):
            st = self.mark_interrupted("the worker process ended or stopped responding without finishing "
                                       "(killed or crashed)")
        return st

    def _job_gone(self, st: dict) -> bool:
        """The job system's liveness rule (dead pid or a heartbeat silent for 30 s); old runs: the pid."""
        from .jobs import record  # lazy: the job system builds on this module

        rec = record.read(self.dir)
        if rec is not None:
            return record.judge(rec) == "interrupted"
        pid = st.get("pid")
        return isinstance(pid, int) and pid > 0 and not pid_alive(pid)

    def mark_interrupted(self, message: str) -> dict:
        st = read_json(self.dir / "status.json", {})
        st.update(status="interrupted", message=message, updated=time.time())
        epochs = self.epochs()
        last = epochs[-1] if epochs else {}
        summary = {"status": "interrupted", "message": message,
                   "strategy": self.config_dict().get("train", {}).get("strategy"), "epochs_completed": len(epochs),
                   "val_full_sq_err": finite_or_none(last.get("val_full_sq_err")),
                   "val_full_loss": finite_or_none(last.get("val_full_loss")), "params": st.get("params"),
                   "seconds": last.get("seconds"), "gflop": last.get("gflop"), "linear_probe_accuracy": None,
                   "weights": False}
        try:  # best effort: a reader on a full disk still gets the right answer, just not saved
            atomic_write_json(self.dir / "status.json", st)
            if self.summary() is None:
                atomic_write_json(self.dir / "summary.json", summary)
        except OSError:
            pass
        return st

    def metrics(self) -> list[dict]:
        """All complete, well-formed records so far; reads only what was appended since the last call.

        A complete line that is not a well-formed record is skipped and its number kept in
        `bad_metric_lines` (the records before and after it still read)."""
        try:
            with open(self.dir / "metrics.jsonl", "rb") as f:
                if os.fstat(f.fileno()).st_ino != self._metrics_ino:  # rewound by a resume: read it anew
                    self._forget_metrics()
                    self._metrics_ino = os.fstat(f.fileno()).st_ino
                f.seek(self._metrics_offset)
                chunk = f.read()
        except FileNotFoundError:
            return self._metrics_cache
        except OSError as e:
            self._metrics_error = f"metrics.jsonl: cannot be read ({e.strerror or e})"
            return self._metrics_cache
        end = chunk.rfind(b"\n")
        if end >= 0:  # a last line without its newline is still being written: leave it for next time
            for line in chunk[:end].split(b"\n"):
                self._metrics_lines += 1
                if not line.strip():
                    continue
                rec = _record(line)
                if rec is None:
                    self.bad_metric_lines.append(self._metrics_lines)
                else:
                    self._metrics_cache.append(upgrade_record(rec))  # old keys -> today's
            self._metrics_offset += end + 1
        return self._metrics_cache

    def epochs(self) -> list[dict]:
        return [r for r in self.metrics() if r["kind"] == "epoch"]

    def damage(self) -> str | None:
        """Why this run cannot be read in full ('; '-joined, each naming its file), or None.

        Checked: config, status, summary and control files, metrics lines, and weights the run
        should have (the summary says they were saved) but has not."""
        problems = []
        try:
            self.config
        except Unreadable as e:
            problems.append(str(e))
        summary, summary_problem = self._json_file("summary.json")
        problems += [self._status_file()[1], summary_problem, self._json_file("control.json")[1]]
        self.metrics()
        problems.append(self._metrics_error)
        if self.bad_metric_lines:
            n, first = len(self.bad_metric_lines), self.bad_metric_lines[0]
            problems.append(f"metrics.jsonl: {n} unreadable line{'s' * (n > 1)} skipped "
                            f"({'first: ' * (n > 1)}line {first})")
        problems.append(self._weights_problem(summary))
        try:
            _load_npz(self.dir / "probe.npz")
        except Unreadable as e:
            problems.append(str(e))
        except FileNotFoundError:
            pass  # written once the data is loaded: a new or failed run has none yet
        return "; ".join(p for p in problems if p) or None

    def _weights_problem(self, summary: dict | None) -> str | None:
        path = self.dir / "weights.safetensors"
        if path.exists():
            return "weights.safetensors: empty file" if path.stat().st_size == 0 else None
        if not summary:
            return None
        # summaries older than the `weights` field: a completed run always saved its weights
        expected = summary.get("weights", summary.get("status") == "completed")
        return "weights.safetensors: missing (the summary says the run saved it)" if expected is True else None

    def listing(self) -> dict:
        """One row about the run for listings (CLI, Home): plain values, numbers or None, never raises.
        A damaged run has status 'damaged' and the reason in `damage`."""
        st, sm, cfg, damage = self.status(), self.summary() or {}, self.config_dict(), self.damage()
        row = {"run": self.id, "name": cfg.get("name", ""), "status": DAMAGED if damage else st["status"],
               "damage": damage, "strategy": cfg.get("train", {}).get("strategy"),
               "data": cfg.get("data", {}).get("name"),
               "layers": ",".join(map(str, cfg.get("model", {}).get("layers", []))),
               "params": finite_or_none(sm.get("params") or st.get("params"))}
        for k in ("test_full_sq_err", "linear_probe_accuracy", "seconds", "samples_per_second"):
            row[k] = finite_or_none(sm.get(k))  # numbers or None, even from a hand-edited summary
        return row

    def snapshot_files(self) -> list[Path]:
        return sorted((self.dir / "snapshots").glob("*.npz"))

    def load_snapshot(self, path: Path) -> dict:
        """The arrays of one snapshot; Unreadable (naming it) when the file is damaged."""
        return _load_npz(path)

    def latest_snapshot(self) -> dict | None:
        files = self.snapshot_files()
        for p in reversed(files[-3:]):  # the newest may be mid-rename on some filesystems
            try:
                return self.load_snapshot(p)
            except (Unreadable, FileNotFoundError):
                continue
        return None

    def probe(self) -> dict | None:
        """The fixed probe images and labels; None when absent or damaged (`damage()` says which)."""
        try:
            return _load_npz(self.dir / "probe.npz")
        except (Unreadable, FileNotFoundError):
            return None

    def request(self, command: str, **extra) -> None:
        """Ask the worker to 'pause', 'resume' or 'stop' (it checks between batches)."""
        if command not in ("pause", "resume", "stop"):
            raise ValueError(f"unknown command {command!r}")
        ctl = read_json(self.dir / "control.json", {})
        seq = ctl.get("seq") if isinstance(ctl.get("seq"), int) else 0
        ctl.update(command=command, seq=seq + 1, **extra)
        atomic_write_json(self.dir / "control.json", ctl)

    def load_model(self, device="cpu"):
        """The trained AE (weights.safetensors), built from the saved config.
        Raises Unreadable when the config, the recorded input shape or the weights cannot be used."""
        from safetensors import SafetensorError
        from safetensors.torch import load_model

        from .model import build_model

        shape = read_json(self.dir / "status.json", {}).get("input_shape")
        if not (isinstance(shape, list) and shape and all(isinstance(n, int) and n > 0 for n in shape)):
            raise Unreadable("status.json: no input_shape to build the model with")
        model = build_model(self.config, tuple(shape))
        try:
            load_model(model, str(self.dir / "weights.safetensors"), device=str(device))
        except (SafetensorError, RuntimeError, OSError) as e:  # truncated file, or tensors of other shapes
            raise Unreadable(f"weights.safetensors: {str(e)[:200]}") from None
        return model.eval()

    def has_weights(self) -> bool:
        return (self.dir / "weights.safetensors").exists()

    def resumable(self) -> bool:
        """Interrupted (killed, crashed, Ctrl-C) with a checkpoint to continue from."""
        return self.status().get("status") == "interrupted" and (self.dir / CHECKPOINT).exists()

    def checkpoint(self) -> dict | None:
        """The last checkpoint's state (tensors on the CPU), None when there is none; Unreadable if damaged."""
        import torch

        path = self.dir / CHECKPOINT
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated or foreign: torch raises several kinds
            raise Unreadable(f"{CHECKPOINT}: not a readable checkpoint ({str(e)[:80]})") from None

    def rewind(self, state: dict) -> None:
        """Make the folder what it was when `state` was saved, so the resumed run appends to it: metrics
        cut to the records written by then, later snapshots and the interrupted run's ending removed."""
        path = self.dir / "metrics.jsonl"
        if path.exists():  # a new file (not truncated in place): readers see its new inode and read it anew
            with open(path, "rb") as f:
                atomic_write(path, f.read(state["store"]["metrics_bytes"]))
        self._forget_metrics()
        kept = {Path(name).stem for name in state["store"]["snapshots"]}
        for p in (self.dir / "snapshots").glob("*"):  # snapshots after it, and their stored layouts
            if p.name.split(".")[0] not in kept:
                p.unlink(missing_ok=True)
        for name in ("summary.json", "weights.safetensors", "error.txt"):
            (self.dir / name).unlink(missing_ok=True)
        for tmp in self.dir.glob(f".{CHECKPOINT}.*.tmp"):  # left by a kill during a checkpoint write
            tmp.unlink(missing_ok=True)


_INTS = ("stage", "epoch", "step", "samples")
_FIELDS = {"step": (_INTS, ("seconds",), ("loss",)),  # (ints, numbers, numbers or None) of each kind
           "epoch": (_INTS, ("seconds",), ("train_loss", "val_loss", "val_full_sq_err", "val_full_loss",
                                            "val_stage_sq_err", "val_stage_pixel_loss", "gflop",
                                            "val_pixel_loss", "val_sq_err"))}  # the last two: old runs' names


def _record(line: bytes) -> dict | None:
    """One metrics record, or None when the line is not one (the charts index these fields)."""
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("kind"), str):
        return None
    ints, nums, optional = _FIELDS.get(rec["kind"], ((), (), ()))  # other kinds: not drawn, not checked
    ok = all(type(rec.get(k)) is int for k in ints) and all(_is_number(rec.get(k)) for k in nums) \
        and all(rec.get(k) is None or _is_number(rec.get(k)) for k in optional)
    if rec["kind"] == "epoch":
        ok = ok and isinstance(rec.get("stage_name"), str)
    return rec if ok else None


def _load_npz(path: Path) -> dict:
    """All arrays of an .npz file (no pickles). FileNotFoundError when absent, Unreadable when damaged."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:  # truncated, garbage, pickle
        raise Unreadable(f"{path.name}: not a readable .npz ({str(e)[:80]})") from None


def _is_number(v) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


class RunStore:
    def __init__(self, root: str | os.PathLike = "runs"):
        self.root = Path(root)

    def create(self, cfg: RunConfig) -> Run:
        """A new run folder holding the config; the worker fills the rest."""
        self.root.mkdir(parents=True, exist_ok=True)
        label = "".join(c if c.isalnum() or c in "-_" else "-" for c in (cfg.name or "custom"))[:32]
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{label}-{secrets.token_hex(2)}"
        d = self.root / run_id
        (d / "snapshots").mkdir(parents=True)
        atomic_write_json(d / "config.json", cfg.to_dict())
        atomic_write_json(d / "status.json", {"status": "queued", "created": time.time()})
        atomic_write_json(d / "control.json", {"command": "run", "seq": 0,
                                               "pause_after_stage": cfg.train.pause_after_stage})
        return Run(d)

    def get(self, run_id: str) -> Run:
        d = self.root / run_id
        if not run_id or "/" in run_id or ".." in run_id or not _is_run_dir(d):
            raise KeyError(f"no run {run_id!r} in {self.root}")
        return Run(d)

    def list(self) -> list[Run]:
        """Runs, newest first (damaged ones too: `Run.damage()` says what is wrong)."""
        if not self.root.exists():
            return []
        runs = [Run(d) for d in self.root.iterdir() if _is_run_dir(d)]
        return sorted(runs, key=lambda r: r.id, reverse=True)


def _is_run_dir(d: Path) -> bool:
    """A run folder: the store writes config.json and status.json first; a run that lost its config
    is still a run (listed as damaged), so either file counts."""
    return (d / "config.json").exists() or (d / "status.json").exists()


class RunWriter:
    """The worker's side: subscribes to training events and writes them into the run folder."""

    def __init__(self, run: Run):
        self.run, self.dir = run, run.dir
        self._metrics = open(self.dir / "metrics.jsonl", "a", buffering=1)
        self._status = read_json(self.dir / "status.json", {})
        self._last_status_write = 0.0

    def set_status(self, force: bool = True, **kw) -> None:
        self._status.update(kw, updated=time.time())
        now = time.monotonic()
        if force or now - self._last_status_write > HEARTBEAT_S:
            with writing("writing the status"):
                atomic_write_json(self.dir / "status.json", self._status)
            self._last_status_write = now

    def emit(self, kind: str, **kw) -> None:
        if kind in ("step", "epoch"):
            rec = {"kind": kind, **{k: (finite_or_none(v) if isinstance(v, float) else v) for k, v in kw.items()}}
            with writing("writing metrics"):  # line-buffered: a full disk shows up here, at once
                self._metrics.write(json.dumps(rec) + "\n")
            if kind == "epoch":  # readers see whole epochs; no fsync: it costs ms per epoch
                self.set_status(epoch=kw["epoch"], stage=kw["stage"], stage_name=kw["stage_name"],
                                seconds=kw["seconds"], step=kw["step"])
            else:
                self.set_status(force=False, epoch=kw["epoch"], step=kw["step"], seconds=kw["seconds"])
        elif kind == "stage":
            self.set_status(stage=kw["stage"], stage_name=kw["stage_name"], level=kw["level"], status="running")
        elif kind == "snapshot":
            self._write_snapshot(**kw)
        elif kind == "checkpoint":
            self._write_checkpoint(kw["state"])
        elif kind == "paused":
            self.set_status(status="paused", message=kw["reason"])
        elif kind == "resumed":
            self.set_status(status="running", message="")

    def _write_snapshot(self, stage, stage_name, epoch, step, level, recon, codes, probes=None) -> None:
        """recon: the probe images reconstructed from their clean versions; probes (aelab/probes.py):
        `denoised` (the same images' outputs from their corrupted versions) and named floats/arrays."""
        probes = dict(probes or {})
        arrays = {"stage": np.int32(stage), "epoch": np.int32(epoch), "step": np.int64(step),
                  "level": np.int32(level), "stage_name": np.array(stage_name), "recon": _to_uint8(recon)}
        if probes.get("denoised") is not None:
            arrays["denoised"] = _to_uint8(probes.pop("denoised"))
        arrays.update({k: np.asarray(v) for k, v in probes.items() if v is not None})
        if codes is not None:
            import torch

            c = codes.float()
            arrays["code_dim"] = np.int32(c.shape[1])
            counts, edges = np.histogram(c.numpy().ravel(), bins=40)
            arrays["hist_counts"], arrays["hist_edges"] = counts, edges
            arrays["code_mean"] = np.float32(c.mean())
            if c.shape[1] > MAX_STORED_CODE_DIM:
                c = c - c.mean(0)
                _, _, v = torch.pca_lowrank(c, q=MAX_STORED_CODE_DIM, center=False, niter=2)
                c = c @ v
            arrays["codes"] = c.numpy().astype(np.float16)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        with writing("saving a snapshot"):
            atomic_write(self.dir / "snapshots" / f"{epoch:05d}.npz", buf.getvalue())

    def _write_checkpoint(self, state: dict) -> None:
        """checkpoint.pt, with what the folder held at that moment (for `Run.rewind`). Durable: a power
        cut must not leave an empty file in place of the last good checkpoint."""
        with writing("writing metrics"):
            self._metrics.flush()
        import torch

        store = {"metrics_bytes": self._metrics.tell(), "snapshots": [p.name for p in self.run.snapshot_files()]}
        with writing("saving a checkpoint"):
            atomic_write(self.dir / CHECKPOINT, lambda tmp: torch.save(dict(state, store=store), tmp), durable=True)

    def write_probe(self, **arrays) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        with writing("saving the probe images"):
            atomic_write(self.dir / "probe.npz", buf.getvalue())

    def save_weights(self, model) -> None:
        from safetensors.torch import save_model

        with writing("saving weights"):  # save_model (not save_file) keeps tied weights as one tensor
            atomic_write(self.dir / "weights.safetensors", lambda tmp: save_model(model, str(tmp)), durable=True)

    def finish(self, summary: dict) -> None:
        """Close the metrics log, then write the summary and the final status (StoreWriteError if not)."""
        with writing("writing metrics"):
            self._metrics.close()  # flushes; closed even when the flush fails
        with writing("writing the summary"):
            atomic_write_json(self.dir / "summary.json", summary, durable=True)
        self.set_status(status=summary["status"], message=summary.get("message", ""), error=summary.get("error"))
