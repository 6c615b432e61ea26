"""Slides from a saved run or race: its replay as frames (loss curve with a cursor, reconstruction grid, code map,
one frame per snapshot) written as a GIF (Pillow) or an MP4 (imageio's ffmpeg wheel: no system ffmpeg), the last
frame as a PNG at slide resolution, and the same replay as a Plotly animation that plays in the browser.

A race (`RaceReplay`: its arms and their labels) replays on the compute axis: one frame per moment an arm took a
snapshot, in order of training GFLOP, each arm at its newest snapshot by then (`race_timeline`), so the arms are
seen at equal work, as the race page compares them.

Frames are drawn with matplotlib at the requested pixel size; code maps use the same aligned layouts as the
app (UMAP where the projection process wrote them, else PCA for every frame, so the projection never
switches mid-film).
"""
from __future__ import annotations

import os
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .embed import FrameLayouts, load_codes, umap_path
from .embed import layouts as embed_layouts
from .metrics import header
from .runs import Run
from .viz import PALETTE, compared_curve, recon_rows

SLIDE = (1920, 1080)  # PNG and MP4
GIF_SIZE = (1280, 720)  # a GIF at full HD is tens of MB; a projector shows 1280 x 720 anyway
COMPARED = "val_full_sq_err"


@dataclass(frozen=True)
class RaceReplay:
    """A race to replay: its arms' runs and their labels, in the race record's order."""
    runs: tuple[Run, ...]
    labels: tuple[str, ...]

    @classmethod
    def load(cls, record: str | os.PathLike) -> RaceReplay:
        """From a race record (runs/races/ID.json; its runs are in the store two folders up)."""
        from . import race

        record = Path(record)
        root = record.parent.parent
        try:
            r = race.load(root, record.stem)
        except KeyError:
            raise ValueError(f"{record}: not a readable race record") from None
        runs = tuple(Run(root / i) for i in r.run_ids)
        if missing := [x.id for x in runs if not (x.dir / "config.json").exists()]:
            raise ValueError(f"race {r.id}: its run {missing[0]} is gone from {root}")
        return cls(runs, r.labels)


def snapshot_gflop(run: Run) -> list[float]:
    """Each snapshot's training compute (GFLOP): that of the last epoch record up to its epoch (the file's name)."""
    recs = [(e["epoch"], e["gflop"]) for e in run.epochs() if e.get("gflop") is not None]
    ends = [ep for ep, _ in recs]
    out = []
    for f in run.snapshot_files():
        k = bisect_right(ends, int(f.stem)) - 1
        out.append(recs[k][1] if k >= 0 else 0.0)
    return out


def race_timeline(runs: tuple[Run, ...] | list[Run]) -> list[tuple[float, list[int]]]:
    """A race's replay frames: (GFLOP, each arm's snapshot index) at every moment an arm took a snapshot, in order
    of compute; each arm shows its newest snapshot by then (its first one before that). Moments that would show the
    same snapshots are one frame."""
    per = [snapshot_gflop(r) for r in runs]
    out: list[tuple[float, list[int]]] = []
    for t in sorted({g for p in per for g in p}):
        shown = [max(bisect_right(p, t) - 1, 0) for p in per]
        if not out or out[-1][1] != shown:
            out.append((t, shown))
    return out


def all_umap(runs) -> bool:
    """Every frame of every run has its UMAP layout: then their replays use UMAP, else PCA (a race's arms together:
    one arm's map in UMAP beside the other's in PCA would not compare). Checked once per figure, so that its maps
    and the titles naming their projection agree while the UMAP process writes layouts."""
    files = [f for r in runs for f in r.snapshot_files()]
    return bool(files) and all(umap_path(f).exists() for f in files)


def layouts(run: Run, umap: bool) -> list[np.ndarray | None]:
    """One aligned 2-D layout per snapshot, all from one projection: umap (see `all_umap`) or PCA."""
    files = run.snapshot_files()
    if umap:
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
    umap = all_umap([run])
    lays, method = layouts(run, umap), "UMAP" if umap else "PCA"
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
        _draw_grid(fig.add_subplot(gs[1, 0]), probe, snap, 12 * scale)
        _draw_map(fig.add_subplot(gs[:, 1]), xy, labels, scale, f"code map h{int(snap['level'])} ({method})", fs + 2)
        fig.suptitle(f"{run.config_dict().get('name') or 'custom'} · {run.id}", fontsize=14 * scale, x=0.01,
                     ha="left")
        canvas.draw()
        yield np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _draw_grid(ax, probe: dict, snap: dict, fs: float, title: str = "") -> None:
    if probe.get("images") is not None:
        grid, rows = recon_rows(probe["images"], snap["recon"], probe.get("noisy"), snap.get("denoised"), n=8)
        ax.imshow(grid)
        ax.set_title(title or " / ".join(rows), fontsize=fs)
    ax.axis("off")


def _draw_map(ax, xy, labels, scale: float, title: str, fs: float) -> None:
    if xy is not None:
        c = None if labels is None or len(labels) != len(xy) else [PALETTE[int(v) % len(PALETTE)] for v in labels]
        ax.scatter(xy[:, 0], xy[:, 1], s=14 * scale, c=c or PALETTE[0], alpha=0.8, linewidths=0)
        (x0, x1), (y0, y1) = _ranges(xy)  # each frame fills its box: the points' arrangement is what moves
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=fs)


def race_frames(replay: RaceReplay, size: tuple[int, int] = SLIDE, last_only: bool = False):
    """Yield one RGB frame per moment of the race's timeline: both arms' validation curves on the compute axis
    with a cursor, and below, each arm's reconstructions and code map as they were at that compute."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs, labels = replay.runs, replay.labels
    files = [r.snapshot_files() for r in runs]
    probes = [r.probe() or {} for r in runs]
    umap = all_umap(runs)  # one projection for every arm
    lays, method = [layouts(r, umap) for r in runs], "UMAP" if umap else "PCA"
    curves = [compared_curve(r.epochs(), "gflop") for r in runs]
    dpi, scale = 100, size[1] / 1080
    fs = 18 * scale
    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    timeline = race_timeline(runs)
    for t, shown in timeline[-1:] if last_only else timeline:
        fig.clf()
        gs = fig.add_gridspec(2, 2 * len(runs), height_ratios=[1, 1.2], wspace=0.08, hspace=0.3, left=0.06,
                              right=0.99, top=0.9, bottom=0.03)
        ax = fig.add_subplot(gs[0, :])
        for k, (x, y) in enumerate(curves):
            color = PALETTE[k % len(PALETTE)]
            ax.plot(x, y, color=color, lw=1.5 * scale, alpha=0.3)  # the whole race, faint
            ax.plot([a for a in x if a <= t], [b for a, b in zip(x, y) if a <= t], color=color, lw=3 * scale,
                    marker="o", ms=5 * scale, label=labels[k])
        ax.axvline(t, color="#d62728", lw=2 * scale)
        ax.set_xlabel("training compute (GFLOP)", fontsize=fs)
        ax.set_ylabel(header(COMPARED), fontsize=fs)
        ax.set_title(f"{t:.3g} GFLOP", fontsize=fs + 2)
        ax.tick_params(labelsize=fs)
        ax.legend(fontsize=fs, loc="upper right")
        ax.grid(alpha=0.3)
        for k, (run, i) in enumerate(zip(runs, shown)):
            snap = run.load_snapshot(files[k][i])
            head = f"{labels[k]}: epoch {int(snap['epoch'])}"
            _draw_grid(fig.add_subplot(gs[1, 2 * k]), probes[k], snap, 13 * scale, head)
            _draw_map(fig.add_subplot(gs[1, 2 * k + 1]), lays[k][i], probes[k].get("labels"), scale,
                      f"code map h{int(snap['level'])} ({method})", 13 * scale)
        fig.suptitle(f"race: {' vs '.join(labels)}", fontsize=14 * scale, x=0.01, ha="left")
        canvas.draw()
        yield np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _need_snapshots(source: Run | RaceReplay) -> None:
    for r in source.runs if isinstance(source, RaceReplay) else (source,):
        if not r.snapshot_files():
            raise ValueError(f"run {r.id} has no snapshots to replay yet")


def _film(source: Run | RaceReplay, size: tuple[int, int], last_only: bool = False):
    _need_snapshots(source)
    if isinstance(source, RaceReplay):
        return race_frames(source, size, last_only)
    return frames(source, size, last_only)


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


def gif(source: Run | RaceReplay, out: str | os.PathLike | None = None, fps: float = 4, size=GIF_SIZE) -> bytes:
    """The replay of a run or race as an animated GIF (looping); written to `out` when given, and returned."""
    import imageio.v3 as iio

    data = iio.imwrite("<bytes>", np.stack(list(_film(source, size))), extension=".gif", duration=1000 / fps, loop=0)
    if out:
        Path(out).write_bytes(data)
    return data


def mp4(source: Run | RaceReplay, out: str | os.PathLike, fps: float = 4, size=SLIDE) -> Path:
    """The replay of a run or race as an H.264 MP4 through imageio-ffmpeg's bundled ffmpeg binary."""
    import imageio.v2 as imageio

    film = _film(source, size)
    with imageio.get_writer(out, fps=fps, codec="libx264", macro_block_size=8, quality=8,
                            ffmpeg_log_level="error") as w:
        for fr in film:
            w.append_data(fr)
    return Path(out)


def png(source: Run | RaceReplay, out: str | os.PathLike | None = None, size=SLIDE) -> bytes:
    """The last frame (the finished run or race) as a PNG at slide resolution."""
    import imageio.v3 as iio

    data = iio.imwrite("<bytes>", next(_film(source, size, last_only=True)), extension=".png")
    if out:
        Path(out).write_bytes(data)
    return data


def frame_count(source: Run | RaceReplay) -> int:
    """How many frames its replay has: one per snapshot of a run, one per moment of a race's timeline."""
    return len(race_timeline(source.runs)) if isinstance(source, RaceReplay) else len(source.snapshot_files())


def _player(n: int, fps: float, y: float = -0.16, active: int = 0) -> dict:
    """Play / Pause / speed buttons (½×, 2×, 4× of fps) and a frame slider for a figure of n animation frames, the
    slider at frame `active` (the one the figure shows). Play goes on from the frame an earlier Play or the slider
    left, and from the first after the last (plotly.js: `fromcurrent` does not apply at the last frame)."""
    def play(speed: float) -> dict:  # Plotly animates at one frame per `duration` ms
        return dict(frame=dict(duration=1000 / (fps * speed), redraw=True), transition=dict(duration=0),
                    fromcurrent=True, mode="immediate")
    still = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    return dict(
        updatemenus=[dict(type="buttons", direction="left", x=0, y=y, xanchor="left", yanchor="top", buttons=[
            dict(label="▶ Play", method="animate", args=[None, play(1)]),
            dict(label="❚❚ Pause", method="animate", args=[[None], dict(mode="immediate", frame=dict(duration=0))]),
            dict(label="½×", method="animate", args=[None, play(0.5)]),  # speed: play on at half / double pace
            dict(label="2×", method="animate", args=[None, play(2)]),
            dict(label="4×", method="animate", args=[None, play(4)])])],
        sliders=[dict(active=active, x=0.27, len=0.73, y=y + 0.06,  # right of the buttons; its label at its right end
                      currentvalue=dict(prefix="frame ", xanchor="right"), steps=[
            dict(method="animate", label=str(i + 1), args=[[str(i)], still]) for i in range(n)])])


FRAME_KEYS = ("epoch", "stage_name", "recon", "denoised")  # what a replay's frame shows of a snapshot


def _frame_part(run: Run, snapshot: Path) -> dict:
    """What a replay's frame shows of a snapshot: a long run's codes need not all stay in memory at once."""
    return {k: v for k, v in run.load_snapshot(snapshot).items() if k in FRAME_KEYS}
STRIP_MAX_PX = 8192  # the tallest column of grids in a replay's image (a long run's grids wrap into more columns)


@dataclass(frozen=True)
class GridStrip:
    """Every snapshot's labelled reconstruction grid in one image trace: tiles of h x w pixels, top to bottom in
    columns of `per_column`. An animation frame shows tile i by moving the subplot's axis ranges (`ranges`), so
    the browser decodes the image once. An image trace per frame (or one per snapshot, shown or hidden) was drawn
    anew at every frame, and Chromium showed it blank until decoded: the grids flickered during playback
    (tests/test_browser.py checks that no image is re-created after the first frame)."""
    trace: object
    h: int
    w: int
    per_column: int

    def ranges(self, i: int) -> tuple[list[float], list[float]]:
        """The x and y ranges of the image subplot that show tile i (the y axis reversed: rows grow downwards)."""
        col, row = divmod(i, self.per_column)
        return [col * self.w - 0.5, (col + 1) * self.w - 0.5], [(row + 1) * self.h - 0.5, row * self.h - 0.5]


def _grid_strip(probe: dict, snaps: list[dict]) -> GridStrip:
    import base64

    import imageio.v3 as iio
    import plotly.graph_objects as go

    grids = [recon_rows(probe["images"], s["recon"], probe.get("noisy"), s.get("denoised"), n=8)[0] for s in snaps]
    h, w = max(g.shape[0] for g in grids), max(g.shape[1] for g in grids)
    per_column = max(1, min(len(grids), STRIP_MAX_PX // h))
    tiles = [np.pad(g, ((0, h - g.shape[0]), (0, w - g.shape[1]), (0, 0)), constant_values=255) for g in grids]
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % per_column)  # the last column filled up with white
    columns = [np.concatenate(tiles[i:i + per_column]) for i in range(0, len(tiles), per_column)]
    png = iio.imwrite("<bytes>", np.concatenate(columns, axis=1), extension=".png")
    return GridStrip(go.Image(source="data:image/png;base64," + base64.b64encode(png).decode(), hoverinfo="skip"),
                     h, w, per_column)


# A grid subplot shows one tile of its strip: no ticks, and no zoom (autoscale would show every snapshot's grid at
# once, a reset the first one, whatever the frame).
GRID_AXIS = dict(showticklabels=False, showgrid=False, zeroline=False, fixedrange=True)


def _showing(axes, strip: GridStrip, i: int) -> dict:
    """Layout changes that make an image subplot (`fig.get_subplot(...)`) show tile i of its strip."""
    x, y = strip.ranges(i)
    return {axes.xaxis.plotly_name: dict(range=x), axes.yaxis.plotly_name: dict(range=y)}


def _map_trace(xy, labels, size: int = 5):
    import plotly.graph_objects as go

    colors = None if labels is None or xy is None or len(labels) != len(xy) else \
        [PALETTE[int(v) % len(PALETTE)] for v in labels]
    return go.Scattergl(x=xy[:, 0] if xy is not None else [], y=xy[:, 1] if xy is not None else [], mode="markers",
                        marker=dict(size=size, color=colors or PALETTE[0], opacity=0.8), showlegend=False)


def animation(run: Run, fps: float = 10, height: int = 560):
    """The replay as one Plotly figure that plays in the browser (no server round trips): the loss with a
    moving cursor, the labelled reconstruction grid and the code map (one projection, fixed axes), one
    animation frame per snapshot, Play / Pause and speed (½×, 2×, 4× of fps) buttons, and a frame slider to
    step through it."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    files, epochs, probe = run.snapshot_files(), run.epochs(), run.probe() or {}
    _need_snapshots(run)
    if probe.get("images") is None:
        raise ValueError(f"run {run.id} has no probe images (probe.npz) to replay")
    umap = all_umap([run])
    lays = [_fill_box(xy) if xy is not None else None for xy in layouts(run, umap)]  # every frame fills the same box
    x = [e["epoch"] for e in epochs]
    y = [e.get(COMPARED) for e in epochs]
    ys = [v for v in y if v is not None] or [0.0, 1.0]
    ymin, ymax = min(ys), max(ys)

    snaps = [_frame_part(run, f) for f in files]
    strip = _grid_strip(probe, snaps)

    def frame_traces(snap, xy):
        now = int(snap["epoch"])
        return now, str(snap["stage_name"]), [
            go.Scatter(x=[now, now], y=[ymin, ymax], mode="lines", line=dict(color="#d62728", width=3)),
            _map_trace(xy, probe.get("labels"))]

    data = [frame_traces(snap, xy) for snap, xy in zip(snaps, lays)]
    fig = make_subplots(rows=1, cols=3, column_widths=[0.36, 0.3, 0.34], horizontal_spacing=0.04,
                        subplot_titles=(header(COMPARED), "reconstructions", f"code map ({'UMAP' if umap else 'PCA'})"))
    fig.add_scatter(x=x, y=y, mode="lines+markers", line=dict(color=PALETTE[2], width=3), row=1, col=1)
    fig.add_trace(data[0][2][0], row=1, col=1)
    fig.add_trace(strip.trace, row=1, col=2)
    fig.add_trace(data[0][2][1], row=1, col=3)
    axes = fig.get_subplot(1, 2)
    fig.frames = [go.Frame(data=traces, traces=[1, 3], name=str(i),
                           layout={"title_text": f"epoch {now}: {stage}", **_showing(axes, strip, i)})
                  for i, (now, stage, traces) in enumerate(data)]
    fig.update_layout(height=height, showlegend=False, title_text=f"epoch {data[0][0]}: {data[0][1]}",
                      margin=dict(l=10, r=10, t=60, b=90), **_player(len(data), fps))
    fig.update_xaxes(title_text="epoch", row=1, col=1)
    fig.update_xaxes(range=[-0.55, 0.55], showticklabels=False, row=1, col=3)
    fig.update_yaxes(range=[-0.55, 0.55], showticklabels=False, row=1, col=3)
    fig.update_layout(_showing(axes, strip, 0))
    fig.update_xaxes(GRID_AXIS, row=1, col=2)
    fig.update_yaxes(GRID_AXIS, row=1, col=2)
    return fig


def race_animation(replay: RaceReplay, fps: float = 10, height: int = 640, font_px: int = 14, at_end: bool = False):
    """A race replayed in the browser: both arms' validation curves on the compute axis with a moving cursor on
    top; below, each arm's reconstructions and code map at that compute (`race_timeline`), with the same
    Play / Pause / speed buttons and frame slider as a run's replay. at_end: it first shows the race's end (where a
    race watched live has just arrived), and Play starts from its beginning."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    runs, labels = replay.runs, replay.labels
    _need_snapshots(replay)
    probes = [r.probe() or {} for r in runs]
    if missing := [r.id for r, p in zip(runs, probes) if p.get("images") is None]:
        raise ValueError(f"run {missing[0]} has no probe images (probe.npz) to replay")
    timeline = race_timeline(runs)
    files = [r.snapshot_files() for r in runs]
    umap = all_umap(runs)  # one projection for every arm
    lays = [[_fill_box(xy) if xy is not None else None for xy in layouts(r, umap)] for r in runs]
    curves = [compared_curve(r.epochs(), "gflop") for r in runs]
    ys = [v for _, y in curves for v in y] or [0.0, 1.0]
    ymin, ymax = min(ys), max(ys)
    n = len(runs)
    used = [sorted({shown[k] for _, shown in timeline}) for k in range(n)]  # the snapshots each arm shows
    snaps = {(k, i): _frame_part(runs[k], files[k][i]) for k in range(n) for i in used[k]}
    short = [label.split(" (")[0] for label in labels]  # "greedy (10 epochs x 3 stages ...)" -> "greedy"

    strips = [_grid_strip(probes[k], [snaps[k, i] for i in used[k]]) for k in range(n)]

    def frame_data(t: float, shown: list[int]):
        """The moment's cursor and maps, and which tile of each arm's grid strip it shows."""
        traces = [go.Scatter(x=[t, t], y=[ymin, ymax], mode="lines", line=dict(color="#d62728", width=3),
                             showlegend=False)]
        traces += [_map_trace(lays[k][i], probes[k].get("labels")) for k, i in enumerate(shown)]
        tiles = [used[k].index(i) for k, i in enumerate(shown)]
        epochs = ", ".join(f"{short[k]} at epoch {int(snaps[k, i]['epoch'])}" for k, i in enumerate(shown))
        return traces, f"{t:.3g} GFLOP: {epochs}", tiles

    titles = [f"{header(COMPARED)} against training compute (GFLOP)"]
    for name in short:
        titles += [f"{name}: reconstructions", f"{name}: code map ({'UMAP' if umap else 'PCA'})"]
    fig = make_subplots(rows=2, cols=2 * n, specs=[[{"colspan": 2 * n}] + [None] * (2 * n - 1), [{}] * (2 * n)],
                        row_heights=[0.42, 0.58], vertical_spacing=0.18, horizontal_spacing=0.02,
                        subplot_titles=titles)
    for k, (x, y) in enumerate(curves):
        fig.add_scatter(x=x, y=y, mode="lines+markers", name=labels[k], row=1, col=1,
                        line=dict(color=PALETTE[k % len(PALETTE)], width=3))
    first, title, first_tiles = frame_data(*timeline[-1 if at_end else 0])
    fig.add_trace(first[0], row=1, col=1)
    for k in range(n):
        fig.add_trace(first[1 + k], row=2, col=2 * k + 2)
    animated = list(range(n, len(fig.data)))  # the cursor and the maps (the curves and the strips stay)
    for k in range(n):
        fig.add_trace(strips[k].trace, row=2, col=2 * k + 1)
    axes = [fig.get_subplot(2, 2 * k + 1) for k in range(n)]
    frames = []
    for j, (t, shown) in enumerate(timeline):
        traces, text, tiles = frame_data(t, shown)
        layout = {"title_text": text}
        for k, tile in enumerate(tiles):
            layout.update(_showing(axes[k], strips[k], tile))
        frames.append(go.Frame(data=traces, traces=animated, name=str(j), layout=layout))
    fig.frames = frames
    fig.update_layout(height=height, title_text=title, font=dict(size=font_px), margin=dict(l=10, r=10, t=70, b=90),
                      legend=dict(x=1, xanchor="right", y=1, yanchor="top", bgcolor="rgba(255,255,255,0.8)"),
                      **_player(len(frames), fps, y=-0.08, active=len(frames) - 1 if at_end else 0))
    # every text at font_px (18 in presentation mode at 1280x720): ticks, panel titles, legend, buttons and slider too
    fig.update_xaxes(tickfont_size=font_px)
    fig.update_yaxes(tickfont_size=font_px)
    fig.update_annotations(font_size=font_px)
    fig.update_layout(title_font_size=font_px + 2, legend_font_size=font_px)
    fig.layout.updatemenus[0].font.size = font_px
    fig.layout.sliders[0].font.size = font_px - 4  # one label per frame: smaller, or they overlap
    fig.layout.sliders[0].currentvalue.font.size = font_px
    for k, tile in enumerate(first_tiles):
        fig.update_layout(_showing(axes[k], strips[k], tile))
        fig.update_xaxes(GRID_AXIS, row=2, col=2 * k + 1)
        fig.update_yaxes(GRID_AXIS, row=2, col=2 * k + 1)
        fig.update_xaxes(range=[-0.55, 0.55], showticklabels=False, row=2, col=2 * k + 2)
        fig.update_yaxes(range=[-0.55, 0.55], showticklabels=False, row=2, col=2 * k + 2)
    return fig
