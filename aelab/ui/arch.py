"""The architecture diagram of the configured stack with tied vs untied parameter counts."""
from __future__ import annotations

import streamlit as st

from .. import viz
from ..arch import param_count
from ..config import RunConfig


def arch_view(cfg: RunConfig, input_shape: tuple) -> None:
    m = cfg.model
    p, q = param_count(cfg, input_shape), param_count(cfg, input_shape, tied=not m.tied)
    st.plotly_chart(_figure(m.kind, tuple(input_shape), tuple(m.layers), m.tied, p, q), key="arch")


@st.cache_resource(show_spinner=False, max_entries=64)  # shared, never changed: st.plotly_chart only reads it
def _figure(kind: str, input_shape: tuple, layers: tuple, tied: bool, p: int, q: int):
    """The diagram, built once per architecture: building it took ~0.1 s of every rerun of the Train page,
    including the one a click on Launch makes before the live panel is drawn."""
    return viz.arch_figure(kind, input_shape, layers, tied, p, q)
