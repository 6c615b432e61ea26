"""Sweep: the Train page's settings over a grid of values × seeds, run in the background, read as groups."""
import streamlit as st

from aelab import sweep as S
from aelab.ui import state, sweeps

st.title("Sweep")
base, err = sweeps.base_config()
if base is None:
    st.error(f"The Train page's settings are not valid: {err}. Fix them there first.")
    st.stop()
st.caption(f"Base: the Train page's settings ({base.name or 'custom'} · {base.train.strategy} · "
           f"{','.join(map(str, base.model.layers))} on {base.data.name}); change them there. One run per cell "
           "and seed proves little: groups of seeds show how much a result moves by chance.")
left, right = st.columns([2, 3], gap="large")
with left:
    plan, where_wrong = sweeps.grid_form(base)
    cells, sweep_id, why = sweeps.preview(base, plan)
    why = why or where_wrong
    if why:
        st.error(why)
    else:
        n, seeds = len(cells), plan.seeds
        st.caption(f"{n} cell{'s' * (n > 1)}" + (f", {plan.trials} trials each, then {seeds} seeds at the best "
                                                 "setting" if plan.tune else
                                                 f" ({len(cells) // seeds} settings × {seeds} seeds)"))
    if st.button("Run sweep", type="primary", disabled=why is not None, key="sweep.run", width="stretch",
                 help="runs in the background (the job queue or Ray); asking again resumes an unfinished sweep"):
        sweeps.launch(base, sweep_id, plan)
        st.session_state["sweep.shown"] = sweep_id
        st.query_params["sweep"] = sweep_id
with right:
    known = [s.id for s in S.sweeps(state.store())]
    shown = st.query_params.get("sweep") or st.session_state.get("sweep.shown")
    if shown not in known and not sweeps.driver_alive(shown or ""):
        shown = known[0] if known else None
    if shown:
        if len(known) > 1:
            shown = st.selectbox("sweep", known, index=known.index(shown) if shown in known else 0, key="sweep.pick")
        sweeps.panel(shown)
    else:
        st.info("Define a grid on the left and press **Run sweep**; its cells appear here as they train.")
