"""The Home page: what the lab is, the example runs, the preset gallery, recent runs (the examples aside)."""
from __future__ import annotations

import streamlit as st

from ..examples import example_run_ids
from ..metrics import VOCABULARY, header
from ..presets import PRESETS
from . import examples, state, views


def page() -> None:
    st.title("aelab: a visual lab for autoencoders")
    st.markdown(
        "Build an autoencoder (deep or stacked, tied or untied, dense or convolutional), pick a regulariser "
        "(noise, sparsity, contraction) and a strategy (end-to-end or greedy layer-wise).  \n"
        "Press **Launch** and watch it learn: loss curves, reconstructions and a 2-D map of the code layer, live.  \n"
        "Then compare runs side by side and inspect what a model learned; everything runs offline on bundled MNIST.")
    examples.section()
    st.subheader("Presets: one per classic experiment")
    cols = st.columns(3)
    for i, p in enumerate(PRESETS.values()):
        with cols[i % 3].container(border=True):
            st.markdown(f"**{p.title}**  \n{p.idea}")
            st.page_link(views.TRAIN_PAGE, label=f"Open {p.name} in Train", icon=":material/play_arrow:",
                         query_params={"preset": p.name})
    st.subheader("Recent runs")
    shown_above = example_run_ids(state.runs_dir())
    runs = [r for r in state.store().list() if r.id not in shown_above][:12]
    if not runs:
        st.info("No runs yet besides the examples: open a preset above and press Launch.")
        return
    table = views.runs_table(runs)
    table["train"] = [f"Train?run={r.id}" for r in runs]  # one list, each row linking to its pages
    table["inspect"] = [f"Inspect?run={r.id}" for r in runs]
    shown = ["run", "train", "inspect", "status"] + (["damage"] if table["damage"].notna().any() else []) + \
        ["strategy", "layers", header("test_full_sq_err")]  # fits a 1280-px screen; Compare has the rest
    st.dataframe(table, hide_index=True, key="home_runs", column_order=shown, width="stretch", column_config={
        "train": st.column_config.LinkColumn("open", display_text="Train", width="small"),
        "inspect": st.column_config.LinkColumn("", display_text="Inspect", width="small"),
        "layers": st.column_config.TextColumn("layers", width="small"),
        "damage": st.column_config.TextColumn("damage", help="why a damaged run is listed as damaged"),
        header("test_full_sq_err"): st.column_config.NumberColumn(
            "test error", format="%.2f", help=f"{header('test_full_sq_err')}: {VOCABULARY['test_full_sq_err'].definition}")})
