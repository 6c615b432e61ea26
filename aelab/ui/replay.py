"""A saved run or race played back in the browser (a client-side Plotly animation: Play / Pause / speed / a frame
slider, no server work per frame) and downloaded for slides (GIF, MP4, PNG), on Inspect, on a finished race and
in presentation mode."""
from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from ..embed import REQUEST_FILE, umap_path
from ..export import RaceReplay
from ..runs import LIVE, Run
from . import state


def request_umap(run: Run) -> None:
    """Ask the projection process for UMAP layouts of every frame of a saved run (it does a few at a time)."""
    if state.umap_state() != "off" and run.status().get("status") not in LIVE and not (run.dir / REQUEST_FILE).exists():
        (run.dir / REQUEST_FILE).touch()


def _runs(source: Run | RaceReplay) -> tuple[Run, ...]:
    return source.runs if isinstance(source, RaceReplay) else (source,)


def _version(source: Run | RaceReplay) -> tuple:
    """What the figure is drawn from: new snapshots or new UMAP layouts draw it again."""
    return tuple((r.id, tuple((f.name, umap_path(f).exists()) for f in r.snapshot_files())) for r in _runs(source))


@st.cache_resource(show_spinner="drawing the animation ...", max_entries=4)
def _figure(dirs: tuple[str, ...], labels: tuple[str, ...] | None, height: int, font_px: int, at_end: bool,
            version: tuple):
    from .. import export

    if labels is None:
        return export.animation(Run(dirs[0]), height=height)
    return export.race_animation(RaceReplay(tuple(Run(d) for d in dirs), labels), height=height, font_px=font_px,
                                 at_end=at_end)


def player(source: Run | RaceReplay, key: str, height: int = 560, font_px: int = 14, at_end: bool = False) -> None:
    """The replay as a browser-side animation, 10 frames a second (a race's showing its end first with at_end)."""
    labels = source.labels if isinstance(source, RaceReplay) else None
    for r in _runs(source):
        request_umap(r)
    try:
        fig = _figure(tuple(str(r.dir) for r in _runs(source)), labels, height, font_px, at_end, _version(source))
    except ValueError as e:  # no snapshots or probe images yet: say so
        st.info(str(e))
        return
    st.plotly_chart(fig, key=key)


def slides(source: Run | RaceReplay, name: str, key: str = "dl") -> None:
    """Its replay for slides: GIF (1280x720), MP4 and the last frame as a PNG (1920x1080), drawn on click."""
    from .. import export

    runs = _runs(source)
    if not all(r.snapshot_files() for r in runs) or any(r.status().get("status") in LIVE for r in runs):
        return

    def mp4() -> bytes:
        with tempfile.TemporaryDirectory() as d:
            return export.mp4(source, Path(d) / "replay.mp4").read_bytes()

    what = "both arms at equal compute" if isinstance(source, RaceReplay) else "one frame per snapshot"
    row = st.container(horizontal=True)
    row.download_button("Replay as GIF", lambda: export.gif(source), f"{name}.gif", "image/gif", key=f"{key}_gif",
                        help=f"{what}: loss with a cursor, reconstructions, code map (1280x720)")
    row.download_button("Replay as MP4", mp4, f"{name}.mp4", "video/mp4", key=f"{key}_mp4",
                        help="the same frames at 1920x1080, H.264")
    row.download_button("Last frame as PNG", lambda: export.png(source), f"{name}.png", "image/png",
                        key=f"{key}_png", help="the finished state at slide resolution (1920x1080)")
