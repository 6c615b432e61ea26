"""The Compare page's pieces: the metrics table, overlaid curves, side-by-side grids and maps, exports."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from .. import viz
from ..embed import align
from ..runs import Run
from . import state, views


def label(run: Run) -> str:
    cfg = run.config_dict()
    m, t = cfg.get("model", {}), cfg.get("train", {})
    return (f"{cfg.get('name') or 'custom'} · {t.get('strategy')} · {','.join(map(str, m.get('layers', [])))}"
            f"{' tied' if m.get('tied') else ''} · {run.id[-4:]}")


def table(runs: list[Run]) -> pd.DataFrame:
    rows = []
    for r in runs:
        sm, cfg = r.summary() or {}, r.config
        code_dim = sm.get("code_dim") or _code_dim(r)
        try:
            pca = state.pca_baseline_for(cfg, int(code_dim)) if code_dim else None
        except Exception:  # a dataset that cannot be loaded here: no baseline, not a crash
            pca = None
        rows.append({"run": label(r), "status": r.status().get("status"), "params": sm.get("params"),
                     "val sq err / image": sm.get("val_sq_err_per_image"),
                     f"PCA, same code size": pca, "code size": code_dim,
                     "linear probe acc": sm.get("linear_probe_accuracy"), "wall s": sm.get("wall_seconds"),
                     "samples/s": sm.get("train_samples_per_second"), **probe_columns(r.latest_snapshot()),
                     "run id": r.id})
    return pd.DataFrame(rows)


# The last snapshot's instruments (aelab/probes.py), on each run's fixed probe images.
PROBE_COLUMNS = {"denoised sq err (probe)": "denoised_sq_err", "identity sq err (probe)": "identity_sq_err",
                 "encoder ||J||_F": "jacobian_fro", "max angle to PCA (deg)": "pca_angles_deg",
                 "error / PCA (probe)": "pca_ratio"}


def probe_columns(snap: dict | None) -> dict:
    """{column: value or None}; the angle column holds the largest principal angle."""
    snap = snap or {}
    return {col: (float(np.max(snap[k])) if k in snap else None) for col, k in PROBE_COLUMNS.items()}


def _code_dim(run: Run) -> int | None:
    snap = run.latest_snapshot()
    return int(snap["code_dim"]) if snap is not None and "code_dim" in snap else None


def grids(runs: list[Run]) -> dict[str, np.ndarray]:
    """The latest reconstruction grid of each run (same probe images when the data is the same)."""
    out = {}
    for r in runs:
        snap = r.latest_snapshot()
        grid, _ = views.recon_image(r, snap, r.probe()) if snap is not None else (None, "")
        if grid is not None:
            out[label(r)] = grid
    return out


def maps(runs: list[Run]) -> None:
    """Final code maps side by side: each aligned to the first and drawn on shared axes."""
    from .inspect import request_umap

    frames, ref = [], None
    for r in runs:
        request_umap(r)
        lay = state.frame_layouts(r)
        xy = lay.xy[-1] if lay.xy else None
        if xy is not None:
            xy = align(xy, ref)
            ref = xy if ref is None else ref
        frames.append((r, xy, lay.methods[-1] if lay.methods else "PCA"))
    present = [xy for _, xy, _ in frames if xy is not None]
    if not present:
        return
    ranges = viz.shared_ranges(present)
    for col, (r, xy, method) in zip(st.columns(len(frames)), frames):
        with col:
            snap = r.latest_snapshot()
            st.caption(label(r))
            if snap is not None:
                views.code_map(r, xy, method, snap, r.probe(), ranges=ranges, key=f"cmp_map_{r.id}", height=380)


def exports(df: pd.DataFrame, curves: dict, axis: str, grid_images: dict) -> None:
    a, b = st.columns(2)
    a.download_button("Download table (CSV)", df.to_csv(index=False).encode(), "aelab-compare.csv", "text/csv",
                      key="dl_csv")
    b.download_button("Download figure (PNG)", viz.compare_png(curves, axis, grid_images), "aelab-compare.png",
                      "image/png", key="dl_png")
