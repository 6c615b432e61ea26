"""Views shared by the pages: a run's snapshot (grid, code map, histogram), run lists and pickers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from .. import viz
from ..config import kl_stages
from ..embed import warmup_eta
from ..metrics import header
from ..runs import DAMAGED, LIVE, Run, Unreadable
from . import state

TRAIN_PAGE, COMPARE_PAGE, INSPECT_PAGE = "app_pages/1_Train.py", "app_pages/2_Compare.py", "app_pages/3_Inspect.py"


def scroll_to(key: str) -> None:
    """Bring the element with Streamlit key `key` into view (after a launch, the live panel sits below the
    settings: on a 720-px projector it would start off screen). A tiny iframe's script reaches the page, which
    shares its origin; it retries while the element is still being drawn. Its container is not displayed (the
    script still runs), so it leaves no gap. (st.iframe: components.html is deprecated in this Streamlit.)"""
    st.html("<style>.st-key-scroll_helper {display: none;}</style>")
    st.container(key="scroll_helper").iframe(f"""<script>
      let tries = 0;
      const go = () => {{
        const e = window.parent.document.querySelector('.st-key-{key}');
        if (e) {{ e.style.scrollMarginTop = '70px';  // clear of the app's top bar
                  e.scrollIntoView({{behavior: 'smooth', block: 'start'}}); }}
        else if (tries++ < 100) setTimeout(go, 100);
      }};
      go();
    </script>""", height=1)


def snapshot_title(snap: dict) -> str:
    return f"epoch {int(snap['epoch'])}, {snap['stage_name']}"


def recon_image(run: Run, snap: dict, probe: dict | None, n: int = 8):
    """Labelled grid of the probe images (clean / corrupted / output from the corrupted input / output from
    the clean input when the run has noise) and its caption."""
    if probe is None:
        return None, ""
    grid, rows = viz.recon_rows(probe["images"], snap["recon"], probe.get("noisy"), snap.get("denoised"), n=n)
    cfg = run.config_dict()
    greedy, n = cfg.get("train", {}).get("strategy") == "greedy", len(cfg.get("model", {}).get("layers", []))
    depth = f" through stages 1..{int(snap['level'])}" if greedy and int(snap["level"]) < n else ""
    return grid, f"rows: {' / '.join(rows)}{depth} ({snapshot_title(snap)})"


def denoising_line(snap: dict) -> str | None:
    """The denoising error next to the identity baseline (the corrupted input taken as the answer)."""
    if "denoised_sq_err" not in snap:
        return None
    den, ident, clean = (float(snap[k]) for k in ("denoised_sq_err", "identity_sq_err", "clean_sq_err"))
    verdict = "denoises" if den < ident else "does **not** beat its corrupted input"
    n = f"{int(snap['probe_images'])} " if "probe_images" in snap else ""
    return (f"Denoising, sq. error per image on the {n}probe images: output from the "
            f"corrupted input **{den:.2f}** vs the corrupted input itself (identity) **{ident:.2f}**: it "
            f"{verdict} ({den / ident:.0%} of identity); output from the clean input {clean:.2f}.")


def jacobian_line(snap: dict) -> str | None:
    if "jacobian_fro" not in snap:
        return None
    at = int(snap.get("jacobian_epoch", snap["epoch"]))
    when = "" if at == int(snap["epoch"]) else f", measured at epoch {at}"
    return (f"Encoder ‖J‖_F (exact Jacobian of the code w.r.t. the input, mean over the first "
            f"{int(snap['jacobian_images'])} probe images{when}): **{float(snap['jacobian_fro']):.3g}**")


def kl_note(cfg) -> str | None:
    """Which greedy stages the KL penalty acts on (only sigmoid codes: KL needs units in (0, 1))."""
    stages = kl_stages(cfg)
    n = len(cfg.model.layers)
    if cfg.sparsity.kind != "kl" or cfg.train.strategy != "greedy" or len(stages) == n:
        return None
    others = [k for k in range(1, n + 1) if k not in stages]
    return (f"KL sparsity applies to {_stages(stages)} (sigmoid code) only; {_stages(others)} "
            f"({cfg.model.activation} codes, not in (0, 1)) get no KL term.")


def _stages(ks) -> str:
    return f"stage{'s' if len(ks) > 1 else ''} {', '.join(map(str, ks))}"


def probe_panels(run: Run, snap: dict, key: str) -> None:
    """The theory made visible: contraction, sparsity per unit, and for linear AEs the angles to PCA."""
    try:
        cfg = run.config
    except Unreadable:  # a damaged config: the snapshot's own numbers still draw, the KL facts do not
        cfg = None
    for line in (jacobian_line(snap), cfg and kl_note(cfg)):
        if line:
            st.markdown(line)
    if "unit_mean" in snap:
        rho = cfg.sparsity.target if cfg is not None and cfg.sparsity.kind == "kl" else None
        st.plotly_chart(viz.unit_activation_figure(snap["unit_mean"], rho), key=f"{key}_units")
    if "pca_angles_deg" in snap:
        st.plotly_chart(viz.pca_angles_figure(snap["pca_angles_deg"], float(snap["pca_ratio"])), key=f"{key}_pca")


def code_map(run: Run, xy, method: str, snap: dict, probe: dict | None, ranges=None, key: str = "map",
             height: int = 460) -> None:
    if xy is None:
        st.info("no codes in this snapshot")
        return
    labels = probe.get("labels") if probe else None
    classes = [str(c) for c in probe["classes"]] if probe is not None and len(probe.get("classes", [])) else None
    title = f"code map h{int(snap['level'])} ({method}), {snapshot_title(snap)}"
    st.plotly_chart(viz.code_map_figure(xy, labels, classes, title, ranges, height=height), key=key)


def snapshot_view(run: Run, snap: dict, xy, method: str, key: str, umap_note: str = "",
                  map_snap: dict | None = None) -> None:
    """Reconstruction grid (with the denoising error) and code map side by side, activation histogram
    below; the probe instruments (||J||_F, per-unit activation, angles to PCA) under the map. map_snap:
    the (older) frame the map shows, when it is not `snap`'s."""
    probe = run.probe()
    left, right = st.columns([5, 6])
    with left:
        grid, caption = recon_image(run, snap, probe)
        if grid is not None:
            st.markdown("**Reconstructions of fixed validation images**")
            st.image(grid, caption=caption, width="stretch")
        if denoising_line(snap):
            st.markdown(denoising_line(snap))
        if "hist_counts" in snap:
            title = f"code activations: mean {float(snap['code_mean']):.3g}, {int(snap['code_dim'])} units"
            st.plotly_chart(viz.histogram_figure(snap["hist_counts"], snap["hist_edges"], title), key=f"{key}_hist")
    with right:
        code_map(run, xy, method, map_snap or snap, probe, key=f"{key}_map")
        if umap_note:
            st.caption(umap_note)
        probe_panels(run, snap, key)


def newest_umap_frame(methods: list[str]) -> int | None:
    """Index of the newest frame whose layout is UMAP (None: none has one yet)."""
    return next((i for i in range(len(methods) - 1, -1, -1) if methods[i] == "UMAP"), None)


def umap_instead(run: Run, methods: list[str]):
    """While the newest frame of a live run has no UMAP layout yet, the newest frame that has one (snapshot,
    layout, method), so a live map does not flip to PCA while the projection catches up; else None."""
    if methods and methods[-1] != "UMAP" and (i := newest_umap_frame(methods)) is not None:
        return frame_at(run, i)
    return None


def umap_wait(elapsed: float, last: float | None) -> str:
    """An honest estimate of the UMAP warm-up still to go, from how long the last one took on this machine."""
    if last is None:
        return (f"the UMAP process is warming up ({elapsed:.0f} s so far; numba compiles umap-learn once per app "
                "start: 10-20 s on an idle 2-core machine, up to a minute beside a training run, which goes first).")
    if elapsed < last:
        return (f"UMAP in about {last - elapsed:.0f} s (its warm-up took {last:.0f} s last time, "
                f"{elapsed:.0f} s so far).")
    return (f"the UMAP warm-up is taking longer than last time ({elapsed:.0f} s so far, {last:.0f} s then): the "
            "machine is busy; it goes on in the background.")


def umap_note(method: str) -> str:
    s = state.umap_state()
    if method == "UMAP":
        return "UMAP from the warm projection process; each frame starts from the previous layout."
    if s == "warming":
        return "PCA for now: " + umap_wait(*warmup_eta(state.runs_dir()))
    if s == "ready":
        return "PCA for now: the UMAP layout of this frame is being computed."
    return "PCA (UMAP is off for this server: AELAB_UMAP=0)."


_LISTED = ("params", "test_full_sq_err", "linear_probe_accuracy", "seconds", "samples_per_second")


def status_line(run: Run) -> dict:
    """One row about a run: status, strategy and its key metrics (vocabulary headers); a damaged run says
    why in `damage`."""
    row = run.listing()
    return {(header(k) if k in _LISTED else k): v for k, v in row.items()}


def runs_table(runs: list[Run]) -> pd.DataFrame:
    return pd.DataFrame([status_line(r) for r in runs])


def pick_run(key: str, runs: list[Run], finished_only: bool = False) -> Run | None:
    """A run selectbox, defaulting to ?run= from the URL; keeps the choice in the URL."""
    if finished_only:
        runs = [r for r in runs if r.status().get("status") not in LIVE]
    if not runs:
        st.info("No runs yet: start one on the Train page (or `python -m aelab train --preset keras-deep`).")
        return None
    ids = [r.id for r in runs]
    want = st.query_params.get("run")
    if key not in st.session_state or (want in ids and want != st.session_state.get(f"_{key}_url")):
        st.session_state[key] = want if want in ids else ids[0]
        st.session_state[f"_{key}_url"] = want
    run_id = st.selectbox("run", ids, key=key, format_func=lambda i: f"{i} ({_short(state.get_run(i))})")
    st.query_params["run"] = run_id
    st.session_state[f"_{key}_url"] = run_id
    return state.get_run(run_id)


def _short(run: Run | None) -> str:
    if run is None:
        return "?"
    status = DAMAGED if run.damage() else run.status().get("status")
    return f"{status}, {run.config_dict().get('train', {}).get('strategy')}"


def model_or_note(run: Run):
    """The run's trained model, or None after saying (info or error) why there is none."""
    if run.has_weights():
        try:
            return state.model_of(run)
        except Unreadable as e:
            st.error(f"The saved model cannot be loaded: {e}")
            return None
    s = run.status()
    why = {"interrupted": "it was interrupted before saving them (its worker ended: killed or crashed)",
           "failed": "it failed", "diverged": "it diverged", "stopped": "it was stopped before its first step",
           DAMAGED: "its status is unreadable"}.get(s.get("status"))
    if why is None:  # queued, running or paused
        st.info("The trained weights appear here when the run ends (filters, interpolation, denoising, worst cases).")
    else:
        msg = f" ({s['message']})" if s.get("message") and s["status"] in ("failed", "diverged") else ""
        st.info(f"This run has no trained weights: {why}{msg}. Its curves and snapshots up to its last "
                "complete epoch are above; launch it again from Train for a model to inspect.")
    return None


def frame_at(run: Run, i: int):
    """(snapshot dict, layout, method) of the i-th saved frame of a run."""
    files = run.snapshot_files()
    lay = state.frame_layouts(run)
    snap = run.load_snapshot(files[i])
    idx = lay.names.index(files[i].name) if files[i].name in lay.names else None
    return snap, (lay.xy[idx] if idx is not None else None), (lay.methods[idx] if idx is not None else "PCA")


def fmt(v, spec: str = ".3g") -> str:
    return format(v, spec) if isinstance(v, (int, float)) and np.isfinite(v) else "n/a"


def take_home(cfg, shape, run: Run | None = None, key: str = "code") -> None:
    """Download the settings (or a run) as a standalone PyTorch script or notebook (aelab/codegen.py)."""
    from .. import codegen

    args = dict(input_shape=tuple(shape) if shape else None, weights=f"{cfg.name or 'autoencoder'}.safetensors")
    if run is not None:
        args.update(run_id=run.id, summary=run.summary())
    stem = (run.id if run is not None else cfg.name) or "autoencoder"
    row = st.container(horizontal=True)
    row.download_button("Take home: script (.py)", lambda: codegen.script(cfg, **args), f"{stem}.py", "text/x-python",
                      key=f"{key}.py", width="content",
                      help="a standalone PyTorch program of these settings: needs torch, numpy, safetensors and the "
                           "data's package, not aelab; on the CPU it ends where aelab's run ends")
    row.download_button("Take home: notebook", lambda: codegen.notebook(cfg, **args), f"{stem}.ipynb",
                      "application/x-ipynb+json", key=f"{key}.ipynb", width="content",
                      help="the same program as a Jupyter notebook, one cell per part")
