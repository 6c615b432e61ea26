"""Compare: two or more runs on the same images, the same axes and the same metrics."""
import streamlit as st

from aelab import viz
from aelab.ui import compare, state

st.title("Compare runs")
runs = {r.id: r for r in state.store().list()}
if len(runs) < 2:
    st.info("Compare needs at least two runs: launch a couple on the Train page "
            "(e.g. the same layers greedy vs end-to-end, or tied vs untied).")
    st.stop()
compare.preselect(runs)
if sweep_runs := compare.sweep_picker(runs):  # a sweep's cells, all at once
    st.session_state["compare.runs"] = sweep_runs
picked = st.multiselect("runs to compare", list(runs), key="compare.runs", format_func=lambda i: compare.label(runs[i]))
compare.remember(picked)
sel = [state.get_run(i) for i in picked]
if len(sel) < 2:
    st.warning("Pick at least two runs.")
    st.stop()
axis = st.radio("x axis", viz.AXES, key="compare.x", horizontal=True, format_func=viz.X_LABELS.get,
                index=viz.AXES.index(compare.default_axis(sel)))
compare.seed_groups(sel, axis)  # the answer first, when the runs form groups (a sweep)
curves = {compare.label(r): r.epochs() for r in sel}
st.plotly_chart(viz.compare_figure(curves, axis), key="cmp_curves")
df = compare.table(sel)
st.dataframe(df, hide_index=True, key="cmp_table")
st.caption(compare.glossary())
grid_images = compare.grids(sel)
compare.exports(df, curves, axis, grid_images)
st.subheader("Reconstructions of the same validation images")
for col, (name, g) in zip(st.columns(len(grid_images) or 1), grid_images.items()):
    col.image(g, caption=name, width="stretch")
st.subheader("Code maps on aligned axes")
compare.maps(sel)
