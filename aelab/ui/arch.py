"""The architecture diagram of the configured stack with tied vs untied parameter counts."""
from __future__ import annotations

import dataclasses

import streamlit as st

from .. import viz
from ..config import RunConfig


@st.cache_data(show_spinner=False, max_entries=64)
def param_counts(cfg_json: str, input_shape: tuple) -> tuple[int, int]:
    """(params as configured, params with the other tied setting)."""
    import json

    from ..model import build_model, count_params

    cfg = RunConfig.from_dict(json.loads(cfg_json))
    other = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, tied=not cfg.model.tied))
    return count_params(build_model(cfg, input_shape)), count_params(build_model(other, input_shape))


def arch_view(cfg: RunConfig, input_shape: tuple) -> None:
    import json

    p, q = param_counts(json.dumps(cfg.to_dict(), sort_keys=True), tuple(input_shape))
    m = cfg.model
    st.plotly_chart(viz.arch_figure(m.kind, tuple(input_shape), m.layers, m.tied, p, q), key="arch")
