"""Slides from a run (aelab/export.py and `python -m aelab export`): frames in order, counts, sizes."""
import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest

from aelab.cli import main
from aelab.runs import RunStore
from aelab.worker import execute


@pytest.fixture(scope="module")
def run(tmp_path_factory, shapes):
    from aelab.config import RunConfig

    cfg = RunConfig(name="film").with_overrides({"data.name": "shapes", "model.layers": "32,8", "train.epochs": 2,
                                                 "train.batch_size": 32, "train.strategy": "greedy",
                                                 "train.finetune_epochs": 2})
    mp = pytest.MonkeyPatch()
    mp.setattr("signal.signal", lambda *a: None)  # execute() would take over pytest's SIGTERM
    r = RunStore(tmp_path_factory.mktemp("runs")).create(cfg)
    assert execute(r)["status"] == "completed"
    mp.undo()
    return r


def test_gif_has_one_frame_per_snapshot_in_order(run, tmp_path):
    assert main([ "export", str(run.dir), "--gif", str(tmp_path / "r.gif"), "--fps", "5"]) == 0
    film = iio.imread(tmp_path / "r.gif", index=None)
    n = len(run.snapshot_files())
    assert n >= 4 and film.shape[0] == n and film.shape[1:3] == (720, 1280)
    assert all(not np.array_equal(film[i], film[i + 1]) for i in range(n - 1))  # each frame shows a new moment


def test_mp4_and_png_at_slide_resolution(run, tmp_path):
    assert main(["export", str(run.dir), "--mp4", str(tmp_path / "r.mp4"), "--png", str(tmp_path / "r.png")]) == 0
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "r.mp4"))
    assert frames == len(run.snapshot_files())
    assert iio.imread(tmp_path / "r.png").shape[:2] == (1080, 1920)


def test_export_says_what_is_missing(run, tmp_path, capsys):
    assert main(["export", str(run.dir)]) == 2
    assert "--gif OUT.gif" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--gif", str(tmp_path / "x.gif")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_the_browser_animation_has_one_frame_per_snapshot_in_order_and_speeds(run):
    from aelab import export

    fig = export.animation(run, fps=10)
    n = len(run.snapshot_files())
    assert len(fig.frames) == n and [f.name for f in fig.frames] == [str(i) for i in range(n)]
    cursor = [f.data[0].x[0] for f in fig.frames]  # the loss cursor's epoch
    assert cursor == sorted(cursor) and len(set(cursor)) == n
    buttons = {b.label: b.args[1]["frame"]["duration"] for b in fig.layout.updatemenus[0].buttons}
    assert buttons["▶ Play"] == 100 and buttons["½×"] == 200 and buttons["2×"] == 50 and buttons["4×"] == 25
    assert len(fig.layout.sliders[0].steps) == n  # step through it frame by frame
