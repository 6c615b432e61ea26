"""Widgets and panels of the Payoff page: pick runs and budgets, launch the grid, show the result."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from ..payoff import DEFAULT_BUDGETS, PayoffConfig, TrainingRule, job_status, payoff_dir, start_payoff
from ..payoff.job import load_config
from ..payoff.stats import reading
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


def rule_note() -> None:
    with st.expander("the training rule (every method at its own optimum; scored on the test split)"):
        st.markdown(TrainingRule().describe() + " Accuracy is measured on the **test** split; the best scratch "
                    "baseline for the paired difference is picked on validation accuracy. Doubling the step budget "
                    "and patience moves no method's mean accuracy by more than 1 point (`scripts/bench_payoff.py`).")


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
                              help="paired repeats: every method sees the same label draw and seed in a repeat; "
                                   "bands = ±1 sd, intervals = 95 % t over repeats")
    max_steps = c3.number_input("max steps", 100, 30_000, TrainingRule.max_steps, step=300, key="payoff.max_steps",
                                help="step budget of the networks (scaled to the labelled set; they stop earlier "
                                     "on a training-loss plateau)")
    lsuv = c4.checkbox("add LSUV init", key="payoff.lsuv", help="also train scratch + BN with LSUV initialisation")
    try:
        return PayoffConfig.make([str(by_id[i].dir) for i in picked], budgets=tuple(sorted(budgets, key=lambda b: b or 1e9)),
                                 repeats=int(repeats), max_steps=int(max_steps), lsuv=lsuv)
    except ValueError as e:
        st.error(str(e))
        return None


def launch(cfg: PayoffConfig) -> None:
    out = payoff_dir(cfg, state.runs_dir())
    if job_status(out)["status"] != "none":
        st.session_state["payoff.job"] = out.name  # cached, running or interrupted: show it, never start twice
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


def _rerun(d: Path, why: str) -> None:
    st.warning(why)
    if st.button("Re-run", key="payoff.rerun"):
        start_payoff(load_config(d), d.parent.parent)
        st.rerun()


@st.fragment(run_every=1.0)
def progress(d: Path) -> None:
    p = job_status(d)
    if p["status"] == "completed":
        if not st.session_state.get(f"payoff.shown.{d.name}"):
            st.session_state[f"payoff.shown.{d.name}"] = True
            st.rerun()
        return
    if p["status"] in ("failed", "interrupted"):
        _rerun(d, f"the experiment {p['status']}: {p.get('message')}")
        return
    done, total = p.get("done", 0), p.get("total") or 0
    st.progress(done / total if total else 0.0, text=f"{done}/{total or '?'} cells · {p.get('message', '')}")


def _paired_table(paired: list[dict]) -> pd.DataFrame:
    pt = lambda v: None if v is None else round(100 * v, 1)  # noqa: E731
    return pd.DataFrame([{"pretrained series": p["series"], "labels": p["budget"], "best scratch (by validation)":
                          p["baseline"], "difference (points)": pt(p["diff_mean"]), "95 % low": pt(p["ci_low"]),
                          "95 % high": pt(p["ci_high"]), "reading": p["verdict"]} for p in paired])


def results(d: Path) -> None:
    res = read_json(d / "results.json")
    if res is None:
        return
    st.success(reading(res["paired"]))  # recomputed: cached results keep up with the wording
    title = f"test accuracy vs labels · {res['dataset']}"
    st.plotly_chart(payoff_figure(res["table"], title), key="payoff.fig")
    df = pd.DataFrame(res["table"])
    df["accuracy (%)"] = (100 * df.accuracy_mean).round(1).astype(str) + " ± " + (100 * df.accuracy_sd).round(1).astype(str)
    st.caption("test accuracy, mean ± sd over repeats (columns = labelled examples)")
    st.dataframe(df.pivot(index="series", columns="budget", values="accuracy (%)"), key="payoff.table")
    st.caption("paired difference pretrained − best scratch baseline (same label draws and seeds), 95 % t-interval")
    st.dataframe(_paired_table(res["paired"]), key="payoff.paired", hide_index=True)
    with st.expander("training cost per cell: optimiser steps (or L-BFGS iterations) and seconds"):
        st.dataframe(df.pivot(index="series", columns="budget", values="steps_mean").round(0))
        st.dataframe(df.pivot(index="series", columns="budget", values="seconds_mean").round(2))
    c1, c2 = st.columns(2)
    c1.download_button("Export table (CSV)", (d / "results.csv").read_bytes(), "payoff.csv", "text/csv",
                       key="payoff.csv")
    c2.download_button("Export figure (PNG)", payoff_png(res["table"], title), "payoff.png", "image/png",
                       key="payoff.png")
