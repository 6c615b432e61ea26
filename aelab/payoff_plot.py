"""Figures of a payoff result: accuracy vs number of labels (log x), one line per series, ±sd bands.

Plotly for the page, matplotlib for the exported PNG (no browser needed). No streamlit here.
"""
from __future__ import annotations

import io

import plotly.graph_objects as go

from .viz import PALETTE


def _series(table: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in sorted(table, key=lambda r: r["budget"]):
        out.setdefault(r["series"], []).append(r)
    return out


def payoff_figure(table: list[dict], title: str = "accuracy vs number of labels", height: int = 520) -> go.Figure:
    fig = go.Figure()
    for i, (name, rows) in enumerate(_series(table).items()):
        color = PALETTE[i % len(PALETTE)]
        x = [r["budget"] for r in rows]
        mean = [100 * r["accuracy_mean"] for r in rows]
        sd = [100 * r["accuracy_sd"] for r in rows]
        fill = _rgba(color, 0.15)
        fig.add_trace(go.Scatter(x=x + x[::-1], y=[m + s for m, s in zip(mean, sd)] + [m - s for m, s in
                                 zip(mean[::-1], sd[::-1])], mode="lines", fill="toself", fillcolor=fill, line=dict(width=0),
                                 hoverinfo="skip", showlegend=False, legendgroup=name))
        fig.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers", name=name, legendgroup=name,
                                 line=dict(color=color, width=3, dash="dot" if name.startswith("PCA") else "solid"),
                                 error_y=dict(type="data", array=sd, visible=False),
                                 hovertemplate="%{x} labels: %{y:.1f}%<extra>" + name + "</extra>"))
    fig.update_layout(title=title, height=height, xaxis_title="labelled training examples (log scale)",
                      yaxis_title="test accuracy (%)", legend=dict(font=dict(size=13)),
                      margin=dict(l=60, r=20, t=60, b=40), font=dict(size=15))
    fig.update_xaxes(type="log")
    return fig


def payoff_png(table: list[dict], title: str = "accuracy vs number of labels") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
    for i, (name, rows) in enumerate(_series(table).items()):
        x = [r["budget"] for r in rows]
        mean = [100 * r["accuracy_mean"] for r in rows]
        sd = [100 * r["accuracy_sd"] for r in rows]
        color = PALETTE[i % len(PALETTE)]
        ax.plot(x, mean, "o-", color=color, label=name, lw=2)
        ax.fill_between(x, [m - s for m, s in zip(mean, sd)], [m + s for m, s in zip(mean, sd)], color=color, alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("labelled training examples (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
