"""The Train page's build panel: every config knob as a widget keyed by its dotted config name.

One name end to end: the widget key, the URL query parameter and the config field are the same
string (e.g. `model.layers`). `build_panel()` returns the config (or the reason it is invalid).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import streamlit as st

from ..config import RunConfig, flat_items, from_flat, inactive, rule, show, validate, validate_for_data
from ..paths import MAX_UPLOAD_BYTES, check_data_paths, check_inside, data_roots, keep_upload
from ..presets import PRESETS
from . import state

# key: (step of a number box, one-line help); the widget's kind, options and bounds come from the
# field's type and its rule in config.CONSTRAINTS, and the help ends with the accepted range.
KNOBS = {
    "data.name": (None, "mnist5k and digits are bundled (offline); mnist/fashion_mnist/kmnist/cifar10 come "
                  "through torchvision; file = your own CSV or NPZ"),
    "data.max_train": (500, "cap on training rows (0 = all); keeps big datasets interactive"),
    "data.val_fraction": (0.05, "share held out for validation (datasets without a split)"),
    "data.data_dir": (None, "folder where torchvision datasets are looked for / downloaded to"),
    "data.path": (None, "the CSV/NPZ file on the server (filled in by an upload)"),
    "data.label_column": (None, "CSV only: the label column (empty = label/y/target/class if present)"),
    "model.kind": (None, "dense: fully connected (any data); conv: conv/pool blocks (images)"),
    "model.layers": (None, "encoder widths (dense) or channels (conv), comma-separated; the last is the code"),
    "model.activation": (None, "nonlinearity of the hidden layers"),
    "model.code_activation": (None, "activation of the code layer (linear beats PCA)"),
    "model.output_activation": (None, "auto: sigmoid for bce, linear for mse"),
    "model.tied": (None, "decoder reuses each encoder weight transposed: about half the parameters"),
    "noise.kind": (None, "corrupt the input and reconstruct the clean one (denoising AE)"),
    "noise.level": (0.05, "gaussian: sigma; masking / salt_pepper: fraction of pixels hit"),
    "sparsity.kind": (None, "penalise code activity: l1 on the code, or KL to a target rate"),
    "sparsity.target": (0.01, "KL only: rho, the mean activation each code unit should have"),
    "sparsity.weight": (0.01, "strength of the sparsity penalty (lambda / beta)"),
    "contractive.weight": (0.0005, "penalty on the encoder Jacobian's Frobenius norm"),
    "train.strategy": (None, "end_to_end: all layers at once; greedy: one shallow AE per layer, stacked"),
    "train.epochs": (1, "end_to_end: total epochs; greedy: epochs per stage"),
    "train.finetune_epochs": (1, "greedy only: end-to-end epochs after stacking"),
    "train.pause_after_stage": (None, "greedy: stage-by-stage mode, pause after each stage to look"),
    "train.loss": (None, "bce for data in [0,1] (pixels), mse for anything else"),
    "train.optimizer": (None, "adam is the safe default"),
    "train.schedule": (None, "learning rate: constant, or cosine decay to 0 over the run"),
    "train.lr": (1e-4, "learning rate (too high: the loss becomes NaN)"),
    "train.batch_size": (16, "small batches = more updates per epoch on small data"),
    "train.weight_decay": (1e-5, "L2 penalty on the weights"),
    "train.seed": (1, "same seed, same config: the same run"),
    "train.device": (None, "auto uses a GPU when there is one"),
}
GROUPS = {  # the tab shown first is the one people change most; Data last (mostly greyed for bundled data)
    "Model": ["model.kind", "model.layers", "model.activation", "model.code_activation",
              "model.output_activation", "model.tied"],
    "Regularisers": ["noise.kind", "noise.level", "sparsity.kind", "sparsity.target", "sparsity.weight",
                     "contractive.weight"],
    "Training": ["train.strategy", "train.epochs", "train.finetune_epochs", "train.pause_after_stage",
                 "train.loss", "train.optimizer", "train.schedule", "train.lr", "train.batch_size",
                 "train.weight_decay", "train.seed", "train.device"],
    "Data": ["data.name", "data.max_train", "data.val_fraction", "data.data_dir", "data.path", "data.label_column"],
}
_SECTION_GROUP = {"data": "Data", "model": "Model", "noise": "Regularisers", "sparsity": "Regularisers",
                  "contractive": "Regularisers", "train": "Training"}
for _k in flat_items(RunConfig()):  # a field added to the config later still gets a widget
    if _k not in KNOBS:
        KNOBS[_k] = (None, f"config field {_k}")
        GROUPS[_SECTION_GROUP[_k.split(".")[0]]].append(_k)
TAB = "_train_tab"  # the settings tab that is open
STORE = "_train_cfg"  # last built config (dotted -> widget value): survives page switches
URL_SEEN = "_train_url"
PAGE_KEYS = ("run", "race", "present")  # URL keys of the page itself, not settings
IMAGE_SHAPES = {"mnist5k": (1, 28, 28), "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28),
                "kmnist": (1, 28, 28), "digits": (1, 8, 8), "shapes": (1, 16, 16), "cifar10": (3, 32, 32)}


def widget_values(cfg: RunConfig) -> dict:
    """Config -> widget values (layers as the comma list the text box shows)."""
    return {k: (",".join(map(str, v)) if k == "model.layers" else v) for k, v in flat_items(cfg).items()}


def label(key: str) -> str:
    """The widget's visible label: the field name, with its section where a tab holds two sections."""
    section, name = key.split(".", 1)
    name = name.replace("_", " ")
    return f"{section} {name}" if tab_of(key) == "Regularisers" else name


def tab_of(key: str) -> str:
    """The settings tab that holds the widget of `key`."""
    return _SECTION_GROUP[key.split(".")[0]]


def named(key: str, message: str) -> str:
    """A message about a field, naming it as the page shows it (label and tab) and by its key."""
    if key not in KNOBS:
        return message
    return f"**{label(key)}** ({tab_of(key)} tab) · {message}"


def config_from_url(qp: dict) -> tuple[RunConfig, list[str]]:
    """A config from query parameters (?preset=NAME and/or dotted keys) and one warning per value left out.

    A value that is unknown, unreadable, out of its range or a path outside the lab's data folders is
    named in a warning and keeps its default (the preset's value); the rest of the link loads.
    """
    warnings, preset = [], qp.get("preset")
    if preset is not None and preset not in PRESETS:
        warnings.append(f"preset: {preset!r} is not one of {', '.join(PRESETS)}; starting from the defaults")
    base = PRESETS[preset].config() if preset in PRESETS else RunConfig()
    base = dataclasses.replace(base, name=qp.get("name", base.name))
    cfg, problems = from_flat({k: v for k, v in qp.items() if k not in ("preset", "name")}, base)
    for key in ("data.path", "data.data_dir"):
        if key in qp and key not in dict(problems):
            try:
                check_inside(flat_items(cfg)[key], data_roots(state.runs_dir()), key)
            except ValueError as e:
                problems.append((key, str(e)))
                cfg = cfg.with_overrides({key: flat_items(base)[key]})
    for key, message in problems:
        kept = flat_items(base).get(key)
        kept = "" if key not in KNOBS else "; left empty" if kept == "" else f"; kept at {show(kept)}"
        warnings.append(named(key, f"{message}{kept}"))
    return cfg, warnings


URL_WARNINGS = "_train_url_warnings"


def init_state() -> None:
    """Widget state from the URL (a link or a preset click), else from this session's last config."""
    ss, qp = st.session_state, st.query_params.to_dict()
    cfg_qp = {k: v for k, v in qp.items() if k not in PAGE_KEYS}
    if cfg_qp and cfg_qp != ss.get(URL_SEEN):
        cfg, ss[URL_WARNINGS] = config_from_url(cfg_qp)
        ss.update(widget_values(cfg))
        ss["_name"] = cfg.name
        ss[STORE] = widget_values(cfg)
    for k, v in ss.get(STORE, widget_values(RunConfig())).items():
        if k not in ss:
            ss[k] = v
    ss.setdefault("_name", "")
    if ss.get(URL_WARNINGS):  # shown until another link or preset is loaded
        st.warning("**This link's settings were loaded, except:**\n" +
                   "\n".join(f"- {w}" for w in ss[URL_WARNINGS]))


def apply_preset(name: str) -> None:
    cfg = PRESETS[name].config()
    st.session_state.update(widget_values(cfg))
    st.session_state["_name"] = name
    st.session_state[URL_WARNINGS] = []


def widget_spec(key: str, cfg: RunConfig) -> dict:
    """What the widget for `key` shows, derived from the field's type and its rule given the other fields:
    kind (select, bool, text, int, float), options or min/max, step, help ending with the accepted range."""
    step, help_ = KNOBS[key]
    r, value = rule(cfg, key), flat_items(cfg)[key]
    if r is not None:
        help_ = f"{help_}. Accepted: {r.describe(key)}" + (f" ({r.why})" if r.why else "")
    spec = {"kind": {bool: "bool", int: "int", float: "float"}.get(type(value), "text"), "help": help_}
    if hasattr(r, "values"):
        return {**spec, "kind": "select", "options": r.values}
    if spec["kind"] in ("int", "float"):
        num = int if spec["kind"] == "int" else float
        lo, hi = (None, None) if r is None else (r.lo, r.hi)
        spec.update(min=None if lo is None else num(lo), max=None if hi is None else num(hi),
                    step=num(step or 1))
    return spec


def _layers_delta(delta: int) -> None:
    ss = st.session_state
    layers = [s.strip() for s in str(ss.get("model.layers", "")).split(",") if s.strip()]
    if delta > 0:
        last = int(layers[-1]) if layers and layers[-1].isdigit() else 64
        layers.append(str(max(2, last // 2)))
    elif len(layers) > 1:
        layers.pop()
    ss["model.layers"] = ",".join(layers)


def _widget(key: str, cfg: RunConfig, disabled: bool = False) -> None:
    spec, ss = widget_spec(key, cfg), st.session_state
    # "session": the value outlives the widget while its tab is closed or another page is open, and is sent to the
    # browser when the widget is drawn again (without it a reopened tab showed the widgets' defaults).
    args = dict(label=label(key), key=key, help=spec["help"], disabled=disabled, persist_state="session")
    if spec["kind"] == "select":
        st.selectbox(options=spec["options"], **args)
    elif spec["kind"] == "bool":
        st.checkbox(**args)
    elif spec["kind"] == "text":
        st.text_input(**args)
    else:
        # A value outside the range still shows as it is (validate() names it): never moved to fit.
        v, lo, hi = ss[key], spec["min"], spec["max"]
        st.number_input(min_value=lo if lo is None else min(lo, v), max_value=hi if hi is None else max(hi, v),
                        step=spec["step"], format="%g" if spec["kind"] == "float" else "%d", **args)


def _upload() -> None:
    """Validate an uploaded CSV/NPZ, keep it in its own uploads folder and point data.path at it."""
    f = st.file_uploader("your data (CSV rows, or NPZ with x[, y])", type=["csv", "npz"], key="upload",
                         help="CSV: numeric columns plus an optional label column; NPZ: x (N,D) or (N,C,H,W); "
                              f"at most {MAX_UPLOAD_BYTES // 2**20} MB")
    if f is not None and st.session_state.get("_upload_seen") != f.file_id:
        st.session_state["_upload_seen"] = f.file_id
        try:
            st.session_state["data.path"] = str(keep_upload(f.name, f.getvalue(), state.runs_dir()))
            st.session_state["_upload_error"] = None
        except ValueError as e:
            st.session_state["_upload_error"] = f"the upload was not kept: {e}"
    if f is not None and st.session_state.get("_upload_error"):
        st.error(st.session_state["_upload_error"])
    elif f is None and st.session_state.get("data.path"):  # the box empties when its tab closes; the file stays
        st.caption(f"Using **{Path(st.session_state['data.path']).name}** (data path below); upload another to "
                   "replace it.")


def _disabled(key: str) -> bool:
    return inactive(st.session_state, key) is not None


def build_panel() -> tuple[RunConfig | None, str | None]:
    """Draw every knob; return (config, None) when it is valid, else (None or config, the reason)."""
    init_state()
    ss = st.session_state
    names = list(PRESETS)
    st.selectbox("start from a preset", ["(keep current settings)"] + names, key="_preset",
                 format_func=lambda n: n if n not in PRESETS else f"{PRESETS[n].title}: {PRESETS[n].idea}",
                 on_change=lambda: apply_preset(ss["_preset"]) if ss["_preset"] in PRESETS else None)
    current, _ = from_flat({k: ss[k] for k in KNOBS})
    if (name := ss.get("_name", "")) in PRESETS:  # say which preset the settings came from
        p = PRESETS[name]
        changed = " (changed since)" if flat_items(current) != flat_items(p.config()) else ""
        st.caption(f"Preset **{p.title}**{changed}: {p.idea}")  # ranges that depend on another field use its value
    # Only the open tab's widgets are drawn (a click on another tab reruns the page): all four tabs' ~30 widgets
    # and their scripts made a fresh Train page show Launch ~1 s later than the Model tab's alone. The widgets of
    # closed tabs keep their values (persist_state, below), and an error names the tab of the field it is about.
    tabs = st.tabs(list(GROUPS), key=TAB, on_change="rerun")
    for tab, (group, keys) in zip(tabs, GROUPS.items()):
        if not tab.open:
            continue
        with tab:
            if group == "Data" and ss["data.name"] == "file":
                _upload()
            cols = st.columns(2)
            for i, key in enumerate(keys):
                with cols[i % 2]:
                    _widget(key, current, _disabled(key))
                    if key == "model.layers":
                        # + and − (their help says what): at 1280 px a button here is ~60 px wide, and words were cut
                        # to "add…" and "re…"
                        a, b = st.columns(2)
                        a.button("", icon=":material/add:", key="_add_layer", on_click=_layers_delta, args=(1,),
                                 width="stretch", help="add a layer at the code end, half as wide as the last one")
                        b.button("", icon=":material/remove:", key="_remove_layer", on_click=_layers_delta,
                                 args=(-1,), width="stretch",
                                 help="remove the last layer: the one before it becomes the code")
    values = {k: ss[k] for k in KNOBS}
    ss[STORE] = values
    cfg, err = check(values, ss.get("_name", ""))
    return cfg, err and named(err.split(":", 1)[0], err)


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
    """kind, value range and input shape of the configured data, without loading big datasets.

    The app reads no file outside its data folders: ValueError before anything is touched."""
    check_data_paths(cfg, state.runs_dir())
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


def sync_url(cfg: RunConfig | None, run_id: str | None, race_id: str | None = None) -> None:
    """Put the non-default settings (and the run or race id) in the URL, so a link reproduces the setup."""
    default = widget_values(RunConfig())
    qp = {k: str(v) for k, v in st.session_state.get(STORE, {}).items() if default.get(k) != v}
    if st.session_state.get("_name"):
        qp["name"] = st.session_state["_name"]
    st.session_state[URL_SEEN] = dict(qp)
    if run_id:
        qp["run"] = run_id
    if race_id:
        qp["race"] = race_id
    if st.query_params.get("present"):
        qp["present"] = st.query_params["present"]
    if qp != st.query_params.to_dict():
        st.query_params.from_dict(qp)
