"""The classifiers of the payoff experiment and the one training rule that brings each to its own optimum.

Two families, each solved to its own optimum, so a gap between methods comes from the features and not from
an optimiser budget:
- features + logistic regression (pretrained frozen, PCA): the features are standardised with the whole
  train split's statistics (unlabelled, like the pretraining), then scikit-learn's multinomial
  `LogisticRegression` (L-BFGS, L2 with C = `TrainingRule.C`) is solved to convergence; its iteration count
  is recorded and checked against `max_iter`.
- networks trained by gradient (scratch, scratch + BN + Kaiming / LSUV, fine-tuned): AdamW with the same
  learning rate and weight decay for all, a step cap that scales with the labelled set, and a stop on a
  training-loss plateau (nothing here looks at validation or test data).
This module trains on what it is given; label draws, grids and statistics live in `grid.py` / `stats.py`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..model import AE, EncConv

CHUNK = 1024  # rows per forward pass when only predicting (bounded memory on full-size datasets)


@dataclass(frozen=True)
class TrainingRule:
    """One rule for every method. `max_steps` is the budget knob: doubling it doubles every step cap."""
    max_steps: int = 6000  # cap = clamp(max_steps/30 epochs of the labelled set, max_steps/10, max_steps)
    patience: int = 5  # plateau checks (one epoch of the labelled set, >= 10 steps each) without improvement
    lr_drops: int = 2  # on a plateau: lr / 10, at most twice; the next plateau stops
    rel_tol: float = 0.01  # an improvement is a fall of the mean training loss by > 1 % of the best (+ abs_tol)
    abs_tol: float = 1e-3  # so a loss already near 0 counts as a plateau, not as endless tiny gains
    lr: float = 1e-3
    weight_decay: float = 1e-4  # AdamW's decoupled decay, the same for every network
    batch_size: int = 64
    C: float = 1.0  # inverse L2 strength of the logistic regression (scikit-learn's default), frozen and PCA alike
    max_iter: int = 10_000  # L-BFGS iterations allowed; a fit that needs them all is reported as not converged

    def step_cap(self, n_labels: int) -> int:
        epoch = math.ceil(n_labels / self.batch_size)
        return int(min(max(epoch * self.max_steps // 30, self.max_steps // 10), self.max_steps))

    def scaled(self, factor: int) -> "TrainingRule":
        """The same rule with `factor` times the step budget and the plateau patience (the sensitivity check)."""
        return replace(self, max_steps=self.max_steps * factor, patience=self.patience * factor)

    def describe(self) -> str:
        return (f"features + logistic regression (frozen, PCA): features standardised with train-split statistics, "
                f"multinomial logistic regression (L2, C = {self.C}) solved by L-BFGS to convergence "
                f"(scikit-learn, at most {self.max_iter} iterations, iteration count recorded). "
                f"Networks (scratch, BN + Kaiming, LSUV, fine-tuned): AdamW, lr {self.lr:g}, weight decay "
                f"{self.weight_decay:g}, batches of {self.batch_size}; at most {self.max_steps // 30} epochs of the "
                f"labelled set, never fewer than {self.max_steps // 10} nor more than {self.max_steps} steps. A "
                f"plateau is {self.patience} checks in a row (one epoch each, at least 10 steps) in which the mean "
                f"training loss has not fallen by 1 %: the learning rate then drops tenfold, at most "
                f"{self.lr_drops} times, and the next plateau stops training. Nothing is tuned on validation or "
                f"test data.")


# ----------------------------------------------------------------------------- networks

class Classifier(nn.Module):
    """The AE's own encoder blocks (optionally BatchNorm between each block's layer and activation) + a linear head."""

    def __init__(self, ae: AE, n_classes: int, bn: bool = False):
        super().__init__()
        self.ae = ae
        norms = [(nn.BatchNorm2d if isinstance(enc, EncConv) else nn.BatchNorm1d)(enc.width) for enc in ae.encoders]
        self.norms = nn.ModuleList(norms if bn else [])
        self.head = nn.Linear(ae.code_dim(), n_classes)

    def features(self, x):  # (B, *input_shape) -> (B, code_dim)
        h = self.ae.prepare(x)
        for i, enc in enumerate(self.ae.encoders):
            a = enc.pre(h)
            h = enc.post(self.norms[i](a) if self.norms else a)
        return h.flatten(1)

    def forward(self, x):
        return self.head(self.features(x))


def kaiming_init(model: Classifier) -> None:
    """He et al. 2015 normal init of every encoder layer (fan-in, ReLU gain), zero biases."""
    for m in model.ae.encoders.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


@torch.no_grad()
def lsuv_init(model: Classifier, x: torch.Tensor, iters: int = 5) -> None:
    """LSUV (Mishkin & Matas 2016): orthogonal weights, then rescale each layer, first to last, until its
    pre-activation has unit variance on the batch `x`."""
    model.train()
    h = model.ae.prepare(x)
    for i, enc in enumerate(model.ae.encoders):
        nn.init.orthogonal_(enc.weight)
        for _ in range(iters):
            enc.weight.div_(enc.pre(h).std().clamp_min(1e-8))
        a = enc.pre(h)
        h = enc.post(model.norms[i](a) if model.norms else a)


def _batches(n: int, size: int, gen: torch.Generator):
    """Endless full batches over shuffled epochs (no size-1 tail batch: BatchNorm needs >= 2 rows)."""
    buf = torch.empty(0, dtype=torch.long)
    while True:
        while len(buf) < size:
            buf = torch.cat([buf, torch.randperm(n, generator=gen)])
        yield buf[:size]
        buf = buf[size:]


def fit_network(model: nn.Module, params, x, y, rule: TrainingRule, seed: int) -> dict:
    """Train under `rule` on (x, y); returns steps taken and why it stopped ("plateau" or "step cap").

    On a plateau the learning rate drops tenfold (`lr_drops` times) before training stops: with a constant
    rate the minibatch noise (large with BatchNorm) keeps the loss bouncing above the optimum it could reach."""
    opt = torch.optim.AdamW(params, lr=rule.lr, weight_decay=rule.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    n = len(x)
    size = min(rule.batch_size, n)
    check = max(math.ceil(n / size), 10)  # one epoch of the labelled set, at least 10 steps
    cap, best, bad, drops, total = rule.step_cap(n), math.inf, 0, 0, 0.0
    model.train()
    for step, idx in zip(range(1, cap + 1), _batches(n, size, gen)):
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item()
        if step % check:
            continue
        mean, total = total / check, 0.0
        if best == math.inf or best - mean > rule.rel_tol * best + rule.abs_tol:
            best, bad = mean, 0
            continue
        bad += 1
        if bad < rule.patience:
            continue
        if drops == rule.lr_drops:
            return {"steps": step, "stopped": "plateau", "train_loss": mean}
        drops, bad = drops + 1, 0
        for group in opt.param_groups:
            group["lr"] /= 10
    return {"steps": cap, "stopped": "step cap", "train_loss": best}


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + CHUNK]).argmax(1) for i in range(0, len(x), CHUNK)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x) == y).float().mean())


# ----------------------------------------------------------------------------- features + logistic regression

@torch.no_grad()
def encoder_codes(ae: AE, x: torch.Tensor) -> np.ndarray:
    """The saved encoder's codes (its own forward, eval mode), flattened: (N, code_dim)."""
    ae.eval()
    return torch.cat([ae.encode(x[i:i + CHUNK]).flatten(1) for i in range(0, len(x), CHUNK)]).numpy()


def pca_codes(x_train: torch.Tensor, others: list[torch.Tensor], k: int) -> list[np.ndarray]:
    """PCA with k components fitted on all train images (unlabelled, like the AE), applied to each set."""
    from sklearn.decomposition import PCA

    flat = lambda t: t.reshape(len(t), -1).numpy()  # noqa: E731
    pca = PCA(n_components=min(k, flat(x_train[:1]).shape[1], len(x_train)), random_state=0).fit(flat(x_train))
    return [pca.transform(flat(x_train))] + [pca.transform(flat(t)) for t in others]


def standardise(z_train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale every set with the train split's per-feature mean and sd (constant features stay 0)."""
    mean, sd = z_train.mean(0), z_train.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    return [(z - mean) / sd for z in (z_train, *others)]


def fit_logistic(z: np.ndarray, y: np.ndarray, rule: TrainingRule, seed: int):
    """Multinomial logistic regression solved to convergence; returns (model, fit record)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=rule.C, max_iter=rule.max_iter, tol=1e-6, random_state=seed).fit(z, y)
    n_iter = int(np.max(clf.n_iter_))
    return clf, {"steps": n_iter, "stopped": "converged" if n_iter < rule.max_iter else "iteration cap"}
