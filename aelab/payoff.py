"""Does unsupervised pretraining pay off when labels are scarce? Accuracy vs number of labels.

For saved AE runs (their encoders), a labelled dataset and label budgets drawn class-balanced from the
train split, train the same classifier head with the same optimiser budget five ways: scratch (default
init), scratch + BatchNorm + Kaiming (optionally LSUV), pretrained frozen, pretrained fine-tuned, and
PCA features + logistic regression. Results (per cell and mean ± sd) go to the run store and are cached.
This module trains classifiers only; the autoencoders come from the run store, never retrained here.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import Data, load_data
from .model import AE, build_model
from .runs import Run, atomic_write_json, read_json

DEFAULT_BUDGETS = (10, 30, 100, 300, 1000, 0)  # 0 = every label of the train split
SCRATCH_METHODS = ("scratch", "scratch_bn")
PRETRAINED_METHODS = ("frozen", "finetuned")
LABELS = {"scratch": "scratch", "scratch_bn": "scratch + BN + Kaiming", "scratch_lsuv": "scratch + BN + LSUV",
          "frozen": "pretrained, frozen", "finetuned": "pretrained, fine-tuned", "pca": "PCA + logistic"}


@dataclass(frozen=True)
class PayoffConfig:
    runs: tuple[str, ...]  # run folders of trained autoencoders (same dataset)
    budgets: tuple[int, ...] = DEFAULT_BUDGETS
    repeats: int = 3  # seeds per cell: a budget of 10 labels is noisy, one draw says little
    steps: int = 300  # optimiser steps per classifier, identical for every method (same budget)
    batch_size: int = 64
    lr: float = 1e-3
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
        if not 10 <= self.steps <= 100_000:
            raise ValueError("steps: must be between 10 and 100000")
        return self

    def key(self) -> str:
        """Cache key: the settings plus each run's weights file identity (retrained run = new key)."""
        ident = [asdict(self)] + [os.stat(Path(r) / "weights.safetensors").st_mtime_ns for r in self.runs]
        return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------- label budgets

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


# ----------------------------------------------------------------------------- classifiers

class Classifier(nn.Module):
    """The AE's encoder stack (optionally with BatchNorm) and a linear head on the code."""

    def __init__(self, ae: AE, n_classes: int, bn: bool = False):
        super().__init__()
        self.ae = ae
        self.norms = nn.ModuleList()
        if bn:  # BatchNorm on each pre-activation: the "modern" recipe of the source question
            for enc in ae.encoders:
                core = getattr(enc, "linear", None) or getattr(enc, "conv")
                self.norms.append(nn.BatchNorm1d(core.out_features) if isinstance(core, nn.Linear)
                                  else nn.BatchNorm2d(core.out_channels))
        self.head = nn.Linear(ae.code_dim(), n_classes)

    def features(self, x):
        h = self.ae.prepare(x)
        for i, enc in enumerate(self.ae.encoders):
            core = getattr(enc, "linear", None) or getattr(enc, "conv")
            a = core(h)
            if self.norms:
                a = self.norms[i](a)
            h = enc.act(a)
            if not isinstance(core, nn.Linear):
                h = F.max_pool2d(h, 2)
        return h.reshape(len(h), -1)

    def forward(self, x):
        return self.head(self.features(x))


def kaiming_init(model: Classifier) -> None:
    for m in model.ae.encoders.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


@torch.no_grad()
def lsuv_init(model: Classifier, x: torch.Tensor, iters: int = 5) -> None:
    """Orthogonal init, then rescale each layer so its output has unit variance on a batch."""
    for enc in model.ae.encoders:
        core = getattr(enc, "linear", None) or getattr(enc, "conv")
        nn.init.orthogonal_(core.weight)
    model.train()
    for i, enc in enumerate(model.ae.encoders):
        core = getattr(enc, "linear", None) or getattr(enc, "conv")
        for _ in range(iters):
            out = {}
            hook = core.register_forward_hook(lambda m, a, o: out.__setitem__("v", o.var()))  # returns None
            model.features(x)
            hook.remove()
            core.weight /= out["v"].sqrt().clamp_min(1e-8)


def _fit_classifier(model: nn.Module, params, x, y, cfg: PayoffConfig, seed: int) -> None:
    opt = torch.optim.Adam(params, lr=cfg.lr)
    g = torch.Generator().manual_seed(seed)
    bs = min(cfg.batch_size, len(x))
    model.train()
    for _ in range(cfg.steps):
        idx = torch.randint(len(x), (bs,), generator=g)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


@torch.no_grad()
def _accuracy(model: nn.Module, x, y) -> float:
    model.eval()
    pred = torch.cat([model(x[i:i + 1024]).argmax(1) for i in range(0, len(x), 1024)])
    return float((pred == y).float().mean())


def build_classifier(method: str, run: Run, data: Data, seed: int) -> tuple[Classifier, list[nn.Parameter]]:
    """The classifier a method trains and the parameters its optimiser may change."""
    torch.manual_seed(seed)
    if method in PRETRAINED_METHODS:
        ae = run.load_model()
    else:
        ae = build_model(run.config, data.input_shape)  # same shape, PyTorch's default random init
    model = Classifier(ae, int(data.y_train.max()) + 1, bn=method in ("scratch_bn", "scratch_lsuv"))
    if method == "scratch_bn":
        kaiming_init(model)
    elif method == "scratch_lsuv":
        lsuv_init(model, data.x_train[:256])
    if method == "frozen":
        for p in model.ae.parameters():
            p.requires_grad_(False)
    return model, [p for p in model.parameters() if p.requires_grad]


def run_cell(method: str, run: Run, data: Data, idx: torch.Tensor, cfg: PayoffConfig, seed: int) -> float:
    """Train one classifier on the labelled subset `idx` of the train split; validation accuracy."""
    x, y = data.x_train[idx], data.y_train[idx]
    if method == "pca":
        return _pca_logreg(data, x, y, run, seed)
    model, params = build_classifier(method, run, data, seed)
    if method == "frozen":  # the encoder never changes: compute its features once, train the head on them
        with torch.no_grad():
            model.eval()
            feats, val_feats = model.features(x), _features(model, data.x_val)
        _fit_classifier(model.head, params, feats, y, cfg, seed)
        return _accuracy(model.head, val_feats, data.y_val)
    _fit_classifier(model, params, x, y, cfg, seed)
    return _accuracy(model, data.x_val, data.y_val)


def _features(model: Classifier, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model.features(x[i:i + 1024]) for i in range(0, len(x), 1024)])


_PCA_CACHE: dict = {}


def _pca_logreg(data: Data, x, y, run: Run, seed: int) -> float:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    k = build_model(run.config, data.input_shape).code_dim()
    flat = lambda t: t.reshape(len(t), -1).numpy()  # noqa: E731
    key = (data.name, len(data.x_train), float(data.x_train.sum()), k)
    if key not in _PCA_CACHE:  # fit once on all (unlabelled) train images, like the AE's pretraining
        _PCA_CACHE[key] = PCA(n_components=min(k, data.input_dim), random_state=0).fit(flat(data.x_train))
    pca = _PCA_CACHE[key]
    clf = LogisticRegression(max_iter=500, random_state=seed).fit(pca.transform(flat(x)), y.numpy())
    return float(clf.score(pca.transform(flat(data.x_val)), data.y_val.numpy()))


# ----------------------------------------------------------------------------- the grid

def run_label(run: Run) -> str:
    c = run.config
    return f"{c.name or 'custom'} ({c.train.strategy}) {run.id[-4:]}"


def plan(cfg: PayoffConfig) -> list[tuple[str, int | None]]:
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
    if data.y_train is None or data.y_val is None:
        raise ValueError(f"{data.name}: the dataset has no labels; the payoff experiment needs them")
    return data


def run_payoff(cfg: PayoffConfig, out_dir: Path, progress=lambda done, total, msg: None) -> dict:
    """Run the whole grid, write results.json/results.csv into out_dir, return the results dict."""
    runs = [Run(r) for r in cfg.runs]
    data = load_payoff_data(runs)
    methods = plan(cfg)
    budgets = [min(b, len(data.x_train)) if b else 0 for b in cfg.budgets]
    total, done, rows = len(methods) * len(budgets) * cfg.repeats, 0, []
    for budget in budgets:
        for rep in range(cfg.repeats):
            seed = 1000 * rep + budget
            idx = balanced_indices(data.y_train, budget, seed)
            for method, ri in methods:
                t0 = time.perf_counter()
                acc = run_cell(method, runs[ri], data, idx, cfg, seed)
                rows.append({"method": method, "label": LABELS[method], "run": runs[ri].id,
                             "run_label": run_label(runs[ri]) if method in PRETRAINED_METHODS else "",
                             "budget": len(idx), "budget_asked": budget or "all", "repeat": rep, "seed": seed,
                             "accuracy": acc, "seconds": round(time.perf_counter() - t0, 3)})
                done += 1
                progress(done, total, f"{LABELS[method]} at {len(idx)} labels (repeat {rep + 1})")
    result = {"config": asdict(cfg), "dataset": data.describe(), "rows": rows, "table": aggregate(rows)}
    result["reading"] = reading(result["table"])
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(out_dir / "results.csv", result["table"])
    atomic_write_json(out_dir / "results.json", result)
    return result


def series_name(row: dict) -> str:
    return row["label"] + (f" [{row['run_label']}]" if row["run_label"] else "")


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean ± sd of accuracy and mean cost per (series, budget)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((series_name(r), r["method"], r["budget"]), []).append(r)
    out = []
    for (series, method, budget), rs in groups.items():
        acc = np.array([r["accuracy"] for r in rs])
        out.append({"series": series, "method": method, "budget": budget, "n": len(rs),
                    "accuracy_mean": float(acc.mean()), "accuracy_sd": float(acc.std(ddof=1)) if len(rs) > 1 else 0.0,
                    "seconds_mean": float(np.mean([r["seconds"] for r in rs]))})
    return sorted(out, key=lambda r: (r["series"], r["budget"]))


def reading(table: list[dict]) -> str:
    """A plain-language reading computed from the numbers: each pretrained series vs the best scratch."""
    budgets = sorted({r["budget"] for r in table})
    best_scratch = {b: max((r for r in table if r["budget"] == b and r["method"].startswith("scratch")),
                           key=lambda r: r["accuracy_mean"], default=None) for b in budgets}
    lines = []
    for series in sorted({r["series"] for r in table if r["method"] in PRETRAINED_METHODS}):
        gaps = []
        for b in budgets:
            row = next(r for r in table if r["series"] == series and r["budget"] == b)
            if best_scratch[b]:
                gaps.append((b, 100 * (row["accuracy_mean"] - best_scratch[b]["accuracy_mean"]),
                             best_scratch[b]["series"]))
        if not gaps:
            continue
        b0, g0, base = gaps[0]
        verb = "beats" if g0 > 0 else "trails"
        text = f"{series} {verb} {base} by {abs(g0):.1f} points at {b0} labels"
        closed = next((b for b, g, _ in gaps[1:] if g <= 1.0), None) if g0 > 1.0 else None
        if g0 > 1.0:
            text += f"; the gap closes (≤ 1 point) by {closed} labels" if closed else \
                f"; still {gaps[-1][1]:+.1f} points at {gaps[-1][0]} labels"
        elif len(gaps) > 1:
            text += f"; at {gaps[-1][0]} labels it is {gaps[-1][1]:+.1f} points vs {gaps[-1][2]}"
        lines.append(text + ".")
    return " ".join(lines) if lines else "No pretrained series to compare."


def _write_csv(path: Path, table: list[dict]) -> None:
    import pandas as pd

    tmp = path.with_name(f".{path.name}.tmp")
    pd.DataFrame(table).to_csv(tmp, index=False)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- store, worker, CLI

def payoff_dir(cfg: PayoffConfig, runs_dir: str | os.PathLike) -> Path:
    return Path(runs_dir) / "payoff" / cfg.key()


def cached(cfg: PayoffConfig, runs_dir) -> dict | None:
    return read_json(payoff_dir(cfg, runs_dir) / "results.json")


def start_payoff(cfg: PayoffConfig, runs_dir: str | os.PathLike = "runs") -> tuple[Path, subprocess.Popen | None]:
    """Start the grid in a worker process (or return the cached result's folder with no process)."""
    out = payoff_dir(cfg, runs_dir)
    if (out / "results.json").exists():
        return out, None
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", asdict(cfg))
    atomic_write_json(out / "progress.json", {"done": 0, "total": None, "message": "starting", "status": "running"})
    log = open(out / "worker.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "aelab.payoff", str(out)], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return out, proc


def _job_main(out_dir: str) -> int:
    out = Path(out_dir)
    cfg = PayoffConfig(**{k: tuple(v) if isinstance(v, list) else v
                          for k, v in read_json(out / "config.json").items()})

    def progress(done, total, msg):
        atomic_write_json(out / "progress.json", {"done": done, "total": total, "message": msg,
                                                  "status": "running", "pid": os.getpid()})
    try:
        run_payoff(cfg, out, progress)
    except Exception as e:
        atomic_write_json(out / "progress.json", {"status": "failed", "message": f"{type(e).__name__}: {e}"})
        return 1
    atomic_write_json(out / "progress.json", {"status": "completed", "message": "done"})
    return 0


def format_table(table: list[dict]) -> str:
    budgets = sorted({r["budget"] for r in table})
    series = sorted({r["series"] for r in table}, key=lambda s: [r["method"] for r in table if r["series"] == s][0])
    width = max(len(s) for s in series)
    lines = [f"{'method':<{width}}  " + "  ".join(f"{b:>13}" for b in budgets)]
    for s in series:
        cells = {r["budget"]: r for r in table if r["series"] == s}
        lines.append(f"{s:<{width}}  " + "  ".join(
            f"{100 * cells[b]['accuracy_mean']:6.1f} ± {100 * cells[b]['accuracy_sd']:4.1f}" for b in budgets))
    return "\n".join(lines)


def run_payoff_cli(cfg: PayoffConfig, runs_dir: str | os.PathLike = "runs") -> int:
    from tqdm import tqdm

    out = payoff_dir(cfg, runs_dir)
    result = cached(cfg, runs_dir)
    if result is None:
        bar = tqdm(total=None, unit="cell", file=sys.stderr, dynamic_ncols=True)

        def progress(done, total, msg):
            bar.total = total
            bar.n = done
            bar.set_postfix_str(msg, refresh=True)
        result = run_payoff(cfg, out, progress)
        bar.close()
    else:
        print("(cached result)", file=sys.stderr)
    print(f"accuracy on {result['dataset']} (mean ± sd over {cfg.repeats} repeats, columns = labels):")
    print(format_table(result["table"]))
    print(result["reading"])
    print(out / "results.csv")
    return 0


if __name__ == "__main__":
    sys.exit(_job_main(sys.argv[1]))
