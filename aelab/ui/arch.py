"""The architecture diagram of the configured stack with tied vs untied parameter counts."""
from __future__ import annotations

import streamlit as st

from .. import viz
from ..arch import param_count
from ..config import RunConfig

ARCH_PX = 560  # at most: a drawing of 480 units at about its own size (narrower columns shrink it)


def arch_view(cfg: RunConfig, input_shape: tuple) -> None:
    m = cfg.model
    p, q = param_count(cfg, input_shape), param_count(cfg, input_shape, tied=not m.tied)
    with st.container(key="arch"):
        st.image(viz.arch_svg(m.kind, tuple(input_shape), tuple(m.layers), m.tied, p, q), width=ARCH_PX)
