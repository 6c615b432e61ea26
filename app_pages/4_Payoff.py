"""Payoff: does unsupervised pretraining pay off when labels are scarce? Test accuracy vs number of labels."""
import streamlit as st

from aelab.ui import payoff as ui

st.title("Does pretraining pay off?")
st.caption("Reuse a trained autoencoder's encoder as the first layers of a classifier trained on a few labels, "
           "frozen (its codes + logistic regression) or fine-tuned, and compare with the same network from scratch "
           "(default init; BatchNorm + Kaiming, the 'modern' recipe) and with PCA features + logistic regression. "
           "Every method is trained to its own optimum under one rule and scored on the test split.")
ui.rule_note()
runs = ui.trained_runs()
if not runs:
    st.info("No trained autoencoder yet: train one on the Train page (e.g. the tied-stacked or keras-deep preset).")
    st.stop()
cfg = ui.settings(runs)
if cfg is not None:
    ui.launch(cfg)
d = ui.job_dir()
if d is not None:
    ui.progress(d)
    ui.results(d)
