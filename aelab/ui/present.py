"""Presentation mode (`?present=1`, `?present=1080` or the toggle): what a room must see, on one 1280x720 (or,
magnified, 1920x1080) screen without scrolling — loss with stage bands, reconstruction grid, code map — in large
type and high contrast, for a live run, a race of two runs, and a replay. No sidebar, no settings, no toolbar."""
from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from .. import race as races
from .. import viz
from ..export import RaceReplay
from ..runs import LIVE, Run, Unreadable
from . import compare, live, race, state, views
from . import replay as replays

PARAM = "present"
# URL value -> the screen, and how much the 1280x720 layout is magnified on it (its columns widen with the window;
# text and chart heights are scaled here). Magnifying with CSS (zoom, transform) made Plotly size its charts twice.
SCREENS = {"1": ("1280×720", 1.0), "1080": ("1920×1080", 1.5)}
FONT_PX = 18  # chart text on a 1280x720 projector
LOSS_PLOT_PX = 370  # the loss chart's plotting width at 1280 px (measured in Chromium)
CSS = """<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], header[data-testid="stHeader"],
[data-testid="stToolbar"], [data-testid="stDecoration"] {display: none !important;}
.block-container, [data-testid="stMainBlockContainer"] {padding: 0.4rem 1rem 0 1rem !important; max-width: 100% !important;}
html, body, [data-testid="stMarkdownContainer"] p {font-size: FONTpx; color: #000;}
[data-testid="stVerticalBlock"] {gap: 0.3rem;}
</style>"""


def enabled() -> bool:
    """On when the URL says present=1 or 1080 (a link opens a projector view) or the toggle was switched on."""
    return st.query_params.get(PARAM) in SCREENS


def px(n: float) -> int:
    """A size of the 1280x720 layout on this presentation's screen."""
    return round(n * SCREENS.get(st.query_params.get(PARAM), SCREENS["1"])[1])


def toggle() -> bool:
    """The switch (it keeps the URL parameter in step, so a refresh stays in presentation mode)."""
    row = st.container(horizontal=True, vertical_alignment="center")
    on = row.toggle("Presentation mode", value=enabled(), key="present.toggle",
                    help="one screen for a projector: loss, reconstructions and code map, large type")
    if on != enabled():
        if on:
            st.query_params[PARAM] = "1"
        else:
            st.query_params.pop(PARAM, None)
        st.rerun()
    if on:
        now = st.query_params.get(PARAM)
        screen = row.segmented_control("screen", list(SCREENS), format_func=lambda k: SCREENS[k][0], default=now,
                                       key="present.screen", label_visibility="collapsed", required=True,
                                       help="the projector's resolution: a bigger screen shows the same layout larger")
        if screen and screen != now:
            st.query_params[PARAM] = screen
            st.rerun()
    return on


def style() -> None:
    st.html(CSS.replace("FONT", str(px(FONT_PX))))


def big(fig: go.Figure, height: int) -> go.Figure:
    """A figure for a projector: large text (18 px at 1280x720), black on white, thick lines, stage bands that show."""
    font = px(FONT_PX)
    fig.update_layout(height=height, font=dict(size=font, color="#000"), title_font_size=font + 2,
                      margin=dict(l=px(10), r=px(10), t=px(50), b=px(10)), paper_bgcolor="white", plot_bgcolor="white")
    fig.update_xaxes(showgrid=True, gridcolor="#ccc", linecolor="#000", tickfont_size=font)
    fig.update_yaxes(showgrid=True, gridcolor="#ccc", linecolor="#000", tickfont_size=font)
    fig.update_traces(line_width=3, selector=lambda t: t.type == "scatter" and (t.line.width or 0) >= 2)  # curves
    for shape in fig.layout.shapes or ():
        if shape.type == "rect" and shape.fillcolor:  # stage bands: opaque enough for a projector
            shape.fillcolor = shape.fillcolor.replace(f",{viz.STAGE_ALPHA})", ",0.25)")
    for ann in fig.layout.annotations or ():  # panel titles and stage labels (worded to fit by viz.loss_figure)
        ann.font.size = font - 2
    return fig


def _grid(run: Run, snap: dict, caption: str = "") -> None:
    grid, rows = views.recon_image(run, snap, run.probe())
    if grid is not None:
        st.image(grid, caption=caption or rows, width="stretch")


def _map(run: Run, xy, method: str, snap: dict, key: str, height: int, ranges=None) -> None:
    if xy is None:
        return
    probe = run.probe()
    labels = probe.get("labels") if probe else None
    classes = [str(c) for c in probe["classes"]] if probe is not None and len(probe.get("classes", [])) else None
    fig = viz.code_map_figure(xy, labels, classes, f"code map ({method})", ranges, height=height)
    fig.update_traces(marker_size=px(6))
    st.plotly_chart(big(fig, height), key=key)


def run_view(run: Run, frame: int | None = None, height: int = 600) -> None:
    """One run on one screen: loss (with a cursor at the shown frame in a replay), grid, map."""
    status, metrics, height = run.status(), run.metrics(), px(height)
    files = run.snapshot_files()
    i = len(files) - 1 if frame is None else frame
    try:
        snap, xy, method = views.frame_at(run, i) if files else (None, None, "PCA")
    except Unreadable:  # the newest snapshot is damaged: draw the loss, and the frames when they read
        snap, xy, method = None, None, "PCA"
    left, mid, right = st.columns([5, 4, 4], vertical_alignment="top")
    with left:
        fig = big(viz.loss_figure(metrics, "epoch", stage_font_px=px(FONT_PX) - 2,
                                  plot_px=px(LOSS_PLOT_PX)), height)
        if frame is not None and snap is not None:
            fig.add_vline(x=int(snap["epoch"]), line_color="#d62728", line_width=3)
        st.plotly_chart(fig, key="present_loss")
    with mid:
        at = f", epoch {int(snap['epoch'])}" if snap is not None else ""
        st.markdown(f"**{status.get('status')}** · {status.get('stage_name') or 'starting'}{at}")
        if snap is not None:
            _grid(run, snap)
        else:
            st.info("The first reconstructions appear after the first epoch.")
    if frame is None and snap is not None and (older := views.umap_instead(run, state.frame_layouts(run).methods)):
        map_snap, xy, method = older  # live, as on the Train page
        method = f"UMAP of epoch {int(map_snap['epoch'])}"
    with right:
        if snap is not None:
            _map(run, xy, method, snap, "present_map", height - px(40))


def live_run(run_id: str) -> None:
    run = state.get_run(run_id)
    if run is None:
        st.warning(f"no run {run_id!r}")
        return
    live.poll([run], run_view, run)


def live_race(race_id: str) -> None:
    """A race live while an arm trains; once both have ended, its replay (both arms at equal compute)."""
    loaded = race.load(race_id)
    if loaded is None:
        return
    r, runs = loaded
    if any(x.status().get("status") in LIVE for x in runs):
        live.poll(runs, _live_race, r, runs)
    else:
        st.markdown(race.verdict(r, runs, ended=True))
        # the room has just watched it end: its end first (as a run's replay here), Play from the start
        replays.player(RaceReplay(tuple(runs), r.labels), key="present_race_replay", height=px(580),
                        font_px=px(FONT_PX), at_end=True)


def _live_race(r: races.Race, runs: list[Run]) -> None:
    top, note = st.columns([3, 1])
    with top:
        curves = {label: x.epochs() for label, x in zip(r.labels, runs)}
        fig = big(viz.compare_figure(curves, "gflop"), px(330))
        fig.update_layout(legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"), margin_t=px(80))
        st.plotly_chart(fig, key="present_race_curves")
    with note:
        for label, x in zip(r.labels, runs):
            s = x.status()
            st.markdown(f"**{label}**: {s.get('status')}, {s.get('stage_name') or 'starting'}")
        st.caption(race.verdict(r, runs))
    frames = compare.aligned_latest(runs)
    present = [xy for _, _, xy, _, _ in frames if xy is not None]
    ranges = viz.shared_ranges(present) if present else None
    cols = st.columns(4)
    for k, (label, (x, snap, xy, method, map_snap)) in enumerate(zip(r.labels, frames)):
        if snap is None:
            continue
        with cols[2 * k]:
            _grid(x, snap, caption=label)
        with cols[2 * k + 1]:
            older = int(map_snap["epoch"]) != int(snap["epoch"])  # a live race's map: its newest frame with UMAP
            _map(x, xy, f"{method}, epoch {int(map_snap['epoch'])}" if older else method, snap,
                 f"present_race_map_{k}", px(300), ranges)


def replay(run: Run) -> None:
    """A saved run frame by frame: the slider moves the loss cursor, the grid and the map together."""
    files = run.snapshot_files()
    if not files:
        st.info("This run has no snapshots yet.")
        return
    names = [f"{i + 1}/{len(files)}" for i in range(len(files))]
    i = st.select_slider("frame", list(range(len(files))), value=len(files) - 1, key=f"present.frame.{run.id}",
                         format_func=names.__getitem__, label_visibility="collapsed")
    run_view(run, frame=i, height=520)  # below the run picker and the frame slider
