"""A run beside the others in TensorBoard or MLflow: its metrics under the lab's own names.

TensorBoard (`TensorBoardLog`): one event folder per run (`DIR/<run id>`) with every epoch record's metrics as
scalars (the vocabulary's keys, step = epoch), the step records' `loss` (step = optimiser step), stage
boundaries as text, the reconstruction grid of every snapshot as an image, and the last snapshot's codes with
their labels for TensorBoard's projector. It reads the run folder, so the same class exports a finished run
(`python -m aelab export RUN --tensorboard DIR`) and follows a live one: the worker syncs it after each epoch
when AELAB_TENSORBOARD=DIR is set.

MLflow (`to_mlflow`, optional: only when mlflow is installed): one MLflow run per aelab run with the config
as params, the metrics with their steps, the summary's numbers, and config / summary / weights as artifacts;
a race's runs, and a sweep's cells and tuning trials, are nested under one parent run. Exporting a run twice finds
the first MLflow run again.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from .config import flat_items
from .metrics import VOCABULARY
from .runs import Run

TENSORBOARD_ENV = "AELAB_TENSORBOARD"
AXES = ("epoch", "step", "samples", "seconds", "gflop", "stage")  # record fields that are not metrics
EXPERIMENT = "aelab"


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class TensorBoardLog:
    """Writes what a run folder holds (and, called again, what it gained since) to DIR/<run id>."""

    def __init__(self, run: Run, logdir: str | os.PathLike):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.run, self.dir = run, Path(logdir) / run.id
        self.writer = SummaryWriter(str(self.dir))
        self._records = 0  # metrics records already written
        self._snapshots: set[str] = set()
        self._stage = None
        self._probe = None
        self._t0 = run.status().get("started")  # wall time of the records: the run's start + their seconds

    def sync(self) -> None:
        """Write the records and snapshots that appeared since the last call."""
        records = self.run.metrics()
        for rec in records[self._records:]:
            self._record(rec)
        self._records = len(records)
        for path in self.run.snapshot_files():
            if path.name not in self._snapshots:
                self._snapshot(path)
                self._snapshots.add(path.name)
        self.writer.flush()

    def _record(self, rec: dict) -> None:
        wall = self._t0 + rec["seconds"] if self._t0 and _number(rec.get("seconds")) else None
        if rec["kind"] == "step":
            if _number(rec.get("loss")):
                self.writer.add_scalar("loss", rec["loss"], rec["step"], walltime=wall)
            return
        if rec.get("stage_name") != self._stage:  # the first epoch of a new stage: its boundary
            self._stage = rec.get("stage_name")
            self.writer.add_text("stages", f"epoch {rec['epoch']}: **{self._stage}** begins "
                                 f"(after {rec['step']} steps)", rec["epoch"], walltime=wall)
        for key, value in rec.items():
            if key in VOCABULARY and key not in AXES and _number(value):
                self.writer.add_scalar(key, value, rec["epoch"], walltime=wall)
        if _number(rec.get("gflop")):  # the compute axis, to read any curve against work done
            self.writer.add_scalar("gflop", rec["gflop"], rec["epoch"], walltime=wall)

    def _snapshot(self, path: Path) -> None:
        import torch
        from torchvision.utils import make_grid

        try:
            snap = self.run.load_snapshot(path)
        except Exception:  # a damaged snapshot: skipped here, Run.damage() names it elsewhere
            return
        if self._probe is None:
            self._probe = self.run.probe() or {}
        recon = torch.from_numpy(np.asarray(snap["recon"]))
        rows = [recon]
        images = self._probe.get("images")
        if images is not None and len(images) >= len(recon) and recon.ndim == 4:
            rows.insert(0, torch.from_numpy(np.asarray(images[: len(recon)])))  # the originals above
        if recon.ndim == 4:  # images; tabular runs have no grid
            grid = make_grid(torch.cat(rows), nrow=len(recon), padding=1, pad_value=255)
            self.writer.add_image("reconstructions", grid, int(snap["epoch"]), dataformats="CHW")

    def codes(self) -> None:
        """The newest snapshot's codes (the validation images' code layer) with their labels, for the projector."""
        files = self.run.snapshot_files()
        for path in reversed(files):
            try:
                snap = self.run.load_snapshot(path)
            except Exception:
                continue
            if "codes" not in snap:
                continue
            codes = np.asarray(snap["codes"], dtype=np.float32)
            probe = self._probe if self._probe is not None else (self.run.probe() or {})
            labels, classes = probe.get("labels"), list(probe.get("classes", []))
            meta = None
            if labels is not None and len(labels) >= len(codes):
                meta = [str(classes[i]) if i < len(classes) else str(i) for i in np.asarray(labels[: len(codes)])]
            self.writer.add_embedding(codes, metadata=meta, global_step=int(snap["epoch"]), tag="code")
            return

    def close(self) -> None:
        """The projector's codes and the summary, then close the event file."""
        self.sync()
        self.codes()
        summary = self.run.summary()
        if summary:
            self.writer.add_text("summary", "\n".join(f"- {k}: {v}" for k, v in summary.items() if v is not None))
        self.writer.close()


def to_tensorboard(run: Run, logdir: str | os.PathLike) -> Path:
    """Write a run folder's whole history to logdir/<run id>; returns that folder."""
    log = TensorBoardLog(run, logdir)
    log.sync()
    log.close()
    return log.dir


class LiveTensorBoard:
    """The worker's optional subscriber (AELAB_TENSORBOARD=DIR): follows the run as it trains. Logging must
    never cost the run: the first error switches it off and says why in the worker's log."""

    def __init__(self, run: Run, logdir: str):
        self.log: TensorBoardLog | None = None
        self._guard(lambda: setattr(self, "log", TensorBoardLog(run, logdir)))

    def _guard(self, fn) -> None:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - any failure here only turns logging off
            print(f"TensorBoard logging off: {type(e).__name__}: {e}", flush=True)
            self.log = None

    def event(self, kind: str) -> None:
        if self.log is not None and kind in ("epoch", "snapshot"):
            self._guard(self.log.sync)

    def close(self) -> None:
        if self.log is not None:
            self._guard(self.log.close)


# ----------------------------------------------------------------------------- MLflow

def to_mlflow(run: Run, tracking_uri: str | None = None, experiment: str = EXPERIMENT) -> str:
    """Log a run folder as one MLflow run (nested under its race's or sweep's parent run); returns the MLflow run id.
    tracking_uri None: MLflow's own default (MLFLOW_TRACKING_URI, else its default store)."""
    try:
        from mlflow.exceptions import MlflowException
    except ImportError:
        raise ValueError("--mlflow: mlflow is not installed (pip install mlflow)") from None
    try:
        return _log_mlflow(run, tracking_uri, experiment)
    except MlflowException as e:  # a refused or unreachable store: say so in one line
        raise ValueError(f"--mlflow: {e.message}") from None


def _log_mlflow(run: Run, tracking_uri: str | None, experiment: str) -> str:
    from mlflow.entities import Metric, Param, RunStatus
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri or None)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    found = client.search_runs([exp_id], f"tags.`aelab.run_id` = '{run.id}'", max_results=1)
    if found:
        return found[0].info.run_id
    tags = {"aelab.run_id": run.id, "aelab.run_dir": str(run.dir.resolve()), "mlflow.runName": run.id}
    group = _group_of(run)
    if group:
        kind, gid = group
        tags.update({"mlflow.parentRunId": _parent(client, exp_id, kind, gid), f"aelab.{kind}_id": gid})
    mid = client.create_run(exp_id, tags=tags).info.run_id
    t0 = int(1000 * (run.status().get("started") or 0)) or None
    params = [Param(k, ",".join(map(str, v)) if isinstance(v, tuple) else str(v))
              for k, v in flat_items(run.config).items()]
    metrics = []
    for rec in run.metrics():
        ts = (t0 or 0) + int(1000 * rec.get("seconds", 0))
        if rec["kind"] == "step":
            if _number(rec.get("loss")):
                metrics.append(Metric("loss", rec["loss"], ts, rec["step"]))
            continue
        metrics += [Metric(k, float(v), ts, rec["epoch"]) for k, v in rec.items()
                    if k in VOCABULARY and k not in AXES and _number(v)]
        if _number(rec.get("gflop")):
            metrics.append(Metric("gflop", float(rec["gflop"]), ts, rec["epoch"]))
    summary = run.summary() or {}
    final_step = max((r["epoch"] for r in run.epochs()), default=0)
    metrics += [Metric(f"summary.{k}", float(v), t0 or 0, final_step) for k, v in summary.items()
                if _number(v)]
    for i in range(0, len(params), 100):  # MLflow's batch limits: 100 params, 1000 metrics
        client.log_batch(mid, params=params[i:i + 100])
    for i in range(0, len(metrics), 1000):
        client.log_batch(mid, metrics=metrics[i:i + 1000])
    for name in ("config.json", "summary.json", "weights.safetensors"):
        if (run.dir / name).exists():
            client.log_artifact(mid, str(run.dir / name))
    status = {"completed": "FINISHED", "stopped": "KILLED", "cancelled": "KILLED"}.get(summary.get("status"), "FAILED")
    if not summary:
        status = "RUNNING" if run.status().get("status") in ("queued", "running", "paused") else "FAILED"
    if status != "RUNNING":
        client.set_terminated(mid, status=RunStatus.to_string(getattr(RunStatus, status)))
    return mid


def _group_of(run: Run) -> tuple[str, str] | None:
    """("race", id) when the run is an arm of a race (runs/races/*.json list their run ids), ("sweep", id) when it
    is a cell or a tuning trial of a sweep (runs/sweeps/*.json), else None."""
    from .race import RACES_DIR
    from .sweep import SWEEPS_DIR

    for kind, folder in (("race", RACES_DIR), ("sweep", SWEEPS_DIR)):
        for path in sorted((run.dir.parent / folder).glob("*.json")):
            try:
                rec = json.loads(path.read_text())
                ids = set(rec.get("run_ids", [])) | {c.get("run_id") for c in rec.get("cells", [])}
                for cell in ((rec.get("tuning") or {}).get("cells") or {}).values():
                    ids |= {t.get("run_id") for t in cell.get("trials", [])}
            except (OSError, ValueError, AttributeError, TypeError):
                continue
            if run.id in ids:
                return kind, path.stem
    return None


def _parent(client, exp_id: str, kind: str, group_id: str) -> str:
    """The MLflow run that holds a race's arms or a sweep's cells (made once, found again after)."""
    tag = f"aelab.{kind}_parent"
    found = client.search_runs([exp_id], f"tags.`{tag}` = '{group_id}'", max_results=1)
    if found:
        return found[0].info.run_id
    parent = client.create_run(exp_id, tags={tag: group_id, "mlflow.runName": group_id}).info.run_id
    client.set_terminated(parent)  # a container for the runs, not a run of its own
    return parent
