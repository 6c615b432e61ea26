"""Figures and image arrays for the lab: plotly figures, image grids, matplotlib PNG export.

Every function takes plain data (metric records, numpy arrays, configs) and returns a figure, an
array or PNG bytes, so the same views work in the app, a notebook or a script. No streamlit here.
"""
from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .metrics import header, label

if TYPE_CHECKING:  # torch is imported where it is used: reading runs and drawing pages need none
    import torch

STAGE_ALPHA = 0.07
STAGE_FONT_PX = 12
LOSS_PLOT_PX = 740  # the loss chart's plotting width on the Train page at 1280 px (measured in Chromium)
CHAR_EM = 0.6  # a character's mean width in ems in Plotly's sans-serif font, about
STAGE_FILL = (f"rgba(99,110,250,{STAGE_ALPHA})", f"rgba(239,85,59,{STAGE_ALPHA})")
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
MIN_CELL_PX = 56  # small images (8x8 digits) are blown up so a grid stays readable
AXES = ("gflop", "epoch", "samples", "seconds")
X_LABELS = {a: label(a) for a in AXES}


# ----------------------------------------------------------------------------- images

def upscale(images: np.ndarray, min_px: int = MIN_CELL_PX) -> np.ndarray:
    """Nearest-neighbour upscale (N, C, H, W) so that H >= min_px (pixels stay crisp)."""
    f = max(1, math.ceil(min_px / images.shape[-2]))
    return images.repeat(f, axis=-2).repeat(f, axis=-1) if f > 1 else images


def image_grid(images: np.ndarray, nrow: int = 8, pad: int = 2) -> np.ndarray:
    """uint8 (N, C, H, W) -> one (H', W', 3) uint8 grid image, white gaps between cells.

    torchvision's make_grid, in numpy (tests/test_viz.py checks they agree): the live view draws a grid every
    second in the server, and importing torchvision there pulled in torch and torch._dynamo, ~5 CPU-seconds at a
    run's first draw, beside its training (a sampling profile of the server, scripts/bench_ui)."""
    t = upscale(np.asarray(images))
    if t.shape[1] == 1:
        t = np.repeat(t, 3, axis=1)  # grey images as RGB
    if len(t) == 1:
        return np.ascontiguousarray(t[0].transpose(1, 2, 0))  # make_grid returns a single image unframed
    cols = min(nrow, len(t))
    rows = math.ceil(len(t) / cols)
    h, w = t.shape[2] + pad, t.shape[3] + pad
    grid = np.full((h * rows + pad, w * cols + pad, 3), 255, dtype=t.dtype)
    for k, img in enumerate(t):
        y, x = divmod(k, cols)
        grid[y * h + pad:(y + 1) * h, x * w + pad:(x + 1) * w] = img.transpose(1, 2, 0)
    return grid


def to_uint8(x) -> np.ndarray:
    """Float images in [0, 1] (tensor or array) -> uint8."""
    a = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)  # a tensor, without importing torch
    return (np.clip(a, 0, 1) * 255).round().astype(np.uint8)


# Row names of the reconstruction grid: the caption's short form, and the label drawn in the figure.
ROWS = {"clean": "clean", "noisy": "corrupted input\n(what the\nnetwork sees)",
        "denoised": "output from the\ncorrupted input", "recon": "output from the\nclean input",
        "original": "original", "reconstruction": "reconstruction"}


def recon_rows(images: np.ndarray, recon: np.ndarray, noisy: np.ndarray | None = None,
               denoised: np.ndarray | None = None, n: int = 8):
    """Labelled rows of probe images. With noise: clean / corrupted (what the network sees) / the output
    from the corrupted input (the denoising result) / the output from the clean input; the third row is
    left out for snapshots saved before it existed. Without noise: original / reconstruction.

    Returns (grid image with the row labels drawn at its left, row names). Tabular rows (N, D) are drawn
    as strips.
    """
    if noisy is not None and not np.array_equal(noisy, images):
        rows = [("clean", images), ("noisy", noisy)] + ([("denoised", denoised)] if denoised is not None else [])
        rows.append(("recon", recon))
    else:
        rows = [("original", images), ("reconstruction", recon)]
    cells = np.concatenate([_as_images(r[:n]) for _, r in rows])
    grid = image_grid(cells, nrow=min(n, len(images)))
    return label_rows(grid, [ROWS[name] for name, _ in rows]), [ROWS[name].replace("\n", " ") for name, _ in rows]


def label_rows(grid: np.ndarray, labels: list[str], pad: int = 2) -> np.ndarray:
    """The grid with a white margin at its left holding each row's label, centred on the row."""
    from PIL import Image, ImageDraw, ImageFont

    row_h = (grid.shape[0] - pad) / len(labels)  # make_grid: cell + padding per row, one more padding
    font = ImageFont.load_default(size=int(np.clip(row_h / 4.5, 10, 18)))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = 12 + max(probe.multiline_textbbox((0, 0), t, font=font)[2] for t in labels)
    margin = Image.new("RGB", (width, grid.shape[0]), "white")
    draw = ImageDraw.Draw(margin)
    for i, text in enumerate(labels):
        draw.multiline_text((width - 6, pad + i * row_h + (row_h - pad) / 2), text, fill=(40, 40, 40),
                            font=font, anchor="rm", align="right")
    return np.concatenate([np.asarray(margin), grid], axis=1)


def _as_images(a: np.ndarray) -> np.ndarray:
    if a.ndim == 4:
        return a
    return np.repeat(a[:, None, None, :], 8, axis=2)  # (N, D) tabular -> (N, 1, 8, D) strips


def filters_grid(w: torch.Tensor, n: int = 64) -> np.ndarray:
    """First-layer filters (K, C, h, w), each scaled to its own range, as a grid image."""
    w = w[:n].float()
    flat = w.reshape(len(w), -1)
    lo, hi = flat.min(1).values.view(-1, 1, 1, 1), flat.max(1).values.view(-1, 1, 1, 1)
    imgs = to_uint8((w - lo) / (hi - lo).clamp_min(1e-8))
    if imgs.shape[1] not in (1, 3):  # conv kernels on many channels: show the channel mean
        imgs = imgs.mean(1, keepdims=True).astype(np.uint8)
    return image_grid(imgs, nrow=min(16, len(imgs)))


# ----------------------------------------------------------------------------- curves

def _n_train(epochs: list[dict], fallback: int | None) -> int | None:
    if epochs:
        return max(1, round(epochs[0]["samples"] / max(epochs[0]["epoch"], 1)))
    return fallback


def xs(records: list[dict], axis: str, n_train: int | None) -> list[float | None]:
    """x values of metric records: fractional global epochs (samples / train size), or the record's own
    axis value (samples, seconds, gflop; None in runs written before that axis existed)."""
    if axis == "epoch":
        if n_train:
            return [r["samples"] / n_train for r in records]
        return [float(r["epoch"]) for r in records]
    return [r.get(axis) for r in records]


def stage_spans(epochs: list[dict], axis: str = "epoch", n_train: int | None = None) -> list[tuple]:
    """[(x0, x1, stage, stage_name)] from the epoch records' stage changes."""
    spans, x0, start_x = [], 0.0, 0.0
    for i, r in enumerate(epochs):
        x = xs([r], axis, n_train)[0]
        if i == 0 or r["stage"] != epochs[i - 1]["stage"]:
            if spans:
                spans[-1][1] = x0
            start_x = x0
            spans.append([start_x, x, r["stage"], r.get("stage_name", "")])
        spans[-1][1] = x
        x0 = x
    return [tuple(s) for s in spans]


def loss_figure(metrics: list[dict], axis: str = "epoch", n_train: int | None = None,
                height: int = 520, stage_font_px: int = STAGE_FONT_PX, plot_px: int = LOSS_PLOT_PX) -> go.Figure:
    """Two panels over one x axis: the stage's objective (train steps, train/val per epoch) and the
    validation pixel error of the full network (plus, while a greedy stage k < n trains, through stages
    1..k only); greedy stages shaded and labelled."""
    steps = [r for r in metrics if r["kind"] == "step" and r.get("loss") is not None]
    epochs = [r for r in metrics if r["kind"] == "epoch"]
    n_train = _n_train(epochs, n_train)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("objective of the stage being trained",
                                        "validation squared error per image (pixels)"))
    sx = xs(steps, axis, n_train)
    fig.add_scatter(x=sx, y=[r["loss"] for r in steps], mode="lines", name=label("loss"),
                    line=dict(color="rgba(31,119,180,0.45)", width=1), row=1, col=1)
    ex = xs(epochs, axis, n_train)
    for i, key in enumerate(("train_loss", "val_loss")):
        fig.add_scatter(x=ex, y=[r.get(key) for r in epochs], mode=line_mode(len(ex)), name=label(key),
                        line=dict(color=PALETTE[i], width=2), row=1, col=1)
    for key, color, dash in _error_curves(epochs):
        fig.add_scatter(x=ex, y=[r.get(key) for r in epochs], mode=line_mode(len(ex)), name=label(key),
                        line=dict(color=color, width=2, dash=dash), row=2, col=1)
    spans = stage_spans(epochs, axis, n_train)
    shade_stages(fig, spans, stage_font_px, plot_px, max((x for x in sx if x is not None), default=None))
    if len({s[2] for s in spans}) > 1:  # greedy stages optimise different objectives (pixel BCE, code MSE):
        ticks = log_ticks([r["loss"] for r in steps] +
                          [r.get(k) for r in epochs for k in ("train_loss", "val_loss")])
        fig.update_yaxes(type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks], title_text="log scale",
                         row=1, col=1)  # each at its own scale
    fig.update_xaxes(title_text=X_LABELS[axis], row=2, col=1)
    fig.update_layout(title=f"loss: {len(steps)} steps, {len(epochs)} epochs logged", height=height,
                      margin=dict(l=10, r=10, t=70, b=10), legend=dict(orientation="h", y=-0.15),
                      uirevision="loss", font=dict(size=14))
    return fig


MARKERS_UP_TO = 40  # points per curve; beyond, lines only: every marker is an SVG node redrawn with the chart


def line_mode(n: int) -> str:
    """A curve's Plotly mode: epochs marked while they can be told apart (and are cheap to redraw)."""
    return "lines+markers" if n <= MARKERS_UP_TO else "lines"


def log_ticks(values) -> list[float]:
    """1-2-5 ticks covering the positive values (a log axis labelling every digit crowds a short panel)."""
    v = [x for x in values if isinstance(x, (int, float)) and math.isfinite(x) and x > 0]
    if not v:
        return []
    lo, hi = math.floor(math.log10(min(v))), math.ceil(math.log10(max(v)))
    return [m * 10.0 ** e for e in range(lo, hi + 1) for m in (1, 2, 5) if min(v) / 2 <= m * 10.0 ** e <= max(v) * 2]


def _error_curves(epochs: list[dict]) -> list[tuple[str, str, str]]:
    """(key, colour, dash) of the pixel-error curves: full network always; through stages 1..k only when
    it differs from it somewhere (a greedy stage k < n), else it would draw the same line twice."""
    curves = [("val_full_sq_err", PALETTE[2], "solid")]
    if any(r.get("val_stage_sq_err") != r.get("val_full_sq_err") for r in epochs):
        curves.append(("val_stage_sq_err", PALETTE[4], "dot"))
    return curves


def _stage_words(name: str, size: str) -> str:
    """A stage name in one of three lengths: "pretraining layer 2 of 3" / "layer 2" / "L2",
    "fine-tuning" / "fine-tune" / "FT"."""
    words = name.split()
    if size == "full" or not words:
        return name
    if len(words) >= 4 and words[-4] in ("layer", "stage") and words[-2] == "of":  # "stage k of n": older runs
        return f"{words[-4]} {words[-3]}" if size == "short" else f"{words[-4][0].upper()}{words[-3]}"
    if name in ("fine-tuning", "fine-tune"):  # "fine-tune": older runs
        return "fine-tune" if size == "short" else "FT"
    return name if size == "short" else name[:2]


def stage_tags(spans: list[tuple], font_px: int = STAGE_FONT_PX, plot_px: int = LOSS_PLOT_PX,
               x_max: float | None = None) -> list[str]:
    """Each stage band's label in the longest wording that fits every band at this font and plot width (full
    names ran into each other on a 1280-px page: "pretraining layer 1 of 3pretraining layer 2 of 3"); a band
    too narrow even for "L2" goes unlabelled. x_max: the axis' right end when curves reach past the last band
    (a live run's steps run ahead of its last epoch record)."""
    if not spans:
        return []
    total = (max(spans[-1][1], x_max or spans[-1][1]) - spans[0][0]) or 1.0
    room = [(x1 - x0) / total * plot_px - 4 for x0, x1, *_ in spans]  # 4 px: the label's own padding

    def fits(text: str, px: float) -> bool:
        return len(text) * CHAR_EM * font_px <= px
    for size in ("full", "short", "tiny"):
        tags = [_stage_words(s[3], size) for s in spans]
        if all(fits(t, r) for t, r in zip(tags, room)):
            return tags
    return [t if fits(t, r) else "" for t, r in zip(tags, room)]


def shade_stages(fig: go.Figure, spans: list[tuple], font_px: int = STAGE_FONT_PX, plot_px: int = LOSS_PLOT_PX,
                 x_max: float | None = None) -> None:
    if len({s[2] for s in spans}) < 2:
        return
    for i, ((x0, x1, _, _), tag) in enumerate(zip(spans, stage_tags(spans, font_px, plot_px, x_max))):
        fig.add_vrect(x0=x0, x1=x1, fillcolor=STAGE_FILL[i % 2], line_width=0, layer="below",
                      annotation_text=tag, annotation_position="top left", annotation_font_size=font_px)


COMPARED = "val_full_sq_err"  # the curve every strategy shares: the whole network, whatever is trained


def compared_curve(epochs: list[dict], axis: str) -> tuple[list, list]:
    """(x, y) of the full-network validation error; records lacking either (runs written before that
    key or axis existed, e.g. an old greedy run's first stages) are left out."""
    pts = [(x, r.get(COMPARED)) for x, r in zip(xs(epochs, axis, _n_train(epochs, None)), epochs)]
    pts = [(x, y) for x, y in pts if x is not None and y is not None]
    return [x for x, _ in pts], [y for _, y in pts]


def compare_figure(curves: dict[str, list[dict]], axis: str = "epoch", height: int = 460) -> go.Figure:
    """The full-network validation error of several runs overlaid ({run label: epoch records})."""
    fig = go.Figure()
    for i, (name, epochs) in enumerate(curves.items()):
        x, y = compared_curve(epochs, axis)
        fig.add_scatter(x=x, y=y, mode=line_mode(len(x)), name=name if x else f"{name} (not recorded)",
                        line=dict(color=PALETTE[i % len(PALETTE)], width=2))
    fig.update_layout(title=f"validation squared error per image, {label(COMPARED)}: lower is better",
                      height=height, xaxis_title=X_LABELS[axis], yaxis_title=header(COMPARED), font=dict(size=14),
                      legend=dict(orientation="h", y=-0.2), margin=dict(l=10, r=10, t=60, b=10))
    return fig


def band_figure(bands: dict[str, dict], axis: str = "epoch", spread: str = "sd", height: int = 420) -> go.Figure:
    """Seed groups: each group's mean full-network validation error with a band of ±1 sd (or min-max)."""
    fig = go.Figure()
    for i, (name, b) in enumerate(bands.items()):
        color = PALETTE[i % len(PALETTE)]
        lo = [m - s for m, s in zip(b["mean"], b["sd"])] if spread == "sd" else b["min"]
        hi = [m + s for m, s in zip(b["mean"], b["sd"])] if spread == "sd" else b["max"]
        fig.add_scatter(x=b["x"] + b["x"][::-1], y=hi + lo[::-1], fill="toself", fillcolor=color, opacity=0.25,
                        mode="lines", line=dict(width=0), hoverinfo="skip", showlegend=False)
        fig.add_scatter(x=b["x"], y=b["mean"], mode="lines+markers", line=dict(color=color, width=2),
                        name=f"{name} (mean of {b['n']} seeds)")
    what = "±1 sd" if spread == "sd" else "min-max"
    fig.update_layout(title=f"seed groups: {label(COMPARED)}, mean with {what} band: lower is better",
                      height=height, xaxis_title=X_LABELS[axis], yaxis_title=header(COMPARED), font=dict(size=14),
                      legend=dict(orientation="h", y=-0.2), margin=dict(l=10, r=10, t=60, b=10))
    return fig


# ----------------------------------------------------------------------------- code maps

def code_map_figure(xy: np.ndarray, labels: np.ndarray | None, classes: list[str] | None, title: str,
                    ranges: tuple | None = None, height: int = 460) -> go.Figure:
    """Scatter of a 2-D layout coloured by label (one trace per class, so the legend names them).

    SVG, not WebGL: a live map is redrawn every second, and each WebGL redraw made a new GL context. Measured in
    Chromium at 1280x720, a 1,000-point map redrawn every second: 0.55 of a core as WebGL, 0.25 as SVG."""
    fig = go.Figure()
    labels = None if labels is None or len(labels) != len(xy) else np.asarray(labels)
    if labels is None:
        fig.add_scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", marker=dict(size=4, color=PALETTE[0]),
                          name="codes")
    else:
        for i, lab in enumerate(np.unique(labels)):
            m = labels == lab
            name = classes[int(lab)] if classes and 0 <= int(lab) < len(classes) else str(lab)
            fig.add_scatter(x=xy[m, 0], y=xy[m, 1], mode="markers", name=name,
                              marker=dict(size=4, color=PALETTE[i % len(PALETTE)], opacity=0.75))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=50, b=10), font=dict(size=14),
                      legend=dict(itemsizing="constant"), uirevision="map")
    fig.update_xaxes(showticklabels=False, range=ranges[0] if ranges else None)
    fig.update_yaxes(showticklabels=False, range=ranges[1] if ranges else None)
    return fig


def shared_ranges(layouts: list[np.ndarray], margin: float = 0.05) -> tuple:
    """x and y ranges covering all layouts, so side-by-side maps share axes."""
    allp = np.concatenate([lay for lay in layouts if lay is not None])
    lo, hi = allp.min(0), allp.max(0)
    pad = (hi - lo) * margin + 1e-6
    return (float(lo[0] - pad[0]), float(hi[0] + pad[0])), (float(lo[1] - pad[1]), float(hi[1] + pad[1]))


def histogram_figure(counts: np.ndarray, edges: np.ndarray, title: str = "code activations",
                     height: int = 300) -> go.Figure:
    centers = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure(go.Bar(x=centers, y=counts, width=np.diff(edges), marker_color=PALETTE[4]))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=50, b=10), font=dict(size=14),
                      xaxis_title="activation", yaxis_title="count", bargap=0)
    return fig


def unit_activation_figure(unit_mean: np.ndarray, target: float | None = None, height: int = 260) -> go.Figure:
    """Mean activation of each code unit on the probe set (bars), the sparsity target rho as a line."""
    fig = go.Figure(go.Bar(x=np.arange(1, len(unit_mean) + 1), y=unit_mean, marker_color=PALETTE[0],
                           name="mean activation"))
    if target is not None:
        fig.add_hline(y=target, line=dict(color=PALETTE[3], dash="dash", width=2),
                      annotation_text=f"target ρ = {target:g}", annotation_position="top right")
    over = f", {np.mean(unit_mean):.3g} on average" if len(unit_mean) else ""
    fig.update_layout(title=f"mean activation per code unit{over}", height=height, bargap=0.1,
                      margin=dict(l=10, r=10, t=50, b=10), font=dict(size=13), xaxis_title="code unit",
                      yaxis_title="mean on probe set", uirevision="units")
    return fig


def pca_angles_figure(angles_deg: np.ndarray, ratio: float, height: int = 260) -> go.Figure:
    """Principal angles between the decoder's column space and PCA's top-k subspace: all ~0 when the
    linear AE spans PCA's subspace (Baldi 2012)."""
    a = np.sort(np.asarray(angles_deg, dtype=float))
    fig = go.Figure(go.Bar(x=np.arange(1, len(a) + 1), y=a, marker_color=PALETTE[2]))
    title = f"angles to PCA's top-{len(a)} subspace: largest {a.max():.2g}°; error {ratio:.3f}× PCA's"
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=50, b=10), font=dict(size=13),
                      xaxis_title="principal angle (smallest first)", yaxis_title="degrees", uirevision="angles")
    fig.update_yaxes(range=[0, 90])
    return fig


# ----------------------------------------------------------------------------- architecture

def arch_blocks(kind: str, input_shape: tuple[int, ...], layers: tuple[int, ...]) -> list[dict]:
    """Blocks of the mirrored stack: [{label, size, role, level}] from input to output."""
    if kind == "conv" and len(input_shape) == 3:
        c, h, w = input_shape
        sizes = [f"{c}x{h}x{w}"] + [f"{ch}x{max(1, h >> (i + 1))}x{max(1, w >> (i + 1))}"
                                   for i, ch in enumerate(layers)]
        mags = [c * h * w] + [ch * max(1, h >> (i + 1)) * max(1, w >> (i + 1)) for i, ch in enumerate(layers)]
    else:
        d = int(np.prod(input_shape))
        sizes, mags = [str(d)] + [str(v) for v in layers], [d] + list(layers)
    n = len(layers)
    enc = [dict(label=s, size=m, role="input" if i == 0 else ("code" if i == n else "hidden"), level=i)
           for i, (s, m) in enumerate(zip(sizes, mags))]
    dec = [dict(enc[i], role="output" if i == 0 else "hidden") for i in range(n - 1, -1, -1)]
    return enc + dec


TIE_STEP = 0.24  # vertical gap between the tie lines of consecutive stages (room for a label each)


def arch_figure(kind: str, input_shape: tuple[int, ...], layers: tuple[int, ...], tied: bool,
                params: int, params_other: int, height: int = 330) -> go.Figure:
    """Layers as blocks (height ~ log size), the code layer highlighted, tied encoder/decoder pairs linked.

    Shapes and annotations go into the layout in one call: Plotly's add_annotation / add_shape re-validate the
    whole tuple each time (quadratic), and a cold Train page spent 0.4 s of its first run here."""
    blocks = arch_blocks(kind, input_shape, layers)
    n, shapes, notes, ties = len(layers), [], [], []
    top = max(math.log10(b["size"] + 1) for b in blocks)
    colors = {"input": "#9ecae1", "output": "#9ecae1", "hidden": "#c7e9c0", "code": "#fd8d3c"}
    for i, b in enumerate(blocks):
        h = 0.25 + 0.75 * math.log10(b["size"] + 1) / top
        shapes.append(dict(type="rect", x0=i - 0.35, x1=i + 0.35, y0=-h, y1=h, fillcolor=colors[b["role"]],
                           line=dict(color="#333", width=2 if b["role"] == "code" else 1)))
        notes.append(dict(x=i, y=-h - 0.12, text=f"<b>{b['label']}</b>", showarrow=False, font=dict(size=13)))
        notes.append(dict(x=i, y=h + 0.1, text=b["role"], showarrow=False, font=dict(size=11, color="#555")))
    for k in range(1, n + 1):  # encoder k maps block k-1 -> k; its decoder maps block 2n-k -> 2n-k+1
        e, d = k - 0.5, 2 * n - k + 0.5
        notes.append(dict(x=e, y=0, text=f"E{k}", showarrow=False, font=dict(size=12), bgcolor="white"))
        notes.append(dict(x=d, y=0, text=f"D{k}", showarrow=False, font=dict(size=12), bgcolor="white"))
        if tied:
            y = 1.25 + TIE_STEP * (n - k)
            ties.append(go.Scatter(x=[e, e, d, d], y=[0.15, y, y, 0.15], mode="lines", showlegend=False,
                                   line=dict(color="#d62728", dash="dot", width=2), hoverinfo="skip"))
            notes.append(dict(x=(e + d) / 2, y=y, text=f"D{k} = E{k}ᵀ (tied)", showarrow=False, bgcolor="white",
                              font=dict(size=11, color="#d62728")))  # on its own line, masking the others
    this, other = ("tied", "untied") if tied else ("untied", "tied")
    return go.Figure(ties, layout=dict(
        title=f"{kind} autoencoder: {params:,} parameters ({this}; {params_other:,} if {other})",
        height=height, font=dict(size=14), margin=dict(l=10, r=10, t=50, b=10), showlegend=False,
        plot_bgcolor="white", shapes=shapes, annotations=notes,
        xaxis=dict(visible=False, range=[-0.6, len(blocks) - 0.4]),
        yaxis=dict(visible=False, range=[-1.45, 1.45 + TIE_STEP * n if tied else 1.3])))


# ----------------------------------------------------------------------------- PNG export (matplotlib)

def compare_png(curves: dict[str, list[dict]], axis: str = "epoch", grids: dict[str, np.ndarray] | None = None) -> bytes:
    """A PNG of the overlaid validation curves (and reconstruction grids, one per run) for slides."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grids = grids or {}
    n = 1 + len(grids)
    fig, axes = plt.subplots(n, 1, figsize=(10, 4.5 + 2.6 * len(grids)), dpi=120,
                             gridspec_kw=dict(height_ratios=[4.5] + [2.6] * len(grids)))
    axes = np.atleast_1d(axes)
    ax = axes[0]
    for i, (name, epochs) in enumerate(curves.items()):
        ax.plot(*compared_curve(epochs, axis), marker="o", ms=3, label=name, color=PALETTE[i % len(PALETTE)])
    ax.set_xlabel(X_LABELS[axis])
    ax.set_ylabel(header(COMPARED))
    ax.set_title(f"validation squared error per image, {label(COMPARED)}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    for ax, (name, g) in zip(axes[1:], grids.items()):
        ax.imshow(g)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
