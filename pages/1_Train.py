"""Train: build an autoencoder, launch it in the worker, watch it learn live."""
import streamlit as st

from aelab.ui import arch, build, frame, live, views

frame.ensure()
st.title("Train")
left, right = st.columns([2, 3], gap="large")
with left:
    cfg, err = build.build_panel()
    if err:
        st.error(err)
    elif note := views.kl_note(cfg):
        st.info(note)
    if st.button("Launch", key="launch", type="primary", disabled=cfg is None, width="stretch",
                 help="start training in the background worker"):
        run = live.launch(cfg)
        st.session_state["run_id"] = run.id
        st.query_params["run"] = run.id
run_id = st.query_params.get("run") or st.session_state.get("run_id")
st.session_state["run_id"] = run_id
build.sync_url(cfg, run_id)
with right:
    if cfg is not None:
        arch.arch_view(cfg, build.data_facts(cfg)["shape"])
    st.caption("The URL holds these settings: share it to reproduce the setup. "
               "Stage-by-stage mode (greedy): Training tab, *pause after stage*.")
if run_id:
    live.panel(run_id)
else:
    st.info("Set up a model on the left (or pick a preset) and press **Launch**.")
