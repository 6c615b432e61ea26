"""Home's Examples section: the finished example runs (aelab/examples.py) with links to Compare, Inspect and
the replay, and the build's progress while they are being made (it redraws itself every few seconds then)."""
from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from .. import examples
from ..metrics import VOCABULARY, header
from . import state, views

ENV = "AELAB_EXAMPLES"  # "0": the app never builds the examples in the background (the tests set it)
REFRESH_S = 3.0
ROW_PX = 35  # st.dataframe's row height
STATE_TEXT = {"done": "ready", "building": "building…", "missing": "not built yet", "failed": "failed"}


@st.cache_resource(show_spinner=False)
def _builder(root: str):
    if os.environ.get(ENV, "1") == "0":
        return None
    return examples.start_background(root)


def start() -> None:
    """Once per app start: build what is missing in the background (lowest priority; never waits for it)."""
    _builder(str(state.runs_dir()))


def links(s: examples.State, done: dict[str, examples.State]) -> dict:
    """Compare (the race's arms, or the example beside its `versus`), Inspect and the replay (presentation
    mode) of a finished example; None where there is nothing to link to yet."""
    if s.state != "done":
        return {"compare": None, "inspect": None, "replay": None}
    first = s.run_ids[0]
    other = done.get(s.example.versus)
    pair = s.run_ids if s.race_id else (first, other.run_ids[0]) if other else None
    return {"compare": f"Compare?runs={','.join(pair)}" if pair else None,
            "inspect": f"Inspect?run={first}",
            "replay": f"Train?race={s.race_id}&present=1" if s.race_id else f"Inspect?run={first}&present=1"}


def test_errors(s: examples.State) -> str | None:
    """The full network's test error of a finished example ("greedy vs end-to-end" for the race)."""
    if s.state != "done":
        return None
    runs = [state.get_run(i) for i in s.run_ids]
    errs = [((r.summary() if r else None) or {}).get("test_full_sq_err") for r in runs]
    return " vs ".join(views.fmt(e, ".2f") for e in errs)


def table(states: list[examples.State], builder_on: bool) -> pd.DataFrame:
    done = {s.example.name: s for s in states if s.state == "done"}
    rows = []
    for s in states:
        status = "in line" if builder_on and s.state == "missing" else STATE_TEXT[s.state]
        rows.append({"example": s.example.title, "status": status, "test error": test_errors(s), **links(s, done)})
    return pd.DataFrame(rows)


def progress_line(states: list[examples.State], builder_on: bool) -> tuple[float, str] | None:
    """(fraction, "building 3 of 11: ...") while examples are being built, else None."""
    now = next((s for s in states if s.state == "building"), None)
    if now is None and not builder_on:
        return None
    n_done = sum(s.state == "done" for s in states)
    what = f": {now.example.title}, {now.fraction:.0%}" if now else ""
    waiting = " (waiting: your runs go first)" if now and "goes first" in now.message else ""
    return ((n_done + (now.fraction if now else 0)) / len(states),
            f"building {min(n_done + 1, len(states))} of {len(states)}{what}{waiting}…")


def section() -> None:
    root = state.runs_dir()
    live = examples.building(root) or any(s.state == "building" for s in examples.statuses(root))
    st.fragment(run_every=REFRESH_S if live else None)(_draw)()


def _draw() -> None:
    root = state.runs_dir()
    states = examples.statuses(root)
    st.subheader("Examples: finished runs of every preset, and a race")
    builder_on = examples.building(root)
    line = progress_line(states, builder_on)
    if line is None and not any(s.state == "done" for s in states):
        st.caption("No example runs yet: `python -m aelab examples` builds them (the app builds them in the "
                   f"background when it starts, unless {ENV}=0).")
        return
    if line:
        st.progress(line[0], text=line[1])
    st.dataframe(table(states, builder_on), hide_index=True, key="home_examples", width="stretch", placeholder="",
                 height=ROW_PX * (len(states) + 1) + 3, column_config={  # every row, no inner scroll bar
        "example": st.column_config.TextColumn("example", width="large"),
        "test error": st.column_config.TextColumn(
            "test error", help=f"{header('test_full_sq_err')}: {VOCABULARY['test_full_sq_err'].definition} "
            "(a race: greedy vs end-to-end)"),
        "compare": st.column_config.LinkColumn("open", display_text="Compare", width="small",
                                               help="a race: its two arms; else beside the example it differs "
                                                    "from in one idea"),
        "inspect": st.column_config.LinkColumn("", display_text="Inspect", width="small"),
        "replay": st.column_config.LinkColumn("", display_text="Replay", width="small",
                                              help="presentation mode: loss, reconstructions and code map on "
                                                   "one screen")})
    st.caption("Built once at the lowest priority (your runs always go first), each with its preset's own config "
               "on mnist5k; they are ordinary runs in the run store.")
