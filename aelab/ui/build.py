"""The Train page's build panel: every config knob as a widget keyed by its dotted config name.

One name end to end: the widget key, the URL query parameter and the config field are the same
string (e.g. `model.layers`). `build_panel()` returns the config (or the reason it is invalid).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import streamlit as st

from ..config import (ACTIVATIONS, DATASETS, NOISE_KINDS, OPTIMIZERS, SPARSITY_KINDS, STRATEGY_NAMES,
                      RunConfig, flat_items, validate, validate_for_data)
from ..presets import PRESETS
from . import state

# key: (widget, options or (min, max, step), one-line help)
KNOBS = {
    "data.name": ("select", DATASETS, "mnist5k and digits are bundled (offline); mnist/fashion_mnist/kmnist/"
                  "cifar10 come through torchvision; file = your own CSV or NPZ"),
    "data.max_train": ("int", (0, 100_000, 500), "cap on training rows (0 = all); keeps big datasets interactive"),
    "data.val_fraction": ("float", (0.05, 0.5, 0.05), "share held out for validation (datasets without a split)"),
    "data.data_dir": ("text", None, "folder where torchvision datasets are looked for / downloaded to"),
    "data.path": ("text", None, "the CSV/NPZ file on the server (filled in by an upload)"),
    "data.label_column": ("text", None, "CSV only: the label column (empty = label/y/target/class if present)"),
    "model.kind": ("select", ("dense", "conv"), "dense: fully connected (any data); conv: conv/pool blocks (images)"),
    "model.layers": ("text", None, "encoder widths (dense) or channels (conv), comma-separated; the last is the code"),
    "model.activation": ("select", ACTIVATIONS, "nonlinearity of the hidden layers"),
    "model.code_activation": ("select", ("same",) + ACTIVATIONS, "activation of the code layer (linear beats PCA)"),
    "model.output_activation": ("select", ("auto", "sigmoid", "linear"), "auto: sigmoid for bce, linear for mse"),
    "model.tied": ("bool", None, "decoder reuses each encoder weight transposed: about half the parameters"),
    "noise.kind": ("select", NOISE_KINDS, "corrupt the input and reconstruct the clean one (denoising AE)"),
    "noise.level": ("float", (0.0, 1.0, 0.05), "gaussian: sigma; masking / salt_pepper: fraction of pixels hit"),
    "sparsity.kind": ("select", SPARSITY_KINDS, "penalise code activity: l1 on the code, or KL to a target rate"),
    "sparsity.target": ("float", (0.01, 0.5, 0.01), "KL only: rho, the mean activation each code unit should have"),
    "sparsity.weight": ("float", (0.0, 10.0, 0.01), "strength of the sparsity penalty (lambda / beta)"),
    "contractive.weight": ("float", (0.0, 1.0, 0.0005), "penalty on the encoder Jacobian's Frobenius norm"),
    "train.strategy": ("select", STRATEGY_NAMES, "end_to_end: all layers at once; greedy: one shallow AE per "
                       "layer, stacked"),
    "train.epochs": ("int", (1, 10_000, 1), "end_to_end: total epochs; greedy: epochs per stage"),
    "train.finetune_epochs": ("int", (0, 10_000, 1), "greedy only: end-to-end epochs after stacking"),
    "train.pause_after_stage": ("bool", None, "greedy: stage-by-stage mode, pause after each stage to look"),
    "train.loss": ("select", ("bce", "mse"), "bce for data in [0,1] (pixels), mse for anything else"),
    "train.optimizer": ("select", OPTIMIZERS, "adam is the safe default"),
    "train.schedule": ("select", ("constant", "cosine"), "learning rate: constant, or cosine decay to 0 over the run"),
    "train.lr": ("float", (1e-6, 10.0, 1e-4), "learning rate (too high: the loss becomes NaN)"),
    "train.batch_size": ("int", (1, 65_536, 16), "small batches = more updates per epoch on small data"),
    "train.weight_decay": ("float", (0.0, 1.0, 1e-5), "L2 penalty on the weights"),
    "train.seed": ("int", (0, 2**31 - 1, 1), "same seed, same config: the same run"),
    "train.device": ("select", ("auto", "cpu", "cuda"), "auto uses a GPU when there is one"),
}
GROUPS = {
    "Data": ["data.name", "data.max_train", "data.val_fraction", "data.data_dir", "data.path", "data.label_column"],
    "Model": ["model.kind", "model.layers", "model.activation", "model.code_activation",
              "model.output_activation", "model.tied"],
    "Regularisers": ["noise.kind", "noise.level", "sparsity.kind", "sparsity.target", "sparsity.weight",
                     "contractive.weight"],
    "Training": ["train.strategy", "train.epochs", "train.finetune_epochs", "train.pause_after_stage",
                 "train.loss", "train.optimizer", "train.schedule", "train.lr", "train.batch_size", "train.weight_decay",
                 "train.seed", "train.device"],
}
_SECTION_GROUP = {"data": "Data", "model": "Model", "noise": "Regularisers", "sparsity": "Regularisers",
                  "contractive": "Regularisers", "train": "Training"}
for _k, _v in flat_items(RunConfig()).items():  # a field added to the config later still gets a widget
    if _k not in KNOBS:
        _kind = {bool: "bool", int: "int", float: "float"}.get(type(_v), "text")
        KNOBS[_k] = (_kind, (0, 10**9, 1) if _kind == "int" else (0.0, 1e9, 0.01), f"config field {_k}")
        GROUPS[_SECTION_GROUP[_k.split(".")[0]]].append(_k)
STORE = "_train_cfg"  # last built config (dotted -> widget value): survives page switches
URL_SEEN = "_train_url"
IMAGE_SHAPES = {"mnist5k": (1, 28, 28), "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28),
                "kmnist": (1, 28, 28), "digits": (1, 8, 8), "shapes": (1, 16, 16), "cifar10": (3, 32, 32)}


def widget_values(cfg: RunConfig) -> dict:
    """Config -> widget values (layers as the comma list the text box shows)."""
    return {k: (",".join(map(str, v)) if k == "model.layers" else v) for k, v in flat_items(cfg).items()}


def config_from_url(qp: dict) -> tuple[RunConfig, str | None]:
    """A config from query parameters: ?preset=NAME and/or dotted keys; unknown keys are ignored."""
    try:
        base = PRESETS[qp["preset"]].config() if qp.get("preset") in PRESETS else RunConfig()
        base = RunConfig(name=qp.get("name", base.name), **{f: getattr(base, f) for f in
                                                              ("data", "model", "noise", "sparsity", "contractive",
                                                               "train")})
        return base.with_overrides({k: v for k, v in qp.items() if k in KNOBS}), None
    except ValueError as e:
        return RunConfig(), f"the link's settings could not be read ({e}); using the defaults"


def init_state() -> None:
    """Widget state from the URL (a link or a preset click), else from this session's last config."""
    ss, qp = st.session_state, st.query_params.to_dict()
    cfg_qp = {k: v for k, v in qp.items() if k != "run"}
    if cfg_qp and cfg_qp != ss.get(URL_SEEN):
        cfg, err = config_from_url(cfg_qp)
        if err:
            st.warning(err)
        ss.update(widget_values(cfg))
        ss["_name"] = cfg.name
        ss[STORE] = widget_values(cfg)
    for k, v in ss.get(STORE, widget_values(RunConfig())).items():
        if k not in ss:
            ss[k] = v
    ss.setdefault("_name", "")


def apply_preset(name: str) -> None:
    cfg = PRESETS[name].config()
    st.session_state.update(widget_values(cfg))
    st.session_state["_name"] = name


def _layers_delta(delta: int) -> None:
    ss = st.session_state
    layers = [s.strip() for s in str(ss.get("model.layers", "")).split(",") if s.strip()]
    if delta > 0:
        last = int(layers[-1]) if layers and layers[-1].isdigit() else 64
        layers.append(str(max(2, last // 2)))
    elif len(layers) > 1:
        layers.pop()
    ss["model.layers"] = ",".join(layers)


def _widget(key: str, disabled: bool = False) -> None:
    kind, opts, help_ = KNOBS[key]
    label = key.split(".", 1)[1].replace("_", " ")
    if kind == "select":
        st.selectbox(label, opts, key=key, help=help_, disabled=disabled)
    elif kind == "bool":
        st.checkbox(label, key=key, help=help_, disabled=disabled)
    elif kind == "text":
        st.text_input(label, key=key, help=help_, disabled=disabled)
    if kind in ("int", "float") and not opts[0] <= st.session_state[key] <= opts[1]:
        st.session_state[key] = min(max(st.session_state[key], opts[0]), opts[1])  # widgets reject out-of-range
    if kind == "int":
        st.number_input(label, min_value=opts[0], max_value=opts[1], step=opts[2], key=key, help=help_,
                        disabled=disabled)
    elif kind == "float":
        st.number_input(label, min_value=opts[0], max_value=opts[1], step=opts[2], key=key, help=help_,
                        disabled=disabled, format="%g")


def _upload() -> None:
    """Save an uploaded CSV/NPZ under runs/uploads/ and point data.path at it."""
    f = st.file_uploader("your data (CSV rows, or NPZ with x[, y])", type=["csv", "npz"], key="upload",
                         help="CSV: numeric columns plus an optional label column; NPZ: x (N,D) or (N,C,H,W)")
    if f is not None:
        dest = state.runs_dir() / "uploads" / Path(f.name).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        data = f.getvalue()
        if not dest.exists() or dest.read_bytes() != data:
            dest.write_bytes(data)
        st.session_state["data.path"] = str(dest)


def _disabled(key: str) -> bool:
    ss = st.session_state
    return {"data.path": ss["data.name"] != "file", "data.label_column": ss["data.name"] != "file",
            "data.data_dir": ss["data.name"] not in ("mnist", "fashion_mnist", "kmnist", "cifar10"),
            "noise.level": ss["noise.kind"] == "none", "sparsity.target": ss["sparsity.kind"] != "kl",
            "sparsity.weight": ss["sparsity.kind"] == "none",
            "train.finetune_epochs": ss["train.strategy"] != "greedy",
            "train.pause_after_stage": ss["train.strategy"] != "greedy"}.get(key, False)


def build_panel() -> tuple[RunConfig | None, str | None]:
    """Draw every knob; return (config, None) when it is valid, else (None or config, the reason)."""
    init_state()
    ss = st.session_state
    names = list(PRESETS)
    st.selectbox("start from a preset", ["(keep current settings)"] + names, key="_preset",
                 format_func=lambda n: n if n not in PRESETS else f"{PRESETS[n].title}: {PRESETS[n].idea}",
                 on_change=lambda: apply_preset(ss["_preset"]) if ss["_preset"] in PRESETS else None)
    tabs = st.tabs(list(GROUPS))
    for tab, (group, keys) in zip(tabs, GROUPS.items()):
        with tab:
            if group == "Data" and ss["data.name"] == "file":
                _upload()
            cols = st.columns(2)
            for i, key in enumerate(keys):
                with cols[i % 2]:
                    _widget(key, _disabled(key))
                    if key == "model.layers":
                        a, b = st.columns(2)
                        a.button("add layer", key="_add_layer", on_click=_layers_delta, args=(1,))
                        b.button("remove layer", key="_remove_layer", on_click=_layers_delta, args=(-1,))
    values = {k: ss[k] for k in KNOBS}
    ss[STORE] = values
    return check(values, ss.get("_name", ""))


def check(values: dict, name: str = "") -> tuple[RunConfig | None, str | None]:
    try:
        cfg = validate(RunConfig(name=name).with_overrides(values))
        facts = data_facts(cfg)
        validate_for_data(cfg, facts["kind"], facts["lo"], facts["hi"])
    except (ValueError, FileNotFoundError) as e:
        return None, str(e)
    if name in PRESETS and flat_items(cfg) != flat_items(PRESETS[name].config()):
        cfg = dataclasses.replace(cfg, name=f"{name}-custom")
    return cfg, None


def data_facts(cfg: RunConfig) -> dict:
    """kind, value range and input shape of the configured data, without loading big datasets."""
    if cfg.data.name in IMAGE_SHAPES:
        return {"kind": "image", "lo": 0.0, "hi": 1.0, "shape": IMAGE_SHAPES[cfg.data.name]}
    d = _file_facts(cfg.data.path, cfg.data.label_column, cfg.data.val_fraction,
                    Path(cfg.data.path).stat().st_mtime if Path(cfg.data.path).exists() else 0.0)
    return d


@st.cache_data(show_spinner=False, max_entries=8)
def _file_facts(path: str, label_column: str, val_fraction: float, mtime: float) -> dict:
    from ..data import load_file

    d = load_file(path, label_column=label_column, val_fraction=val_fraction)
    lo, hi = d.value_range
    return {"kind": d.kind, "lo": lo, "hi": hi, "shape": d.input_shape, "describe": d.describe()}


def sync_url(cfg: RunConfig | None, run_id: str | None) -> None:
    """Put the non-default settings (and the run id) in the URL, so a link reproduces the setup."""
    default = widget_values(RunConfig())
    qp = {k: str(v) for k, v in st.session_state.get(STORE, {}).items() if default.get(k) != v}
    if st.session_state.get("_name"):
        qp["name"] = st.session_state["_name"]
    st.session_state[URL_SEEN] = dict(qp)
    if run_id:
        qp["run"] = run_id
    if qp != st.query_params.to_dict():
        st.query_params.from_dict(qp)
