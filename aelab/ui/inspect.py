"""The Inspect page's pieces: replay of saved snapshots, filters, interpolation, denoising, worst cases."""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from .. import probes, viz
from ..config import NOISE_KINDS, NoiseConfig
from ..runs import Run, Unreadable
from . import replay as replays
from . import views


def replay(run: Run) -> None:
    """A slider over the saved snapshots redraws the grid and the map as they were then."""
    files = run.snapshot_files()
    if not files:
        st.info("This run has no snapshots yet.")
        return
    replays.request_umap(run)
    key = "inspect.snapshot"
    if st.session_state.get("_inspect_for") != run.id or st.session_state.get(key, 0) >= len(files):
        st.session_state[key] = len(files) - 1
        st.session_state["_inspect_for"] = run.id
    names = frame_names(run, files)
    i = st.select_slider("replay: snapshot", list(range(len(files))), key=key, format_func=names.__getitem__,
                         help="the reconstructions and codes saved while it trained (at each stage's first and last "
                              "epoch, and at most every 2 s between): replay the run without training")
    try:
        snap, xy, method = views.frame_at(run, i)
    except Unreadable as e:  # one damaged snapshot: say so, the other frames and the model still show
        st.error(f"This snapshot cannot be read: {e}")
        return
    views.snapshot_view(run, snap, xy, method, key="replay", umap_note=views.umap_note(method))


def animation(run: Run) -> None:
    """The replay played in the browser: Play / Pause / a frame slider, 10 frames a second, no server work."""
    if run.snapshot_files() and st.toggle("play as an animation (in the browser, 10 frames/s)",
                                          key="inspect.animate"):
        replays.player(run, key="replay_anim")


def frame_names(run: Run, files: list) -> list[str]:
    """'epoch N (stage)' for each snapshot file. A snapshot is saved at most every 2 s and at each stage's edges,
    not every epoch: its file is named by its epoch (NNNNN.npz), the stage comes from that epoch's record."""
    stage = {r["epoch"]: r["stage_name"] for r in run.epochs()}
    names = []
    for i, f in enumerate(files):
        if not f.stem.isdecimal():
            names.append(f"snapshot {i + 1}")
        elif (epoch := int(f.stem)) in stage:
            names.append(f"epoch {epoch} ({stage[epoch]})")
        else:
            names.append(f"epoch {epoch}")
    return names


def filters(run: Run, model) -> None:
    from ..model import first_layer_filters

    w = first_layer_filters(model)
    st.image(viz.filters_grid(w), caption=f"first {min(64, len(w))} of {len(w)} first-layer filters "
             "(each scaled to its own range)", width="stretch")


def interpolation(run: Run, model, data) -> None:
    """Decode straight lines between the codes of two validation images."""
    n = len(data.x_val)
    a, b, c = st.columns(3)
    i = a.number_input("image A (val index)", 0, n - 1, 0, key="inspect.a")
    j = b.number_input("image B (val index)", 0, n - 1, min(1, n - 1), key="inspect.b")
    steps = c.slider("steps", 3, 12, 8, key="inspect.steps")
    with torch.no_grad():
        x = data.x_val[[i, j]]
        h = model.encode(x)
        t = torch.linspace(0, 1, steps).view(-1, *([1] * (h.dim() - 1)))
        out = model.decode(h[:1] * (1 - t) + h[1:] * t).clamp(0, 1)
    imgs = np.concatenate([viz.to_uint8(x[:1]), viz.to_uint8(out), viz.to_uint8(x[1:])])
    st.image(viz.image_grid(imgs, nrow=len(imgs)), caption="A, decoded interpolation of the codes, B")


DENOISE_IMAGES = 500  # validation images the demo's errors are measured on (the grid shows the first 8)


def denoise(run: Run, model, data) -> None:
    """Corrupt validation images with any noise; show the model's outputs and its error next to the
    identity baseline (the corrupted input itself), on the same images."""
    a, b = st.columns(2)
    cfg_noise = run.config.noise
    kinds = [k for k in NOISE_KINDS if k != "none"]
    kind = a.selectbox("noise", kinds, index=kinds.index(cfg_noise.kind) if cfg_noise.kind in kinds else 0,
                       key="inspect.noise.kind")
    level = b.slider("level", 0.05, 0.9, cfg_noise.level if cfg_noise.kind != "none" else 0.3, 0.05,
                     key="inspect.noise.level")
    ps = probes.ProbeSet(data.x_val[:DENOISE_IMAGES], None)
    ps.x_noisy = probes.fixed_corruption(ps.x, NoiseConfig(kind, level), 0, 8)
    out = probes.reconstruction_probes(model, ps, model.n_stages, 8, "cpu")
    with torch.no_grad():
        recon = model(ps.x[:8]).clamp(0, 1)
    grid, _ = viz.recon_rows(viz.to_uint8(ps.x[:8]), viz.to_uint8(recon), noisy=viz.to_uint8(ps.x_noisy[:8]),
                             denoised=viz.to_uint8(out["denoised"]))
    trained = f"trained with {cfg_noise.kind} {cfg_noise.level:g}" if cfg_noise.kind != "none" \
        else "trained without noise"
    st.image(grid, width="stretch", caption=f"{kind} noise at {level:g} on validation images ({trained})")
    st.markdown(views.denoising_line(out))


def worst(run: Run, model, data, k: int = 8) -> None:
    """The validation images the model reconstructs worst (anomaly ranking)."""
    from ..evaluate import reconstruct, sq_err_per_image

    err = sq_err_per_image(model, data.x_val)
    idx = np.argsort(-err)[:k]
    x = data.x_val[idx]
    imgs = np.concatenate([viz.to_uint8(x), viz.to_uint8(reconstruct(model, x).clamp(0, 1))])
    st.image(viz.image_grid(imgs, nrow=k),
             caption="rows: original / reconstruction. Squared errors: " +
                     ", ".join(f"#{i} {err[i]:.1f}" for i in idx) + f" (median {np.median(err):.1f})")
