"""Inspect: replay one run's snapshots and look at what its model learned."""
import streamlit as st

from aelab.ui import frame, inspect, state, views

frame.ensure()
st.title("Inspect a run")
run = views.pick_run("inspect.run", state.store().list())
if run is None:
    st.stop()
cfg = run.config
st.caption(f"{cfg.name or 'custom'}: {cfg.model.kind} {','.join(map(str, cfg.model.layers))}"
           f"{' tied' if cfg.model.tied else ''}, {cfg.train.strategy}, data {cfg.data.name}, "
           f"status {run.status().get('status')}")
st.subheader("Replay")
inspect.replay(run)
model = state.model_of(run)
if model is None:
    st.info("The trained weights appear here when the run ends (filters, interpolation, denoising, worst cases).")
    st.stop()
data = state.dataset(cfg)
image_data = data.kind == "image"
if image_data:
    st.subheader("First-layer filters")
    inspect.filters(run, model)
    st.subheader("Interpolation through the code")
    inspect.interpolation(run, model, data)
    st.subheader("Denoising demo")
    inspect.denoise(run, model, data)
st.subheader("Worst-reconstructed validation images")
inspect.worst(run, model, data) if image_data else st.info("image data only")
