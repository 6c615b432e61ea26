"""The Train page's live panel: controls, progress, loss curves, reconstructions, code map, histogram.

The page keeps only the run id; a fragment re-reads the run store every second (reads are incremental)
while the run is live, and stops polling when it ends.
"""
from __future__ import annotations

import re
import time

import streamlit as st

from .. import viz
from ..metrics import header
from ..runs import LIVE, Run
from . import state, views

REFRESH_S = 1.0
FIRST_POINT_WAIT_S = 1.0  # a warm worker logs its first step ~0.2 s after the click
FIRST_REFRESH_S = 0.25  # until the first epoch: the first loss points show up at once
SUMMARY_LINE = (("test_full_sq_err", ".4g"), ("linear_probe_accuracy", ".4g"), ("gflop", ".3g"), ("seconds", ".4g"),
                ("samples_per_second", ".0f"))


def controls(run: Run, status: dict, greedy: bool) -> None:
    """Pause / Resume / Stop, and Next stage / Run all stages when a greedy run waits between stages."""
    s, cols = status.get("status"), st.columns(4)
    stage_wait = s == "paused" and "done" in str(status.get("message", ""))
    if s == "running":
        if cols[0].button("Pause", key="pause", width="stretch"):
            run.request("pause")
    if s == "paused" and stage_wait and greedy:
        if cols[0].button("Next stage", key="next_stage", type="primary", width="stretch"):
            run.request("resume")
        if cols[1].button("Run all stages", key="run_all", width="stretch"):
            run.request("resume", pause_after_stage=False)
    elif s == "paused":
        if cols[0].button("Resume", key="resume", type="primary", width="stretch"):
            run.request("resume")
    if s in LIVE:
        if cols[3].button("Stop", key="stop", width="stretch"):
            run.request("stop")


def progress(status: dict, epochs: list[dict]) -> None:
    s, total = status.get("status", "queued"), status.get("epochs_total") or 0
    ep = epochs[-1]["epoch"] if epochs else 0
    stage = status.get("stage_name") or "starting"
    n_stages = status.get("n_stages")
    eta = ""
    if epochs and total and s == "running":
        per = epochs[-1]["seconds"] / ep
        eta = f", about {per * (total - ep):.0f} s left"
    msg = status.get("message") or ""
    st.progress(min(1.0, ep / total) if total else 0.0,
                text=f"**{s}**: {stage}{f' ({n_stages} stages)' if n_stages and n_stages > 1 else ''}, "
                     f"epoch {ep} of {total or '?'}{eta}{'. ' + msg if msg else ''}")


def launch(cfg) -> Run:
    """Start a run in the warm worker and wait (at most FIRST_POINT_WAIT_S) for its first loss point,
    so the page's own rerun after the click already draws it."""
    run = state.pool().start(cfg)
    run = state.get_run(run.id)
    t = time.monotonic()
    while not run.metrics() and time.monotonic() - t < FIRST_POINT_WAIT_S:
        time.sleep(0.02)
    return run


def _n_train(status: dict) -> int | None:
    m = re.search(r"(\d+) train", str(status.get("data", "")))
    return int(m.group(1)) if m else None


def panel(run_id: str) -> None:
    """The live view of one run; polls every REFRESH_S while the run is live."""
    run = state.get_run(run_id)
    if run is None:
        st.warning(f"no run {run_id!r} in {state.runs_dir()}")
        return
    live = run.status().get("status") in LIVE
    early = live and not run.epochs()
    every = (FIRST_REFRESH_S if early else REFRESH_S) if live else None
    st.fragment(run_every=every)(_draw)(run, live, early)


def _draw(run: Run, was_live: bool, early: bool) -> None:
    status = run.status()
    metrics = run.metrics()
    epochs = [r for r in metrics if r["kind"] == "epoch"]
    if (was_live and status.get("status") not in LIVE) or (early and epochs):
        st.rerun()  # the run ended (or its first epoch is in): redraw the page once, with a slower timer
    st.markdown(f"#### Run `{run.id}`")
    progress(status, epochs)
    controls(run, status, run.config.train.strategy == "greedy")
    if status.get("status") == "failed" or status.get("status") == "diverged":
        st.error(status.get("message") or "the run failed")
    st.plotly_chart(viz.loss_figure(metrics, "epoch", _n_train(status)), key="live_loss")
    lay = state.frame_layouts(run)
    snap = run.latest_snapshot()
    if snap is None or not lay.names:
        st.info("The first reconstructions and code map appear after the first epoch.")
        return
    xy, method = lay.xy[-1], lay.methods[-1]
    views.snapshot_view(run, snap, xy, method, key="live", umap_note=views.umap_note(method))
    summary = run.summary()
    if summary:
        st.caption(", ".join(f"{header(k)} {views.fmt(summary.get(k), fmt)}" for k, fmt in SUMMARY_LINE))
