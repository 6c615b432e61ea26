"""Widgets and panels of the Payoff page: pick runs and budgets, launch the grid, show the result."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from ..payoff import DEFAULT_BUDGETS, PayoffConfig, payoff_dir, reading, start_payoff
from ..payoff_plot import payoff_figure, payoff_png
from ..runs import Run, read_json
from . import state

BUDGET_CHOICES = (10, 30, 100, 300, 1000, 3000, 0)


def _budget_name(b: int) -> str:
    return "all" if b == 0 else str(b)


def trained_runs() -> list[Run]:
    return [r for r in state.store().list()
            if r.has_weights() and (r.summary() or {}).get("status") in ("completed", "stopped")
            and r.damage() is None]  # a damaged run's encoder cannot be trusted (or even rebuilt)


def settings(runs: list[Run]) -> PayoffConfig | None:
    """The experiment's settings from the widgets; None (with the reason shown) when they are invalid."""
    by_id = {r.id: r for r in runs}
    label = lambda i: f"{by_id[i].config.name or 'custom'} · {by_id[i].config.train.strategy} · {i}"  # noqa: E731
    picked = st.multiselect("pretrained autoencoders (runs)", list(by_id), default=list(by_id)[:1],
                            key="payoff.runs", format_func=label,
                            help="each run's encoder becomes the first layers of a classifier (frozen / fine-tuned)")
    c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
    budgets = c1.multiselect("label budgets", BUDGET_CHOICES, default=list(DEFAULT_BUDGETS), key="payoff.budgets",
                             format_func=_budget_name, help="labelled examples drawn class-balanced from the train split")
    repeats = c2.number_input("repeats (seeds)", 1, 10, 3, key="payoff.repeats",
                              help="each cell is trained this many times on different label draws; bands = ±1 sd")
    steps = c3.number_input("optimiser steps", 50, 5000, 300, step=50, key="payoff.steps",
                            help="the same optimiser budget for every method")
    lsuv = c4.checkbox("add LSUV init", key="payoff.lsuv", help="also train scratch + BN with LSUV initialisation")
    try:
        return PayoffConfig.make([str(by_id[i].dir) for i in picked], budgets=tuple(sorted(budgets, key=lambda b: b or 1e9)),
                                 repeats=int(repeats), steps=int(steps), lsuv=lsuv)
    except ValueError as e:
        st.error(str(e))
        return None


def launch(cfg: PayoffConfig) -> None:
    out = payoff_dir(cfg, state.runs_dir())
    if (out / "results.json").exists() or read_json(out / "progress.json", {}).get("status") == "running":
        st.session_state["payoff.job"] = out.name  # cached, or already running: never start it twice
        return
    if st.button("Run the experiment", type="primary", key="payoff.launch"):
        out, _ = start_payoff(cfg, state.runs_dir())
        st.session_state["payoff.job"] = out.name
        st.query_params["payoff"] = out.name


def job_dir() -> Path | None:
    name = st.session_state.get("payoff.job") or st.query_params.get("payoff")
    if not name or "/" in name or ".." in name:
        return None
    d = state.runs_dir() / "payoff" / name
    return d if d.exists() else None


@st.fragment(run_every=1.0)
def progress(d: Path) -> None:
    p = read_json(d / "progress.json", {})
    if (d / "results.json").exists():
        if not st.session_state.get(f"payoff.shown.{d.name}"):
            st.session_state[f"payoff.shown.{d.name}"] = True
            st.rerun()
        return
    if p.get("status") == "failed":
        st.error(f"the experiment failed: {p.get('message')}")
        return
    done, total = p.get("done", 0), p.get("total") or 0
    st.progress(done / total if total else 0.0, text=f"{done}/{total or '?'} cells · {p.get('message', '')}")


def results(d: Path) -> None:
    res = read_json(d / "results.json")
    if res is None:
        return
    st.success(reading(res["table"]))  # recomputed: cached results keep up with the wording
    st.plotly_chart(payoff_figure(res["table"], f"accuracy vs labels · {res['dataset']}"), key="payoff.fig")
    df = pd.DataFrame(res["table"])
    df["accuracy (%)"] = (100 * df.accuracy_mean).round(1).astype(str) + " ± " + (100 * df.accuracy_sd).round(1).astype(str)
    wide = df.pivot(index="series", columns="budget", values="accuracy (%)")
    st.dataframe(wide, key="payoff.table")
    cost = df.pivot(index="series", columns="budget", values="seconds_mean").round(2)
    with st.expander("training cost per cell (seconds)"):
        st.dataframe(cost)
    c1, c2 = st.columns(2)
    c1.download_button("Export table (CSV)", (d / "results.csv").read_bytes(), "payoff.csv", "text/csv",
                       key="payoff.csv")
    c2.download_button("Export figure (PNG)", payoff_png(res["table"], f"accuracy vs labels · {res['dataset']}"),
                       "payoff.png", "image/png", key="payoff.png")
