"""The Train page's race: launch two arms of the current config with one click and watch them side by side
on the compute axis (the full network's error at equal work), on the same probe images, with aligned maps."""
from __future__ import annotations

import numpy as np
import streamlit as st

from .. import race, viz
from ..export import RaceReplay
from ..metrics import header
from ..paths import check_data_paths
from ..runs import LIVE, Run
from . import compare, live, state, views
from . import replay as replays


def launcher(cfg, input_shape) -> str | None:
    """The race picker and its button; returns the new race's id when launched."""
    kind = st.selectbox("race", list(race.KINDS), format_func=race.KINDS.get, key="race.kind",
                        help="train the same network two ways at once and watch both on shared axes")
    problem = race.why_not(cfg, kind) if cfg is not None else "fix the settings first"
    if st.button("Launch race", key="launch_race", disabled=problem is not None, width="stretch",
                 help=problem or "both runs start together and share the cores"):
        try:
            r = race.start(state.pool(), check_data_paths(cfg, state.runs_dir()), kind, input_shape)
        except ValueError as e:
            st.error(str(e))
            return None
        return r.id
    if problem and cfg is not None:
        st.caption(problem)
    return None


def load(race_id: str) -> tuple[race.Race, list[Run]] | None:
    try:
        r = race.load(state.runs_dir(), race_id)
    except KeyError:
        st.warning(f"no race {race_id!r} in {state.runs_dir()}")
        return None
    runs = [state.get_run(i) for i in r.run_ids]
    if any(x is None for x in runs):
        st.warning(f"race {race_id}: one of its runs is gone from the store")
        return None
    return r, runs


def panel(race_id: str) -> None:
    """Both arms live: progress, curves and verdict poll every second while either is live, the grids and maps
    as often as snapshots are written."""
    loaded = load(race_id)
    if loaded is not None:
        live.poll(loaded[1], _draw, *loaded, slow=_draw_snapshots)


def _draw(r: race.Race, runs: list[Run]) -> None:
    statuses = [x.status() for x in runs]
    st.markdown(f"#### Race `{r.id}`: {race.KINDS[r.kind]}")
    cols = st.columns(len(runs))
    for col, label, x, s in zip(cols, r.labels, runs, statuses):
        with col:
            st.markdown(f"**{label}** · run `{x.id}`")
            live.progress(x, s, x.epochs())
            if s.get("status") in ("failed", "diverged", "interrupted"):
                st.error(s.get("message") or s.get("status"))
    if any(s.get("status") in LIVE for s in statuses) and st.button("Stop race", key="stop_race"):
        for x in runs:
            x.request("stop")
        st.rerun()
    curves = {label: x.epochs() for label, x in zip(r.labels, runs)}
    st.plotly_chart(viz.compare_figure(curves, "gflop", height=380), key="race_curves")
    st.caption(verdict(r, runs, ended=not any(s.get("status") in LIVE for s in statuses)))


def _draw_snapshots(r: race.Race, runs: list[Run]) -> None:
    shots = [(x, x.latest_snapshot()) for x in runs]
    if all(snap is not None for _, snap in shots):  # the same probe images in both: same data, same seed
        for col, label, (x, snap) in zip(st.columns(len(runs)), r.labels, shots):
            grid, caption = views.recon_image(x, snap, x.probe())
            if grid is not None:
                col.image(grid, caption=f"{label}: {caption}", width="stretch")
    compare.maps(runs)
    if not any(x.status().get("status") in LIVE for x in runs):  # ended: the race again, as an animation or slides
        both = RaceReplay(tuple(runs), r.labels)
        if st.toggle("replay the race (in the browser, 10 frames/s: both arms at equal compute)", key="race.replay"):
            replays.player(both, key="race_replay")
        replays.slides(both, r.id, key="race_dl")


def verdict(r: race.Race, runs: list[Run], ended: bool | None = None) -> str:
    """The race's reading: at the end, each arm's final full-network validation error (equal total compute by
    construction); while it runs, both arms at the same compute (the one further ahead read off its curve at
    the other's GFLOP by linear interpolation)."""
    curves = [[(e["gflop"], e["val_full_sq_err"]) for e in x.epochs()
               if e.get("gflop") is not None and e.get("val_full_sq_err") is not None] for x in runs]
    if not all(curves):
        return "The full network's validation error appears for each arm at its first full-network evaluation."
    if ended is None:
        ended = all(x.status().get("status") not in LIVE for x in runs)
    at = min(c[-1][0] for c in curves)
    a, b = ([c[-1][1] for c in curves] if ended else
            [float(np.interp(at, [g for g, _ in c], [v for _, v in c])) for c in curves])
    lead = r.labels[0] if a < b else r.labels[1]
    where = "at the end" if ended else f"at equal compute so far ({at:.3g} GFLOP)"
    test = [(x.summary() or {}).get("test_full_sq_err") for x in runs]
    tests = (f"; on the test split {views.fmt(test[0], '.4g')} vs {views.fmt(test[1], '.4g')}"
             if ended and all(t is not None for t in test) else "")
    return (f"{header('val_full_sq_err')} {where}: {r.labels[0]} {a:.4g} vs {r.labels[1]} {b:.4g}: "
            f"**{lead}** leads by {abs(a - b):.3g}{tests}. One seed each: a sweep over seeds says whether it holds.")
