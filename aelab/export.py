"""Slides from a saved run: its replay as frames (loss curve with a cursor, reconstruction grid, code map, one
frame per snapshot) written as a GIF (Pillow) or an MP4 (imageio's ffmpeg wheel: no system ffmpeg), and the
last frame as a PNG at slide resolution.

Frames are drawn with matplotlib at the requested pixel size; code maps use the same aligned layouts as the
app (UMAP where the projection process wrote them, else PCA for every frame, so the projection never
switches mid-film).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .embed import FrameLayouts, load_codes, umap_path
from .embed import layouts as embed_layouts
from .metrics import header
from .runs import Run
from .viz import PALETTE, recon_rows

SLIDE = (1920, 1080)  # PNG and MP4
GIF_SIZE = (1280, 720)  # a GIF at full HD is tens of MB; a projector shows 1280 x 720 anyway
COMPARED = "val_full_sq_err"


def layouts(run: Run) -> list[np.ndarray | None]:
    """One aligned 2-D layout per snapshot, all from one projection (UMAP only if every frame has it)."""
    files = run.snapshot_files()
    if all(umap_path(f).exists() for f in files):
        return list(FrameLayouts().update(files).xy)
    return embed_layouts([load_codes(f) for f in files])


def frames(run: Run, size: tuple[int, int] = SLIDE, last_only: bool = False):
    """Yield one RGB frame (H, W, 3) uint8 per snapshot, in order (or only the last one)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global figure list or rcParams touched in the server

    files, epochs, probe = run.snapshot_files(), run.epochs(), run.probe() or {}
    x = [e["epoch"] for e in epochs]
    y = [e.get(COMPARED) for e in epochs]
    labels = probe.get("labels")
    lays = layouts(run)
    dpi = 100
    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    scale = size[1] / 1080
    fs = 18 * scale
    todo = list(zip(files, lays))
    for f, xy in todo[-1:] if last_only else todo:
        snap = run.load_snapshot(f)
        fig.clf()
        gs = fig.add_gridspec(2, 2, width_ratios=[1.1, 1], height_ratios=[1, 1.15], wspace=0.08, hspace=0.3,
                              left=0.07, right=0.99, top=0.9, bottom=0.03)
        ax = fig.add_subplot(gs[0, 0])
        ax.plot(x, y, color="#bbbbbb", lw=2 * scale)  # the whole run, faint
        now = int(snap["epoch"])
        ax.plot([a for a in x if a <= now], [b for a, b in zip(x, y) if a <= now], color=PALETTE[0], lw=3 * scale,
                marker="o", ms=5 * scale)
        ax.axvline(now, color="#d62728", lw=2 * scale)
        ax.set_xlabel("epoch", fontsize=fs)
        ax.set_ylabel(header(COMPARED), fontsize=fs)
        ax.set_title(f"epoch {now}: {snap['stage_name']}", fontsize=fs + 2)
        ax.tick_params(labelsize=fs)
        ax.grid(alpha=0.3)
        ax = fig.add_subplot(gs[1, 0])
        if probe.get("images") is not None:
            grid, rows = recon_rows(probe["images"], snap["recon"], probe.get("noisy"), snap.get("denoised"), n=8)
            ax.imshow(grid)
            ax.set_title(" / ".join(rows), fontsize=12 * scale)
        ax.axis("off")
        ax = fig.add_subplot(gs[:, 1])
        if xy is not None:
            c = None if labels is None or len(labels) != len(xy) else [PALETTE[int(v) % len(PALETTE)] for v in labels]
            ax.scatter(xy[:, 0], xy[:, 1], s=14 * scale, c=c or PALETTE[0], alpha=0.8, linewidths=0)
            (x0, x1), (y0, y1) = _ranges(xy)  # each frame fills its box: the points' arrangement is what moves
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"code map h{int(snap['level'])}", fontsize=fs + 2)
        fig.suptitle(f"{run.config_dict().get('name') or 'custom'} · {run.id}", fontsize=14 * scale, x=0.01,
                     ha="left")
        canvas.draw()
        yield np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _ranges(xy: np.ndarray, margin: float = 0.05):
    """Axis limits holding the central 99 % of the points (a few outliers do not shrink the rest)."""
    lo, hi = np.percentile(xy, 0.5, axis=0), np.percentile(xy, 99.5, axis=0)
    pad = (hi - lo) * margin + 1e-6
    return (lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])


def _fill_box(xy: np.ndarray) -> np.ndarray:
    """Centre a layout and scale the central 99 % of its points to the unit box: consecutive (aligned)
    frames keep their arrangement, and a frame that spreads less still fills the map."""
    lo, hi = np.percentile(xy, 0.5, axis=0), np.percentile(xy, 99.5, axis=0)
    return (xy - (lo + hi) / 2) / np.maximum(hi - lo, 1e-9)


def _need_snapshots(run: Run) -> None:
    if not run.snapshot_files():
        raise ValueError(f"run {run.id} has no snapshots to replay yet")


def gif(run: Run, out: str | os.PathLike | None = None, fps: float = 4, size=GIF_SIZE) -> bytes:
    """The replay as an animated GIF (looping); written to `out` when given, and returned."""
    import imageio.v3 as iio

    _need_snapshots(run)
    data = iio.imwrite("<bytes>", np.stack(list(frames(run, size))), extension=".gif", duration=1000 / fps, loop=0)
    if out:
        Path(out).write_bytes(data)
    return data


def mp4(run: Run, out: str | os.PathLike, fps: float = 4, size=SLIDE) -> Path:
    """The replay as an H.264 MP4 through imageio-ffmpeg's bundled ffmpeg binary."""
    import imageio.v2 as imageio

    _need_snapshots(run)
    with imageio.get_writer(out, fps=fps, codec="libx264", macro_block_size=8, quality=8,
                            ffmpeg_log_level="error") as w:
        for fr in frames(run, size):
            w.append_data(fr)
    return Path(out)


def png(run: Run, out: str | os.PathLike | None = None, size=SLIDE) -> bytes:
    """The last frame (the finished run) as a PNG at slide resolution."""
    import imageio.v3 as iio

    _need_snapshots(run)
    data = iio.imwrite("<bytes>", next(frames(run, size, last_only=True)), extension=".png")
    if out:
        Path(out).write_bytes(data)
    return data



def animation(run: Run, fps: float = 10, height: int = 560):
    """The replay as one Plotly figure that plays in the browser (no server round trips): the loss with a
    moving cursor, the labelled reconstruction grid and the code map (one projection, fixed axes), one
    animation frame per snapshot, Play / Pause and speed (½×, 2×, 4× of fps) buttons, and a frame slider to
    step through it."""
    import base64

    import imageio.v3 as iio
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    files, epochs, probe = run.snapshot_files(), run.epochs(), run.probe() or {}
    _need_snapshots(run)
    if probe.get("images") is None:
        raise ValueError(f"run {run.id} has no probe images (probe.npz) to replay")
    lays = layouts(run)
    labels = probe.get("labels")
    lays = [_fill_box(xy) if xy is not None else None for xy in lays]  # every frame fills the same box
    x = [e["epoch"] for e in epochs]
    y = [e.get(COMPARED) for e in epochs]
    ys = [v for v in y if v is not None] or [0.0, 1.0]
    ymin, ymax = min(ys), max(ys)

    def frame_traces(f, xy):
        snap = run.load_snapshot(f)
        grid, _ = recon_rows(probe["images"], snap["recon"], probe.get("noisy"), snap.get("denoised"), n=8)
        png = base64.b64encode(iio.imwrite("<bytes>", grid, extension=".png")).decode()
        colors = None if labels is None or xy is None or len(labels) != len(xy) else \
            [PALETTE[int(v) % len(PALETTE)] for v in labels]
        now = int(snap["epoch"])
        return now, str(snap["stage_name"]), [
            go.Scatter(x=[now, now], y=[ymin, ymax], mode="lines", line=dict(color="#d62728", width=3)),
            go.Image(source=f"data:image/png;base64,{png}"),
            go.Scattergl(x=xy[:, 0] if xy is not None else [], y=xy[:, 1] if xy is not None else [], mode="markers",
                         marker=dict(size=5, color=colors or PALETTE[0], opacity=0.8))]

    data = [frame_traces(f, xy) for f, xy in zip(files, lays)]
    fig = make_subplots(rows=1, cols=3, column_widths=[0.36, 0.3, 0.34], horizontal_spacing=0.04,
                        subplot_titles=(header(COMPARED), "reconstructions", "code map"))
    fig.add_scatter(x=x, y=y, mode="lines+markers", line=dict(color=PALETTE[2], width=3), row=1, col=1)
    for trace, col in zip(data[0][2], (1, 2, 3)):
        fig.add_trace(trace, row=1, col=col)
    fig.frames = [go.Frame(data=traces, traces=[1, 2, 3], name=str(i),
                           layout=dict(title_text=f"epoch {now}: {stage}"))
                  for i, (now, stage, traces) in enumerate(data)]
    def play(speed: float) -> dict:  # Plotly animates at one frame per `duration` ms
        return dict(frame=dict(duration=1000 / (fps * speed), redraw=True), transition=dict(duration=0),
                    fromcurrent=True, mode="immediate")
    fig.update_layout(
        height=height, showlegend=False, title_text=f"epoch {data[0][0]}: {data[0][1]}",
        margin=dict(l=10, r=10, t=60, b=90),
        updatemenus=[dict(type="buttons", direction="left", x=0, y=-0.16, xanchor="left", yanchor="top", buttons=[
            dict(label="▶ Play", method="animate", args=[None, play(1)]),
            dict(label="❚❚ Pause", method="animate", args=[[None], dict(mode="immediate", frame=dict(duration=0))]),
            dict(label="½×", method="animate", args=[None, play(0.5)]),  # speed: play on at half / double pace
            dict(label="2×", method="animate", args=[None, play(2)]),
            dict(label="4×", method="animate", args=[None, play(4)])])],
        sliders=[dict(active=0, x=0.2, len=0.8, y=-0.1, currentvalue=dict(prefix="frame "), steps=[
            dict(method="animate", label=str(i + 1), args=[[str(i)], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                                                          transition=dict(duration=0))])
            for i in range(len(data))])])
    fig.update_xaxes(title_text="epoch", row=1, col=1)
    fig.update_xaxes(range=[-0.55, 0.55], showticklabels=False, row=1, col=3)
    fig.update_yaxes(range=[-0.55, 0.55], showticklabels=False, row=1, col=3)
    fig.update_xaxes(showticklabels=False, row=1, col=2)
    fig.update_yaxes(showticklabels=False, row=1, col=2)
    return fig
