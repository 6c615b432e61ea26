"""The architecture diagram of the configured stack with tied vs untied parameter counts."""
from __future__ import annotations

import streamlit as st

from .. import viz
from ..arch import param_count
from ..config import RunConfig


def arch_view(cfg: RunConfig, input_shape: tuple) -> None:
    m = cfg.model
    p, q = param_count(cfg, input_shape), param_count(cfg, input_shape, tied=not m.tied)
    st.plotly_chart(viz.arch_figure(m.kind, tuple(input_shape), m.layers, m.tied, p, q), key="arch")
