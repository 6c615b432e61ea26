"""Training compute counted analytically from the layer shapes, so runs of different strategies can be
compared at equal work (the `gflop` axis of the metric vocabulary).

A layer's forward pass costs, per sample, its weight's size times the positions it is applied at:
dense (tied or not) in x out; a k x k conv k*k*c_in*c_out*H_out*W_out. Biases, activations, pooling,
upsampling, padding, noise and the loss are ignored (each costs O(activations), not O(weights x
positions)). A training step costs 3 x its forward pass (the backward pass ~2 x the forward, the usual
rule, e.g. Kaplan et al. 2020, "Scaling laws"); the contractive penalty's extra vector-Jacobian product is
ignored. FLOP = 2 x MAC. This module only counts; `train.py` accumulates the counts per step.
"""
from __future__ import annotations

from .config import RunConfig
from .model import AE, DecConv

BACKWARD_FACTOR = 3  # forward + backward


def _kernel(layer):
    """The weight a layer multiplies by (an untied conv decoder keeps it in its own Conv2d)."""
    return layer.conv.weight if isinstance(layer, DecConv) and layer.conv is not None else layer.weight


def stage_macs(model: AE) -> list[tuple[int, int]]:
    """Forward multiply-adds per sample of [(encoder k, decoder k) for k = 1..n]."""
    n = model.n_stages
    if model.kind == "dense":
        positions = [1] * n
    else:  # conv k runs at level k-1's resolution: the encoder before pooling, the decoder after upsampling
        _, hgt, wid = model.input_shape
        m = 2 ** n  # AE.prepare pads H and W to a multiple of 2^n
        h0, w0 = hgt + (-hgt) % m, wid + (-wid) % m
        positions = [(h0 >> i) * (w0 >> i) for i in range(n)]
    return [(_kernel(e).numel() * p, _kernel(d).numel() * p)
            for e, d, p in zip(model.encoders, model.decoders, positions)]


def step_macs_per_sample(model: AE, stages) -> int:
    """Training multiply-adds per sample of a step that trains `stages` (1-based): 3 x their forward pass."""
    per = stage_macs(model)
    return BACKWARD_FACTOR * sum(sum(per[k - 1]) for k in stages)


def cache_macs_per_sample(model: AE, k: int) -> int:
    """Forward multiply-adds per sample of caching h_k from the cached h_k-1 (encoder k alone, no grad)."""
    return stage_macs(model)[k - 1][0]


def planned_macs(model: AE, cfg: RunConfig, n_train: int) -> int:
    """The multiply-adds a completed run of `cfg` on n_train images counts (the training loop's counter)."""
    t, n = cfg.train, model.n_stages
    full = step_macs_per_sample(model, range(1, n + 1))
    if t.strategy == "end_to_end":
        return full * n_train * t.epochs
    greedy = sum(step_macs_per_sample(model, [k]) * t.epochs for k in range(1, n + 1))
    caching = sum(cache_macs_per_sample(model, k) for k in range(1, n))  # h_n is never needed
    return n_train * (greedy + caching + full * t.finetune_epochs)


def gflop(macs: int) -> float:
    return 2 * macs / 1e9
