"""Inspect: replay one run's snapshots and look at what its model learned."""
import streamlit as st

from aelab.runs import Unreadable
from aelab.ui import inspect, present, replay, state, views

if present.enabled():  # a projector: the replay only, on one screen
    present.style()
    present.toggle()
else:
    st.title("Inspect a run")
run = views.pick_run("inspect.run", state.store().list())
if run is None:
    st.stop()
if present.enabled():
    present.replay(run)
    st.stop()
if damage := run.damage():
    st.error(f"This run is damaged: {damage}. What still reads is shown.")
try:
    cfg = run.config
except Unreadable:  # without its config nothing can be rebuilt; the error above says why
    st.stop()
st.caption(f"{cfg.name or 'custom'}: {cfg.model.kind} {','.join(map(str, cfg.model.layers))}"
           f"{' tied' if cfg.model.tied else ''}, {cfg.train.strategy}, data {cfg.data.name}, "
           f"status {run.status().get('status')}")
st.subheader("Replay")
inspect.replay(run)
inspect.animation(run)
replay.slides(run, run.id)
st.subheader("Take it home")
views.take_home(cfg, run.status().get("input_shape"), run, key="inspect.code")
model = views.model_or_note(run)
if model is None:
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
