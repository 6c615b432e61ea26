"""Training compute counted analytically from the layer shapes, so runs of different strategies can be
compared at equal work (the `gflop` axis of the metric vocabulary).

A layer's forward pass costs, per sample, its weight's size times the positions it is applied at:
dense (tied or not) in x out; a k x k conv k*k*c_in*c_out*H_out*W_out. Biases, activations, pooling,
upsampling, padding, noise and the loss are ignored (each costs O(activations), not O(weights x
positions)). A training step costs 3 x its forward pass (the backward pass ~2 x the forward, the usual
rule, e.g. Kaplan et al. 2020, "Scaling laws"); the contractive penalty's extra vector-Jacobian product is
ignored. FLOP = 2 x MAC. This module only counts; `train.py` accumulates the counts per step.

It counts from the shapes alone (`Arch`: a built `model.AE` has the same three fields), without torch, so the
server can match a race's arms at equal compute without importing it (tests/test_metrics.py checks the counts
against a hand count and torch's own FLOP counter on built models).
"""
from __future__ import annotations

import math
from typing import NamedTuple

from .config import CONV_KERNEL, RunConfig

BACKWARD_FACTOR = 3  # forward + backward


class Arch(NamedTuple):
    """What the count needs of an autoencoder: `model.AE` has these fields too, so either can be counted."""
    kind: str  # "dense" | "conv"
    input_shape: tuple[int, ...]
    widths: tuple[int, ...]  # features (dense) or channels (conv) of levels 1..n

    @classmethod
    def of(cls, cfg: RunConfig, input_shape: tuple[int, ...]) -> Arch:
        return cls(cfg.model.kind, tuple(input_shape), tuple(cfg.model.layers))


def stage_macs(model: Arch) -> list[tuple[int, int]]:
    """Forward multiply-adds per sample of [(encoder k, decoder k) for k = 1..n]. A stage's decoder multiplies
    by a weight the size of its encoder's, tied (the same one, transposed) or not."""
    n = len(model.widths)
    if model.kind == "dense":
        sizes = [int(math.prod(model.input_shape)), *model.widths]
        positions = [1] * n
    else:  # conv k runs at level k-1's resolution: the encoder before pooling, the decoder after upsampling
        c, hgt, wid = model.input_shape
        sizes = [c, *model.widths]
        m = 2 ** n  # AE.prepare pads H and W to a multiple of 2^n
        h0, w0 = hgt + (-hgt) % m, wid + (-wid) % m
        positions = [CONV_KERNEL ** 2 * (h0 >> i) * (w0 >> i) for i in range(n)]
    return [(sizes[i] * sizes[i + 1] * p,) * 2 for i, p in enumerate(positions)]


def step_macs_per_sample(model: Arch, stages) -> int:
    """Training multiply-adds per sample of a step that trains `stages` (1-based): 3 x their forward pass."""
    per = stage_macs(model)
    return BACKWARD_FACTOR * sum(sum(per[k - 1]) for k in stages)


def cache_macs_per_sample(model: Arch, k: int) -> int:
    """Forward multiply-adds per sample of caching h_k from the cached h_k-1 (encoder k alone, no grad)."""
    return stage_macs(model)[k - 1][0]


def planned_macs(model: Arch, cfg: RunConfig, n_train: int) -> int:
    """The multiply-adds a completed run of `cfg` on n_train images counts (the training loop's counter)."""
    t, n = cfg.train, len(model.widths)
    full = step_macs_per_sample(model, range(1, n + 1))
    if t.strategy == "end_to_end":
        return full * n_train * t.epochs
    greedy = sum(step_macs_per_sample(model, [k]) * t.epochs for k in range(1, n + 1))
    caching = sum(cache_macs_per_sample(model, k) for k in range(1, n))  # h_n is never needed
    return n_train * (greedy + caching + full * t.finetune_epochs)


def gflop(macs: int) -> float:
    return 2 * macs / 1e9
