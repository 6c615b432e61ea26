"""The Compare page's pieces: the metrics table, overlaid curves, side-by-side grids and maps, exports."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from .. import viz
from ..embed import align, load_codes, pca_2d
from ..metrics import VOCABULARY, header
from ..runs import LIVE, Run, Unreadable
from . import state, views
from .replay import request_umap


def label(run: Run) -> str:
    cfg = run.config_dict()
    m, t = cfg.get("model", {}), cfg.get("train", {})
    return (f"{cfg.get('name') or 'custom'} · {t.get('strategy')} · {','.join(map(str, m.get('layers', [])))}"
            f"{' tied' if m.get('tied') else ''} · {run.id[-4:]}")


SUMMARY_COLUMNS = ("params", "test_full_sq_err", "pca_test_sq_err", "code_dim", "linear_probe_accuracy", "gflop",
                   "seconds", "samples_per_second")


def table(runs: list[Run]) -> pd.DataFrame:
    """One row per run, columns named by the metric vocabulary (the CSV export is this table)."""
    rows = []
    for r in runs:
        sm = dict(r.summary() or {})
        sm["code_dim"] = sm.get("code_dim") or _code_dim(r)
        try:
            sm["pca_test_sq_err"] = state.pca_baseline_for(r.config, int(sm["code_dim"])) if sm["code_dim"] else None
        except Exception:  # a dataset that cannot be loaded here, or a damaged config: no baseline, not a crash
            sm["pca_test_sq_err"] = None
        sm.update(probe_values(r.latest_snapshot()))
        rows.append({"run": label(r), "status": r.status().get("status"),
                     **{header(k): sm.get(k) for k in SUMMARY_COLUMNS + PROBE_COLUMNS}, "run id": r.id})
    return pd.DataFrame(rows)


def preselect(runs: dict[str, Run]) -> None:
    """The runs a link names (`?runs=ID,ID`) when it is new to this session, else the ones picked before
    that still exist, else the two newest."""
    want = [i for i in st.query_params.get("runs", "").split(",") if i in runs]
    if want and want != st.session_state.get("_compare_url"):
        st.session_state["compare.runs"] = want
    else:
        st.session_state["compare.runs"] = [i for i in st.session_state.get("compare.runs", []) if i in runs] \
            or list(runs)[:2]


def remember(picked: list[str]) -> None:
    """Keep the picked runs in the URL (a link to this comparison); `preselect` then knows the URL is ours."""
    st.query_params["runs"] = ",".join(picked)
    st.session_state["_compare_url"] = picked


def default_axis(runs: list[Run]) -> str:
    """Equal compute is the fair x axis when strategies differ (a greedy epoch of stage 3 costs a fraction
    of a full-network epoch); otherwise epochs."""
    return "gflop" if len({r.config_dict().get("train", {}).get("strategy") for r in runs}) > 1 else "epoch"


# The last snapshot's instruments (aelab/probes.py), on each run's fixed probe images.
PROBE_COLUMNS = ("denoised_sq_err", "identity_sq_err", "jacobian_fro", "pca_angles_deg", "pca_ratio")


def probe_values(snap: dict | None) -> dict:
    """{key: value or None}; for the angles, the largest principal angle."""
    snap = snap or {}
    return {k: (float(np.max(snap[k])) if k in snap else None) for k in PROBE_COLUMNS}


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


def aligned_latest(runs: list[Run]) -> list[tuple[Run, dict | None, np.ndarray | None, str, dict | None]]:
    """(run, latest snapshot, its 2-D layout, method, the snapshot the layout is of) per run: one projection for
    all, each layout aligned to the first's.

    UMAP when every run's newest frame has its layout. Else, while a run is live (a race), each run's newest frame
    that has one, when every run has such a frame: live frames get theirs every few seconds, rarely all at once.
    Else PCA of every newest frame."""
    latest, live = [], any(r.status().get("status") in LIVE for r in runs)
    for r in runs:
        request_umap(r)
        lay = state.frame_layouts(r)
        latest.append((r, lay.xy[-1] if lay.xy else None, lay.methods[-1] if lay.methods else "PCA", None))
    if any(m != "UMAP" for _, xy, m, _ in latest if xy is not None):  # one projection for all, or none compares
        older = _newest_umap(runs) if live else None
        latest = older or [(r, pca_2d(codes) if xy is not None and m == "UMAP" and (codes := _codes(r)) is not None
                            else xy, "PCA", None) for r, xy, m, _ in latest]
    out, ref = [], None
    for r, xy, method, map_snap in latest:
        if xy is not None:
            xy = align(xy, ref)
            ref = xy if ref is None else ref
        snap = r.latest_snapshot()
        out.append((r, snap, xy, method, map_snap or snap))
    return out


def maps(runs: list[Run]) -> None:
    """Final code maps side by side: one projection, each aligned to the first, drawn on shared axes."""
    frames = aligned_latest(runs)
    present = [xy for _, _, xy, _, _ in frames if xy is not None]
    if not present:
        return
    ranges = viz.shared_ranges(present)
    for col, (r, _, xy, method, map_snap) in zip(st.columns(len(frames)), frames):
        with col:
            st.caption(label(r))
            if map_snap is not None:  # titled with the frame it shows (a live race's: its newest with UMAP)
                views.code_map(r, xy, method, map_snap, r.probe(), ranges=ranges, key=f"cmp_map_{r.id}",
                               height=380)


def _newest_umap(runs: list[Run]) -> list[tuple] | None:
    """(run, layout, "UMAP", its snapshot) of each run's newest frame with a UMAP layout; None unless all have one."""
    out = []
    for r in runs:
        i = views.newest_umap_frame(state.frame_layouts(r).methods)
        if i is None:
            return None
        try:
            snap, xy, method = views.frame_at(r, i)
        except Unreadable:
            return None
        if xy is None or method != "UMAP":  # the cache was being updated meanwhile
            return None
        out.append((r, xy, method, snap))
    return out


def _codes(run: Run) -> np.ndarray | None:
    files = run.snapshot_files()
    return load_codes(files[-1]) if files else None


def exports(df: pd.DataFrame, curves: dict, axis: str, grid_images: dict) -> None:
    a, b = st.columns(2)
    a.download_button("Download table (CSV)", df.to_csv(index=False).encode(), "aelab-compare.csv", "text/csv",
                      key="dl_csv")
    b.download_button("Download figure (PNG)", viz.compare_png(curves, axis, grid_images), "aelab-compare.png",
                      "image/png", key="dl_png")


def glossary() -> str:
    """The compared quantities, defined once in the metric vocabulary."""
    keys = ("val_full_sq_err", "val_stage_sq_err", "gflop", "test_full_sq_err", "pca_test_sq_err",
            "linear_probe_accuracy") + PROBE_COLUMNS
    return "  \n".join(f"**{VOCABULARY[k].label}**: {VOCABULARY[k].definition}." for k in keys)


def seed_groups(runs: list[Run], axis: str) -> None:
    """Runs that differ only in seed, read as groups: mean curves with a band, mean ± sd on the test split and
    each group's paired difference with the first (same seeds, 95 % interval). Nothing when no group has two."""
    from .. import sweep as S

    groups = [g for g in S.groups(runs) if g["n"] > 1]
    if not groups:
        return
    st.subheader("Seed groups: runs that differ only in seed")
    by_id = {r.id: r for r in runs}
    cell_labels = {c["run_id"]: c["label"] for sw in S.sweeps(state.store()) for c in sw.cells if c.get("run_id")}
    names = [cell_labels.get(g["runs"][0]) or _varied(g, groups) for g in groups]
    spread = st.radio("band", ("sd", "range"), horizontal=True, key="compare.band", label_visibility="collapsed",
                      format_func={"sd": "band: ±1 sd", "range": "band: min-max"}.get)
    bands = {n: S.band([viz.compared_curve(by_id[i].epochs(), axis) for i in g["runs"]]) for n, g in zip(names, groups)}
    st.plotly_chart(viz.band_figure(bands, axis, spread), key="cmp_bands")
    rows = []
    for n, g in zip(names, groups):
        p = S.paired(g, groups[0]) if g is not groups[0] else None
        rows.append({"group": n, "seeds": g["n"], header("test_full_sq_err") + " mean": g["mean"], "sd": g["sd"],
                     "min": g["min"], "max": g["max"],
                     f"paired difference vs {names[0]}": "reference" if p is None else p["diff_mean"],
                     "95 % interval": "" if p is None or p["ci_low"] is None
                     else f"[{p['ci_low']:+.3g}, {p['ci_high']:+.3g}]",
                     "reading": "" if p is None else p["verdict"]})
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="cmp_groups")


def _varied(group: dict, groups: list[dict]) -> str:
    """What sets this group apart from the others: the settings whose values differ between groups."""
    import json

    cfgs = [json.loads(g["key"]) for g in groups]
    mine = json.loads(group["key"])
    keys = [k for k in mine if len({json.dumps(c.get(k)) for c in cfgs}) > 1]
    return ", ".join(f"{k.split('.', 1)[1]}={mine[k]}" for k in keys) or "same settings"


def sweep_picker(runs: dict) -> list[str] | None:
    """A sweep of the store (or ?sweep=ID) to compare: its cells' run ids when one is newly picked."""
    from .. import sweep as S

    sweeps = S.sweeps(state.store())
    if not sweeps:
        return None
    ids = [s.id for s in sweeps]
    wanted = st.query_params.get("sweep")
    if wanted in ids and "compare.sweep" not in st.session_state:
        st.session_state["compare.sweep"] = wanted
    choice = st.selectbox("a sweep (all its cells)", ["(pick runs below)"] + ids, key="compare.sweep",
                          format_func=lambda i: i if i not in ids else
                          f"{i}: {', '.join(sweeps[ids.index(i)].grid)} x {sweeps[ids.index(i)].seeds} seeds")
    if choice not in ids or st.session_state.get("_compare.sweep_shown") == choice:
        return None
    st.session_state["_compare.sweep_shown"] = choice
    return [c["run_id"] for c in sweeps[ids.index(choice)].cells if c.get("run_id") in runs]
