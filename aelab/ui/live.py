"""The Train page's live panel: controls, progress, loss curves, reconstructions, code map, histogram.

The page keeps only the run id; fragments re-read the run store (reads are incremental) while the run is live:
the loss every REFRESH_S, the grid and map every SNAPSHOT_VIEW_S; they stop polling when it ends.
"""
from __future__ import annotations

import os
import re
import time

import streamlit as st

from .. import jobs, viz
from ..embed import LIVE_EVERY_S
from ..metrics import header
from ..paths import check_data_paths
from ..runs import LIVE, Run, read_json
from . import state, views

# On a machine of 2 cores or fewer, the browser watching a run shares them with its training. Plotly's redraws took
# 0.6 of a core in Chromium at the 1 s / 2 s cadence, 0.25 at 2 s / 4 s (README › Benchmarks › App latency).
SMALL_MACHINE = (os.cpu_count() or 1) <= 2
REFRESH_S = 2.0 if SMALL_MACHINE else 1.0  # progress, controls and the loss curves
SNAPSHOT_VIEW_S = 2 * REFRESH_S  # reconstructions and the code map (the worker writes a snapshot every 2 s)
FIRST_POINT_WAIT_S = 1.0  # a warm worker logs its first step ~0.2 s after the click
FIRST_REFRESH_S = 0.25  # until the first epoch: the first loss points show up at once
SUMMARY_LINE = (("test_full_sq_err", ".4g"), ("linear_probe_accuracy", ".4g"), ("gflop", ".3g"), ("seconds", ".4g"),
                ("samples_per_second", ".0f"))


def stopping(run: Run, status: dict) -> bool:
    """Stop (or Cancel) was asked and the worker has not ended yet: the page says so at once."""
    return status.get("status") in LIVE and (read_json(run.dir / "control.json", {}).get("command") == "stop"
                                             or jobs.cancel_requested(run.dir))


def controls(run: Run, status: dict, greedy: bool) -> None:
    """Pause / Resume / Stop, Next stage / Run all stages when a greedy run waits between stages,
    Cancel while queued, Re-run once interrupted and Resume when it has a checkpoint to continue from."""
    s, cols = status.get("status"), st.columns(4)
    if stopping(run, status):
        return
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
    if s == "queued":
        if cols[3].button("Cancel", key="cancel", width="stretch", help="leave the queue; nothing was trained"):
            jobs.cancel(run.dir)
            st.rerun()
    elif s in LIVE:
        if cols[3].button("Stop", key="stop", width="stretch"):
            run.request("stop")
            st.rerun()  # redraw now: "stopping…" until the worker has saved and ended
    if s == "interrupted":
        if cols[0].button("Re-run", key="rerun", type="primary", width="stretch",
                          help="train again from the start with the same config, as a new run"):
            show(launch(run.config).id)
        if run.resumable() and cols[1].button("Resume", key="resume_run", width="stretch",
                                              help="continue this run from its last checkpoint"):
            try:
                state.pool().resume(run)
            except ValueError as e:  # resumed meanwhile (another tab), or its checkpoint went away
                st.error(str(e))
                return
            show(run.id)


def show(run_id: str) -> None:
    """Make run_id the page's run (session and URL) and redraw the whole page."""
    st.session_state["run_id"] = run_id
    st.query_params["run"] = run_id
    st.rerun()


def progress(run: Run, status: dict, epochs: list[dict]) -> None:
    s, total = status.get("status", "queued"), status.get("epochs_total") or 0
    ep = epochs[-1]["epoch"] if epochs else 0
    if stopping(run, status):
        st.progress(min(1.0, ep / total) if total else 0.0, text="**stopping…** (saving what was trained so far)"
                    if s != "queued" else "**cancelling…**")
        return
    if s == "queued":
        pos = (jobs.read(run.dir) or {}).get("position")
        st.progress(0.0, text=f"**queued**: {jobs.ordinal(pos) + ' in queue' if pos else 'starting'}, "
                              f"it starts when a training slot is free")
        return
    stage = status.get("stage_name") or "starting"
    eta = ""
    if epochs and total and s == "running":
        per = epochs[-1]["seconds"] / ep
        eta = f", about {per * (total - ep):.0f} s left"
    msg = status.get("message") or ""
    st.progress(min(1.0, ep / total) if total else 0.0,
                text=f"**{s}**: {stage}, epoch {ep} of {total or '?'}{eta}{'. ' + msg if msg else ''}")


def launch(cfg) -> Run:
    """Start a run in the warm worker and wait (at most FIRST_POINT_WAIT_S) for its first loss point,
    so the page's own rerun after the click already draws it."""
    run = state.pool().start(check_data_paths(cfg, state.runs_dir()))  # the app reads only its data folders
    run = state.get_run(run.id)
    t = time.monotonic()
    while not run.metrics() and time.monotonic() - t < FIRST_POINT_WAIT_S:
        if (jobs.read(run.dir) or {}).get("position"):
            break  # it waits in the queue: no point in waiting here
        time.sleep(0.02)
    return run


def _n_train(status: dict) -> int | None:
    m = re.search(r"(\d+) train", str(status.get("data", "")))
    return int(m.group(1)) if m else None


def poll(runs: list[Run], draw, *args, slow=None) -> None:
    """Draw `draw(*args)` in a fragment that re-runs while any of `runs` is live (every FIRST_REFRESH_S until each
    live one has logged an epoch, as a run's own panel does, so a race's arms show "running" as soon as they are;
    then every REFRESH_S) and redraws the whole page once, without the timer, when the first epochs are in and when
    the last run has ended. `slow(*args)` (grids and maps), if given, goes below in a fragment of its own that
    re-runs every SNAPSHOT_VIEW_S."""
    was_live = any(r.status().get("status") in LIVE for r in runs)
    early = _before_first_epoch(runs)

    def body(*a):
        if (was_live and not any(r.status().get("status") in LIVE for r in runs)) or \
                (early and not _before_first_epoch(runs)):
            st.rerun()
        draw(*a)
    st.fragment(run_every=(FIRST_REFRESH_S if early else REFRESH_S) if was_live else None)(body)(*args)
    if slow is not None:
        st.fragment(run_every=SNAPSHOT_VIEW_S if was_live else None)(slow)(*args)


def _before_first_epoch(runs: list[Run]) -> bool:
    """Some run is live and has not logged an epoch yet (an arm that failed early does not keep the fast timer)."""
    return any(r.status().get("status") in LIVE and not r.epochs() for r in runs)


def panel(run_id: str) -> None:
    """The live view of one run, in two fragments: progress, controls and loss poll every REFRESH_S while the
    run is live; the grid and the code map every SNAPSHOT_VIEW_S (each redraw re-sends every element of its
    fragment, and the browser pays for each)."""
    run = state.get_run(run_id)
    if run is None:
        st.warning(f"no run {run_id!r} in {state.runs_dir()}")
        return
    status = run.status()
    live = status.get("status") in LIVE
    early = live and not run.epochs()
    every = (FIRST_REFRESH_S if early else REFRESH_S) if live else None
    st.fragment(run_every=every)(_draw)(run, live, early)
    catching_up = not live and map_catching_up(run, status)
    st.fragment(run_every=SNAPSHOT_VIEW_S if live or catching_up else None)(_draw_snapshot)(run, live, catching_up)


CATCH_UP_S = 30.0  # how long after its end a run's map may wait for its last frame's UMAP layout


def map_catching_up(run: Run, status: dict) -> bool:
    """The run ended moments ago and its map shows an older frame's UMAP layout while the UMAP process lays out the
    last one: the map keeps polling until it has it (the page stops polling once a run has ended)."""
    if status.get("status") in LIVE or time.time() - float(status.get("updated") or 0) > CATCH_UP_S:
        return False
    methods = state.frame_layouts(run).methods
    return bool(methods) and methods[-1] != "UMAP" and views.newest_umap_frame(methods) is not None \
        and state.umap_state() == "ready"


def _draw(run: Run, was_live: bool, early: bool) -> None:
    status = run.status()
    metrics = run.metrics()
    epochs = [r for r in metrics if r["kind"] == "epoch"]
    if (was_live and status.get("status") not in LIVE) or (early and epochs):
        st.rerun()  # the run ended (or its first epoch is in): redraw the page once, with a slower timer
    st.markdown(f"#### Run `{run.id}`")
    progress(run, status, epochs)
    controls(run, status, run.config_dict().get("train", {}).get("strategy") == "greedy")
    if status.get("status") == "failed" or status.get("status") == "diverged":
        st.error(status.get("message") or "the run failed")
    elif status.get("status") == "interrupted":
        again = " **Resume** continues it from its last checkpoint." if run.resumable() else ""
        st.warning(f"{status.get('message') or 'interrupted'}. **Re-run** trains it again with the same config."
                   + again)
    if damage := run.damage():
        st.error(f"This run is damaged: {damage}")
    st.plotly_chart(viz.loss_figure(metrics, "epoch", _n_train(status)), key="live_loss")


def _draw_snapshot(run: Run, live: bool, catching_up: bool) -> None:
    if catching_up and not map_catching_up(run, run.status()):
        st.rerun()  # the last frame has its layout (or the wait is over): redraw once, without the timer
    lay = state.frame_layouts(run)
    snap = run.latest_snapshot()
    if snap is None or not lay.names:
        st.info("The first reconstructions and code map appear after the first epoch.")
        return
    xy, method, map_snap, note = lay.xy[-1], lay.methods[-1], None, views.umap_note(lay.methods[-1])
    if (older := views.umap_instead(run, lay.methods)) is not None:
        map_snap, xy, method = older
        if live and LIVE_EVERY_S:
            later = f"; a live run gets a new one at most every {LIVE_EVERY_S:.0f} s on this machine"
        elif live:
            later = "; the frames after it are being projected"
        else:  # ended: its last frame's layout is coming, or (the UMAP process gone, say) will not
            later = "; the last frame's is being made" if catching_up else ""
        note = (f"UMAP of epoch {int(map_snap['epoch'])}, the newest frame with a UMAP layout{later} (the grid "
                f"shows epoch {int(snap['epoch'])}).")
    views.snapshot_view(run, snap, xy, method, key="live", umap_note=note, map_snap=map_snap)
    summary = run.summary()
    if summary:
        st.caption(", ".join(f"{header(k)} {views.fmt(summary.get(k), fmt)}" for k, fmt in SUMMARY_LINE))
