"""The on-disk run store: one folder per run, written by the worker, read by the CLI and the pages.

    runs/<run_id>/config.json        the full resolved config (re-runnable)
                  status.json        live state: running/paused/..., stage, epoch, pid (atomic)
                  control.json       requests to the worker: pause / resume / stop (atomic)
                  metrics.jsonl      append-only: one JSON record per log step and per epoch
                  probe.npz          fixed probe images (and their corrupted versions), probe labels
                  snapshots/*.npz    per epoch: reconstructions of the probe images (from the clean and
                                     the corrupted inputs), probe codes, the probes.py instruments
                  weights.safetensors, summary.json   at the end (atomic: write then rename)

This module does not train; `RunWriter.emit` is the callback the training loop talks to.
"""
from __future__ import annotations

import io
import json
import os
import secrets
import time
from pathlib import Path

import numpy as np
import torch

from .config import RunConfig

LIVE = ("queued", "running", "paused")
FINAL = ("completed", "stopped", "diverged", "failed", "interrupted")
MAX_STORED_CODE_DIM = 64  # wider codes are stored as their top-64 principal components (UMAP's usual prep)
HEARTBEAT_S = 2.0


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, default=_json_default, allow_nan=False).encode())


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    return (images.float().clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def read_json(path: Path, default=None):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def finite_or_none(v):
    return v if isinstance(v, (int, float)) and np.isfinite(v) else None


def pid_alive(pid: int | None) -> bool:
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


class Run:
    """Read side of one run folder (safe to use while the worker writes it)."""

    def __init__(self, path: str | os.PathLike):
        self.dir = Path(path)
        self.id = self.dir.name
        self._metrics_cache: list[dict] = []
        self._metrics_offset = 0

    def __repr__(self):
        return f"Run({self.id!r})"

    @property
    def config(self) -> RunConfig:
        return RunConfig.from_dict(read_json(self.dir / "config.json", {}))

    def config_dict(self) -> dict:
        return read_json(self.dir / "config.json", {})

    def summary(self) -> dict | None:
        return read_json(self.dir / "summary.json")

    def status(self) -> dict:
        """Live status; a run whose worker died without saying so is marked interrupted here."""
        st = read_json(self.dir / "status.json", {"status": "queued"})
        if st.get("status") in LIVE and st.get("pid") and not pid_alive(st["pid"]):
            st = self.mark_interrupted("the worker process ended without finishing (killed or crashed)")
        return st

    def mark_interrupted(self, message: str) -> dict:
        st = read_json(self.dir / "status.json", {})
        st.update(status="interrupted", message=message, updated=time.time())
        atomic_write_json(self.dir / "status.json", st)
        if self.summary() is None:
            epochs = [r for r in self.metrics() if r.get("kind") == "epoch"]
            last = epochs[-1] if epochs else {}
            atomic_write_json(self.dir / "summary.json", {
                "status": "interrupted", "message": message, "strategy": self.config_dict().get("train", {}).get("strategy"),
                "epochs_completed": len(epochs), "val_sq_err_per_image": finite_or_none(last.get("val_sq_err")),
                "val_loss": finite_or_none(last.get("val_pixel_loss")), "params": st.get("params"),
                "wall_seconds": last.get("seconds"), "linear_probe_accuracy": None})
        return st

    def metrics(self) -> list[dict]:
        """All complete records so far; reads only what was appended since the last call."""
        path = self.dir / "metrics.jsonl"
        try:
            with open(path, "rb") as f:
                f.seek(self._metrics_offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end >= 0:  # a last line without its newline is still being written: leave it for next time
            for line in chunk[: end + 1].splitlines():
                if line.strip():
                    self._metrics_cache.append(json.loads(line))
            self._metrics_offset += end + 1
        return self._metrics_cache

    def epochs(self) -> list[dict]:
        return [r for r in self.metrics() if r["kind"] == "epoch"]

    def snapshot_files(self) -> list[Path]:
        return sorted((self.dir / "snapshots").glob("*.npz"))

    def load_snapshot(self, path: Path) -> dict:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def latest_snapshot(self) -> dict | None:
        files = self.snapshot_files()
        for p in reversed(files[-3:]):  # the newest may be mid-rename on some filesystems
            try:
                return self.load_snapshot(p)
            except (OSError, ValueError, EOFError):
                continue
        return None

    def probe(self) -> dict | None:
        p = self.dir / "probe.npz"
        if not p.exists():
            return None
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def request(self, command: str, **extra) -> None:
        """Ask the worker to 'pause', 'resume' or 'stop' (it checks between batches)."""
        if command not in ("pause", "resume", "stop"):
            raise ValueError(f"unknown command {command!r}")
        ctl = read_json(self.dir / "control.json", {})
        ctl.update(command=command, seq=ctl.get("seq", 0) + 1, **extra)
        atomic_write_json(self.dir / "control.json", ctl)

    def load_model(self, device="cpu"):
        """The trained AE (weights.safetensors), built from the saved config."""
        from safetensors.torch import load_model

        from .model import build_model

        st = read_json(self.dir / "status.json", {})
        model = build_model(self.config, tuple(st["input_shape"]))
        load_model(model, str(self.dir / "weights.safetensors"), device=str(device))
        return model.eval()

    def has_weights(self) -> bool:
        return (self.dir / "weights.safetensors").exists()


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
        if not run_id or "/" in run_id or ".." in run_id or not (d / "config.json").exists():
            raise KeyError(f"no run {run_id!r} in {self.root}")
        return Run(d)

    def list(self) -> list[Run]:
        """Runs, newest first."""
        if not self.root.exists():
            return []
        runs = [Run(d) for d in self.root.iterdir() if (d / "config.json").exists()]
        return sorted(runs, key=lambda r: r.id, reverse=True)


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
            atomic_write_json(self.dir / "status.json", self._status)
            self._last_status_write = now

    def emit(self, kind: str, **kw) -> None:
        if kind in ("step", "epoch"):
            rec = {"kind": kind, **{k: (finite_or_none(v) if isinstance(v, float) else v) for k, v in kw.items()}}
            self._metrics.write(json.dumps(rec) + "\n")
            if kind == "epoch":
                self._metrics.flush()  # readers see whole epochs; no fsync: it costs ms per epoch
                self.set_status(epoch=kw["epoch"], stage=kw["stage"], stage_name=kw["stage_name"],
                                seconds=kw["seconds"], step=kw["step"])
            else:
                self.set_status(force=False, epoch=kw["epoch"], step=kw["step"], seconds=kw["seconds"])
        elif kind == "stage":
            self.set_status(stage=kw["stage"], stage_name=kw["stage_name"], level=kw["level"], status="running")
        elif kind == "snapshot":
            self._write_snapshot(**kw)
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
        atomic_write_bytes(self.dir / "snapshots" / f"{epoch:05d}.npz", buf.getvalue())

    def write_probe(self, **arrays) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(self.dir / "probe.npz", buf.getvalue())

    def save_weights(self, model) -> None:
        from safetensors.torch import save_model

        tmp = self.dir / f".weights.{os.getpid()}.tmp"
        save_model(model, str(tmp))  # save_model (not save_file) keeps tied weights as one tensor
        os.replace(tmp, self.dir / "weights.safetensors")

    def finish(self, summary: dict) -> None:
        atomic_write_json(self.dir / "summary.json", summary)
        self.set_status(status=summary["status"], message=summary.get("message", ""))
        self._metrics.close()
