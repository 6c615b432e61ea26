"""Sizes of the configured network counted from the config alone (no torch), so the Train page can draw
its architecture diagram before torch is imported. tests/test_model.py checks them against the built
model's own count."""
from __future__ import annotations

import math

from .config import RunConfig

KERNEL = 3 * 3  # the conv stages' 3x3 kernels (aelab/model.py)


def param_count(cfg: RunConfig, input_shape: tuple[int, ...], tied: bool | None = None) -> int:
    """Trainable parameters of build_model(cfg, input_shape); `tied` overrides cfg.model.tied. A tied
    decoder reuses its encoder's weight and keeps only its own bias."""
    m = cfg.model
    tied = m.tied if tied is None else tied
    per_weight = 1 if m.kind == "dense" else KERNEL
    widths = [int(math.prod(input_shape)) if m.kind == "dense" else int(input_shape[0])] + list(m.layers)
    total = 0
    for a, b in zip(widths, widths[1:]):
        total += per_weight * a * b + b  # encoder weight + bias
        total += a + (0 if tied else per_weight * b * a)  # decoder bias (+ its own weight if untied)
    return total
