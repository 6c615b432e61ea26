"""Train: build an autoencoder, launch it in the worker, watch it learn live."""
import streamlit as st

from aelab.ui import arch, build, live, present, race, views

if present.enabled():  # a projector: the live panels only, on one screen
    present.style()
    present.toggle()
    race_id = st.query_params.get("race") or st.session_state.get("race_id")
    run_id = None if race_id else st.query_params.get("run") or st.session_state.get("run_id")
    if race_id:
        present.live_race(race_id)
    elif run_id:
        present.live_run(run_id)
    else:
        st.info("Launch a run or a race, then switch presentation mode on.")
    st.stop()
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
        st.session_state.update(run_id=run.id, race_id=None, _scroll_to_panel=True)
        st.query_params.pop("race", None)
        st.query_params["run"] = run.id
    if race_id := race.launcher(cfg, build.data_facts(cfg)["shape"] if cfg is not None else None):
        st.session_state.update(race_id=race_id, run_id=None, _scroll_to_panel=True)
        st.query_params.pop("run", None)
        st.query_params["race"] = race_id
race_id = st.query_params.get("race") or st.session_state.get("race_id")
run_id = None if race_id else st.query_params.get("run") or st.session_state.get("run_id")
st.session_state.update(run_id=run_id, race_id=race_id)
build.sync_url(cfg, run_id, race_id)
with right:
    if cfg is not None:
        arch.arch_view(cfg, build.data_facts(cfg)["shape"])
    st.caption("The URL holds these settings: share it to reproduce the setup. "
               "Stage-by-stage mode (greedy): Training tab, *pause after stage*.")
    if cfg is not None:  # these settings as code, before (or without) any run
        views.take_home(cfg, build.data_facts(cfg)["shape"], key="train.code")
if race_id or run_id:
    present.toggle()
    with st.container(key="run_panel"):
        if race_id:
            race.panel(race_id)
        else:
            live.panel(run_id)
    if st.session_state.pop("_scroll_to_panel", False):  # just launched: bring the live panel into view
        views.scroll_to("run_panel")
else:
    st.info("Set up a model on the left (or pick a preset) and press **Launch**.")
