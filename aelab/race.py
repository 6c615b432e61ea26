"""A race: the same architecture trained two ways at once, so a room sees which way wins as it happens.

A race is one job group: its arms are ordinary runs in the run store that take consecutive places in the
job queue, start together (each holds its slot until the other has one) and share the cores (one torch
thread each on 2 cores), plus one record, `races/<id>.json` in the store, that names them. Kinds of race:

- strategy: greedy layer-wise (+ fine-tune) vs end-to-end. The end-to-end arm drops `finetune_epochs`
  and gets the number of epochs whose training compute (aelab/flops.py) is closest to the greedy arm's
  whole run, so both arms end at the same point of the compute axis.
- noise: the config as it is vs the same without input noise.
- tied: tied vs untied decoder weights.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from . import flops
from .config import RunConfig
from .fsutil import atomic_write

KINDS = {"strategy": "greedy (+ fine-tune) vs end-to-end, equal compute",
         "noise": "with vs without input noise",
         "tied": "tied vs untied weights"}
RACES_DIR = "races"


def equal_compute_epochs(greedy: RunConfig, input_shape: tuple) -> int:
    """End-to-end epochs whose training compute is closest to the greedy config's whole run (the count
    is linear in the number of training images, so it cancels out)."""
    model = flops.Arch.of(greedy, input_shape)  # counted from the shapes: the server imports no torch for a race
    total = flops.planned_macs(model, greedy, 1)
    one = flops.planned_macs(model, greedy.with_overrides({"train.strategy": "end_to_end", "train.epochs": 1,
                                                           "train.finetune_epochs": 0}), 1)
    return max(1, round(total / one))


def end_to_end_twin(greedy: RunConfig, input_shape: tuple) -> RunConfig:
    """The end-to-end arm of a greedy config: same everything, no fine-tuning, equal training compute."""
    return greedy.with_overrides({"train.strategy": "end_to_end", "train.finetune_epochs": 0,
                                  "train.pause_after_stage": False,
                                  "train.epochs": equal_compute_epochs(greedy, input_shape)})


def why_not(cfg: RunConfig, kind: str) -> str | None:
    """Why `cfg` cannot race this way (None: it can)."""
    if kind not in KINDS:
        return f"race kind {kind!r} is not one of {', '.join(KINDS)}"
    if kind == "strategy" and cfg.train.strategy != "greedy":
        return ("a strategy race starts from a greedy config (train.strategy = greedy, e.g. the stacked-denoising "
                "preset); its end-to-end arm is derived at equal compute")
    if kind == "noise" and cfg.noise.kind == "none":
        return "a noise race needs input noise to race against (noise.kind is none)"
    return None


def arms(cfg: RunConfig, kind: str, input_shape: tuple) -> list[tuple[str, RunConfig]]:
    """[(arm label, config)] of a race; ValueError naming the reason when cfg cannot race this way."""
    if problem := why_not(cfg, kind):
        raise ValueError(problem)
    cfg = cfg.with_overrides({"train.pause_after_stage": False})  # a race runs through, nobody clicks per stage
    if kind == "strategy":
        twin = end_to_end_twin(cfg, input_shape)
        return [(f"greedy ({cfg.train.epochs} epochs x {len(cfg.model.layers)} stages + "
                 f"{cfg.train.finetune_epochs} fine-tune)", cfg),
                (f"end-to-end ({twin.train.epochs} epochs)", twin)]
    if kind == "noise":
        return [(f"{cfg.noise.kind} noise {cfg.noise.level:g}", cfg),
                ("no noise", cfg.with_overrides({"noise.kind": "none"}))]
    return [("tied" if cfg.model.tied else "untied", cfg),
            ("untied" if cfg.model.tied else "tied", cfg.with_overrides({"model.tied": not cfg.model.tied}))]


@dataclass(frozen=True)
class Race:
    id: str
    kind: str
    labels: tuple[str, ...]
    run_ids: tuple[str, ...]
    created: float


def _path(root: str | os.PathLike, race_id: str) -> Path:
    if not race_id.replace("-", "").isalnum():  # ids come from URLs: never a path
        raise KeyError(race_id)
    return Path(root) / RACES_DIR / f"{race_id}.json"


def save(root: str | os.PathLike, kind: str, labels: list[str], run_ids: list[str]) -> Race:
    race = Race(f"race-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}", kind, tuple(labels),
                tuple(run_ids), time.time())
    path = _path(root, race.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(race.__dict__, indent=1).encode())
    return race


def load(root: str | os.PathLike, race_id: str) -> Race:
    """The race record; KeyError when there is no such race (or it does not read)."""
    try:
        d = json.loads(_path(root, race_id).read_text())
        return Race(d["id"], d["kind"], tuple(d["labels"]), tuple(d["run_ids"]), float(d["created"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise KeyError(race_id) from e


def start(pool, cfg: RunConfig, kind: str, input_shape: tuple) -> Race:
    """Launch both arms as one group through the pool (they start together) and record the race."""
    pairs = arms(cfg, kind, input_shape)
    runs = pool.start_group([c for _, c in pairs])
    return save(pool.store.root, kind, [label for label, _ in pairs], [r.id for r in runs])
