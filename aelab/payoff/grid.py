"""The payoff grid: label budgets x repeats x methods, each cell a classifier scored on the test split.

For saved AE runs (their encoders) and a labelled dataset, draw class-balanced label budgets from the train
split and train, under one `TrainingRule`: scratch (default init), scratch + BatchNorm + Kaiming (optionally
LSUV), pretrained frozen (codes + logistic regression), pretrained fine-tuned, and PCA + logistic regression.
Every cell is scored on the test split (reported) and the validation split (used only to pick the best scratch
baseline in `stats.py`). The autoencoders come from the run store and are never retrained here.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import Data, load_data
from ..fsutil import atomic_write
from ..model import build_model
from ..runs import Run, atomic_write_json
from . import stats
from .classifiers import (Classifier, TrainingRule, accuracy, encoder_codes, fit_logistic, fit_network,
                          kaiming_init, lsuv_init, pca_codes, standardise)

DEFAULT_BUDGETS = (10, 30, 100, 300, 1000, 0)  # 0 = every label of the train split
SCRATCH_METHODS = ("scratch", "scratch_bn", "scratch_lsuv")
PRETRAINED_METHODS = ("frozen", "finetuned")
FEATURE_METHODS = ("frozen", "pca")  # fixed features + logistic regression
LABELS = {"scratch": "scratch", "scratch_bn": "scratch + BN + Kaiming", "scratch_lsuv": "scratch + BN + LSUV",
          "frozen": "pretrained, frozen", "finetuned": "pretrained, fine-tuned", "pca": "PCA + logistic"}
RESULTS_VERSION = 2  # v2: test split, one training rule to convergence (v1 results are not reused)


@dataclass(frozen=True)
class PayoffConfig:
    runs: tuple[str, ...]  # run folders of trained autoencoders (same dataset)
    budgets: tuple[int, ...] = DEFAULT_BUDGETS
    repeats: int = 3  # paired repeats per cell: the 95 % interval of a difference needs several
    max_steps: int = TrainingRule.max_steps  # the networks' step budget (see TrainingRule.step_cap)
    patience: int = TrainingRule.patience
    lsuv: bool = False  # also run scratch + BN with LSUV init (Mishkin & Matas 2016)

    @classmethod
    def make(cls, runs, budgets=None, repeats=3, **kw) -> "PayoffConfig":
        cfg = cls(tuple(str(Path(r)) for r in runs), tuple(budgets) if budgets else DEFAULT_BUDGETS, repeats, **kw)
        return cfg.validate()

    def validate(self) -> "PayoffConfig":
        if not self.runs:
            raise ValueError("runs: give at least one trained autoencoder run folder")
        for r in self.runs:
            if not (Path(r) / "weights.safetensors").exists():
                raise ValueError(f"runs: {r} has no trained weights (is it a finished run folder?)")
        if any(b < 0 for b in self.budgets) or not self.budgets:
            raise ValueError("budgets: label counts must be positive integers (or 'all')")
        if not 1 <= self.repeats <= 20:
            raise ValueError("repeats: must be between 1 and 20")
        if not 100 <= self.max_steps <= 100_000:
            raise ValueError("max_steps: must be between 100 and 100000")
        if not 1 <= self.patience <= 1000:
            raise ValueError("patience: must be between 1 and 1000")
        return self

    def rule(self) -> TrainingRule:
        return TrainingRule(max_steps=self.max_steps, patience=self.patience)

    def key(self) -> str:
        """Cache key: settings, results version and each run's weights file identity (retrained run = new key)."""
        ident = [asdict(self), RESULTS_VERSION] + [
            os.stat(Path(r) / "weights.safetensors").st_mtime_ns for r in self.runs]
        return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]


def balanced_indices(y: torch.Tensor, budget: int, seed: int) -> torch.Tensor:
    """`budget` train indices, as equal per class as possible (0 = all), drawn with `seed`."""
    if budget == 0 or budget >= len(y):
        return torch.arange(len(y))
    classes = torch.unique(y)
    g = torch.Generator().manual_seed(seed)
    per = [budget // len(classes) + (1 if i < budget % len(classes) else 0) for i in range(len(classes))]
    picked = []
    for c, n in zip(classes, per):
        idx = torch.nonzero(y == c).flatten()
        picked.append(idx[torch.randperm(len(idx), generator=g)[: max(n, 1)]])
    return torch.cat(picked).sort().values


def build_classifier(method: str, run: Run, data: Data, seed: int) -> tuple[Classifier, list]:
    """The network a gradient-trained method starts from and the parameters its optimiser may change."""
    torch.manual_seed(seed)
    ae = run.load_model() if method == "finetuned" else build_model(run.config, data.input_shape)
    model = Classifier(ae, int(data.y_train.max()) + 1, bn=method in ("scratch_bn", "scratch_lsuv"))
    if method == "scratch_bn":
        kaiming_init(model)
    elif method == "scratch_lsuv":
        lsuv_init(model, data.x_train[:256])
    return model, list(model.parameters())


class Features:
    """Standardised fixed features (frozen codes per run, PCA) for train / val / test, computed once per grid."""

    def __init__(self, data: Data, runs: list[Run]):
        self.data, self.runs, self._cache = data, runs, {}

    def get(self, method: str, run_index: int) -> list[np.ndarray]:
        key = (method, run_index if method == "frozen" else 0)
        if key not in self._cache:
            d = self.data
            if method == "frozen":
                ae = self.runs[run_index].load_model()
                z = [encoder_codes(ae, t) for t in (d.x_train, d.x_val, d.x_test)]
            else:  # PCA with the first run's code size: the same compression as the AE
                k = build_model(self.runs[0].config, d.input_shape).code_dim()
                z = pca_codes(d.x_train, [d.x_val, d.x_test], k)
            self._cache[key] = standardise(*z)
        return self._cache[key]


def run_cell(method: str, run_index: int, runs: list[Run], data: Data, features: Features, idx: torch.Tensor,
             rule: TrainingRule, seed: int) -> dict:
    """Train one classifier on the labelled subset `idx` of the train split; test and val accuracy + fit record."""
    y = data.y_train[idx]
    if method in FEATURE_METHODS:
        z_train, z_val, z_test = features.get(method, run_index)
        clf, fit = fit_logistic(z_train[idx.numpy()], y.numpy(), rule, seed)
        return {"accuracy": float(clf.score(z_test, data.y_test.numpy())),
                "val_accuracy": float(clf.score(z_val, data.y_val.numpy())), **fit}
    model, params = build_classifier(method, runs[run_index], data, seed)
    fit = fit_network(model, params, data.x_train[idx], y, rule, seed)
    return {"accuracy": accuracy(model, data.x_test, data.y_test),
            "val_accuracy": accuracy(model, data.x_val, data.y_val), **fit}


def run_label(run: Run) -> str:
    c = run.config
    return f"{c.name or 'custom'} ({c.train.strategy}) {run.id[-4:]}"


def plan(cfg: PayoffConfig) -> list[tuple[str, int]]:
    """(method, run index) pairs: baselines once (they use the first run's encoder shape), pretrained per run."""
    methods = [("scratch", 0), ("scratch_bn", 0)] + ([("scratch_lsuv", 0)] if cfg.lsuv else [])
    for i in range(len(cfg.runs)):
        methods += [("frozen", i), ("finetuned", i)]
    return methods + [("pca", 0)]


def load_payoff_data(runs: list[Run]) -> Data:
    names = {json.dumps(r.config_dict().get("data"), sort_keys=True) for r in runs}
    if len(names) > 1:
        raise ValueError("runs: all runs must be trained on the same dataset to share one label budget")
    data = load_data(runs[0].config.data)
    if data.y_train is None or data.y_test is None:
        raise ValueError(f"{data.name}: the dataset has no labels; the payoff experiment needs them")
    return data


@contextlib.contextmanager
def one_thread():
    """Torch on one thread while the grid runs. The classifiers are small: on a shared 2-core machine two
    OpenMP threads spin against each other (measured: 184 ms vs 3.5 ms per step of a 784-128-64-32 net)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_payoff(cfg: PayoffConfig, out_dir: Path | None, progress=lambda done, total, msg: None,
               rule: TrainingRule | None = None) -> dict:
    """Run the whole grid; write results.json / results.csv into out_dir (if given); return the results dict."""
    with one_thread():
        return _run_grid(cfg, out_dir, progress, rule)


def _run_grid(cfg: PayoffConfig, out_dir: Path | None, progress, rule: TrainingRule | None) -> dict:
    runs = [Run(r) for r in cfg.runs]
    data = load_payoff_data(runs)
    rule = rule or cfg.rule()
    methods, features = plan(cfg), Features(data, runs)
    todo = draws(cfg, data)
    total, rows, done = len(methods) * len(todo), [], iter(range(1, len(methods) * len(todo) + 1))
    for budget, rep in todo:
        rows += run_draw(cfg, runs, data, features, budget, rep, rule,
                         on_cell=lambda msg: progress(next(done), total, msg))
    return finish(cfg, rule, data, rows, out_dir)


def draws(cfg: PayoffConfig, data: Data) -> list[tuple[int, int]]:
    """(label budget, repeat) pairs, in the order the rows are reported. Each is one label draw that every
    method trains on; draws are independent of each other, so they can run anywhere (aelab.payoff.remote)."""
    budgets = [min(b, len(data.x_train)) if b else 0 for b in cfg.budgets]
    return [(budget, rep) for budget in budgets for rep in range(cfg.repeats)]


def run_draw(cfg: PayoffConfig, runs: list[Run], data: Data, features: Features, budget: int, rep: int,
             rule: TrainingRule, on_cell=lambda msg: None) -> list[dict]:
    """Every method on one label draw: the rows of the grid for (budget, repeat)."""
    seed = 1000 * rep + budget  # the same label draw and seed for every method: paired repeats
    idx = balanced_indices(data.y_train, budget, seed)
    rows = []
    for method, ri in plan(cfg):
        t0 = time.perf_counter()
        cell = run_cell(method, ri, runs, data, features, idx, rule, seed)
        rows.append({"method": method, "label": LABELS[method], "run": runs[ri].id,
                     "run_label": run_label(runs[ri]) if method in PRETRAINED_METHODS else "",
                     "budget": len(idx), "budget_asked": budget or "all", "repeat": rep, "seed": seed,
                     "split": "test", **cell, "seconds": round(time.perf_counter() - t0, 3)})
        on_cell(f"{LABELS[method]} at {len(idx)} labels (repeat {rep + 1})")
    return rows


def finish(cfg: PayoffConfig, rule: TrainingRule, data: Data, rows: list[dict], out_dir: Path | None) -> dict:
    """The rows with their statistics and what they were computed from; written into out_dir when given."""
    result = summarise(rows)
    result.update(config=asdict(cfg), rule=asdict(rule), rule_text=rule.describe(), dataset=data.describe())
    if out_dir is not None:
        write_results(Path(out_dir), result)
    return result


def summarise(rows: list[dict]) -> dict:
    table = stats.aggregate(rows)
    paired = stats.paired_differences(rows)
    return {"rows": rows, "table": table, "paired": paired, "reading": stats.reading(paired)}


def write_results(out_dir: Path, result: dict) -> None:
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "results.csv", pd.DataFrame(result["table"]).to_csv(index=False).encode())
    atomic_write(out_dir / "paired.csv", pd.DataFrame(result["paired"]).to_csv(index=False).encode())
    atomic_write_json(out_dir / "results.json", result)
