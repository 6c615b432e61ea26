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


def test_the_browser_animation_has_one_frame_per_snapshot_in_order_and_speeds(run, monkeypatch):
    from aelab import export

    fig = export.animation(run, fps=10)
    n = len(run.snapshot_files())
    assert len(fig.frames) == n and [f.name for f in fig.frames] == [str(i) for i in range(n)]
    cursor = [f.data[0].x[0] for f in fig.frames]  # the loss cursor's epoch
    assert cursor == sorted(cursor) and len(set(cursor)) == n
    buttons = {b.label: b.args[1]["frame"]["duration"] for b in fig.layout.updatemenus[0].buttons}
    assert buttons["▶ Play"] == 100 and buttons["½×"] == 200 and buttons["2×"] == 50 and buttons["4×"] == 25
    assert len(fig.layout.sliders[0].steps) == n  # step through it frame by frame
    strip = next(t for t in fig.data if t.type == "image")  # one strip of grids, the frames move its axis ranges
    assert np.array_equal(shown_tile(strip, fig), grid_of(run, run.snapshot_files()[0]))  # before any frame
    for frame, f in zip(fig.frames, run.snapshot_files()):
        assert np.array_equal(shown_tile(strip, frame), grid_of(run, f))
    assert fig.layout["xaxis" + strip.xaxis[1:]].fixedrange and fig.layout["yaxis" + strip.yaxis[1:]].fixedrange
    assert n == 6
    monkeypatch.setattr(export, "STRIP_MAX_PX", 4 * grid_of(run, run.snapshot_files()[0]).shape[0])
    fig = export.animation(run, fps=10)  # a long run's grids wrap: columns of 4, the last filled up with white
    strip = next(t for t in fig.data if t.type == "image")
    assert len({f.layout["xaxis" + strip.xaxis[1:]].range[0] for f in fig.frames}) == 2
    for frame, f in zip(fig.frames, run.snapshot_files()):
        assert np.array_equal(shown_tile(strip, frame), grid_of(run, f))
    whole = decoded(strip)
    assert whole.shape[0] == 4 * grid_of(run, run.snapshot_files()[0]).shape[0] and (whole[-2:] == 255).all()


def test_grids_of_different_heights_share_a_strip_padded_with_white():
    """A denoising run's snapshot saved before the 'output from the corrupted input' row existed has one row fewer:
    its tile is its own grid with white below, the same size as the others."""
    from aelab import export
    from aelab.viz import recon_rows

    rng = np.random.default_rng(0)
    images, noisy, recon, denoised = rng.integers(0, 256, (4, 8, 1, 12, 12), dtype=np.uint8)
    probe = {"images": images, "noisy": noisy}
    snaps = [{"recon": recon}, {"recon": recon, "denoised": denoised}]
    strip = export._grid_strip(probe, snaps)
    grids = [recon_rows(images, s["recon"], probe["noisy"], s.get("denoised"), n=8)[0] for s in snaps]
    assert grids[0].shape[0] < grids[1].shape[0] == strip.h and strip.per_column == 2
    tiles = decoded(strip.trace)
    assert np.array_equal(tiles[:grids[0].shape[0]], grids[0]) and (tiles[grids[0].shape[0]:strip.h] == 255).all()
    assert np.array_equal(tiles[strip.h:], grids[1])


def grid_of(run, snapshot) -> np.ndarray:
    """A snapshot's labelled reconstruction grid, drawn as the Train page draws it."""
    from aelab.viz import recon_rows

    probe, snap = run.probe(), run.load_snapshot(snapshot)
    return recon_rows(probe["images"], snap["recon"], probe.get("noisy"), snap.get("denoised"), n=8)[0]


def decoded(image) -> np.ndarray:
    """The pixels of an image trace's PNG."""
    import base64

    return iio.imread(base64.b64decode(image.source.split(",", 1)[1]))


def shown_tile(image, frame) -> np.ndarray:
    """The pixels an animation frame (or the figure, before any frame) shows of an image trace: those inside its x
    and y ranges."""
    pixels = decoded(image)
    left, right = frame.layout["xaxis" + image.xaxis[1:]].range
    bottom, top = frame.layout["yaxis" + image.yaxis[1:]].range  # reversed: image rows grow downwards
    return pixels[round(top + 0.5):round(bottom + 0.5), round(left + 0.5):round(right + 0.5)]


@pytest.fixture(scope="module")
def race_replay(run, tmp_path_factory):
    """A strategy race of the `run` fixture's greedy config: the greedy arm and its equal-compute end-to-end twin,
    trained here and recorded as a race in one store."""
    from aelab import race
    from aelab.export import RaceReplay

    mp = pytest.MonkeyPatch()
    mp.setattr("signal.signal", lambda *a: None)
    store = RunStore(tmp_path_factory.mktemp("race"))
    arms = race.arms(run.config, "strategy", (1, 12, 12))
    runs = [store.create(cfg) for _, cfg in arms]
    for r in runs:
        assert execute(r)["status"] == "completed"
    mp.undo()
    rec = race.save(store.root, "strategy", [label for label, _ in arms], [r.id for r in runs])
    return RaceReplay.load(store.root / race.RACES_DIR / f"{rec.id}.json")


def test_a_race_replays_on_the_compute_axis_each_arm_at_its_newest_snapshot(race_replay):
    """Recomputed by counting: at each moment t, an arm shows as many snapshots as were taken at compute <= t
    (its first before any); the moments are every arm's snapshot compute, in order; the last frame shows the ends."""
    from aelab.export import race_timeline, snapshot_gflop

    runs = race_replay.runs
    per = [snapshot_gflop(r) for r in runs]
    assert all(p == sorted(p) and len(p) >= 2 for p in per) and per[0] != per[1]
    timeline = race_timeline(runs)
    moments = [t for t, _ in timeline]
    assert moments == sorted(set(moments)) and set(moments) <= {g for p in per for g in p}
    for t, shown in timeline:
        assert shown == [max(sum(g <= t for g in p) - 1, 0) for p in per]
    assert timeline[-1][1] == [len(p) - 1 for p in per]
    assert len({tuple(s) for _, s in timeline}) == len(timeline)  # no frame repeats the one before
    by_epoch = {e["epoch"]: e["gflop"] for e in runs[0].epochs()}
    assert per[0] == [by_epoch[int(f.stem)] for f in runs[0].snapshot_files()]  # at epoch ends: their compute


def test_a_race_exports_as_a_gif_of_its_timeline_and_plays_in_the_browser(race_replay, tmp_path, capsys):
    from aelab import export

    record = str(race_replay.runs[0].dir.parent / "races" / next(
        p.name for p in (race_replay.runs[0].dir.parent / "races").iterdir()))
    n = len(export.race_timeline(race_replay.runs))
    assert main(["export", record, "--gif", str(tmp_path / "race.gif"), "--fps", "5"]) == 0
    assert f"({n} frames)" in capsys.readouterr().out
    film = iio.imread(tmp_path / "race.gif", index=None)
    assert film.shape[0] == n and film.shape[1:3] == (720, 1280)
    assert all(not np.array_equal(film[i], film[i + 1]) for i in range(n - 1))
    assert main(["export", record, "--script", str(tmp_path / "x.py")]) == 2
    assert "a race (a .json record) exports as --gif" in capsys.readouterr().err

    fig = export.race_animation(race_replay, fps=10)
    assert len(fig.frames) == n and [f.name for f in fig.frames] == [str(i) for i in range(n)]
    cursor = [f.data[0].x[0] for f in fig.frames]  # the compute cursor moves forward
    assert cursor == [t for t, _ in export.race_timeline(race_replay.runs)]
    images = [t for t in fig.data if t.type == "image"]  # one strip of grids per arm, never redrawn by a frame
    assert len(images) == 2 and all(t.type != "image" for f in fig.frames for t in f.data)
    for frame, (_, shown) in zip(fig.frames, export.race_timeline(race_replay.runs)):
        for strip, arm, k in zip(images, race_replay.runs, shown):  # each arm's grid at its shown snapshot
            assert np.array_equal(shown_tile(strip, frame), grid_of(arm, arm.snapshot_files()[k]))
    assert len(fig.layout.sliders[0].steps) == n
    cursor = len(race_replay.runs)  # the traces: each arm's curve, the cursor, each arm's map, each arm's strip
    assert fig.layout.sliders[0].active == 0 and fig.data[cursor].x[0] == fig.frames[0].data[0].x[0]
    end = export.race_animation(race_replay, fps=10, at_end=True)  # presentation mode, the race just ended
    assert end.layout.sliders[0].active == n - 1  # the slider, the cursor, the maps, grids and title: the last moment
    assert end.data[cursor].x[0] == end.frames[-1].data[0].x[0] == export.race_timeline(race_replay.runs)[-1][0]
    assert all(np.array_equal(end.data[cursor + 1 + k].x, end.frames[-1].data[1 + k].x) for k in range(cursor))
    strips = [t for t in end.data if t.type == "image"]
    assert all(np.array_equal(shown_tile(strip, end), grid_of(arm, arm.snapshot_files()[-1]))
               for strip, arm in zip(strips, race_replay.runs))
    assert end.layout.title.text == end.frames[-1].layout.title.text


def test_a_races_arms_share_one_projection_and_say_which(race_replay):
    """One arm with every UMAP layout beside one without: both maps PCA (not UMAP beside PCA), and titled so."""
    from aelab import export
    from aelab.embed import layouts as embed_layouts
    from aelab.embed import load_codes, umap_path

    greedy, e2e = race_replay.runs
    made = []
    try:
        for f in e2e.snapshot_files():
            n = len(load_codes(f))
            np.save(umap_path(f), np.random.default_rng(len(made)).standard_normal((n, 2)).astype(np.float32))
            made.append(umap_path(f))
        assert export.all_umap([e2e]) and not export.all_umap(race_replay.runs)
        pca = embed_layouts([load_codes(f) for f in e2e.snapshot_files()])
        assert not np.allclose(export.layouts(e2e, True)[-1], pca[-1])  # alone: its UMAP layouts
        assert np.allclose(export.layouts(e2e, False)[-1], pca[-1])
        fig = export.race_animation(race_replay)
        titles = [a.text for a in fig.layout.annotations]
        assert titles.count("greedy: code map (PCA)") == 1 and titles.count("end-to-end: code map (PCA)") == 1
        maps = [t for t in fig.frames[-1].data if t.type == "scattergl"]  # each arm's last frame, as drawn
        assert len(maps) == 2
        assert np.allclose(maps[1].x, export._fill_box(pca[-1])[:, 0])  # the e2e arm's PCA layout, not its UMAP one
        for f in greedy.snapshot_files():  # every frame of both arms laid out: UMAP for both
            np.save(umap_path(f), np.zeros((len(load_codes(f)), 2), np.float32))
            made.append(umap_path(f))
        titles = [a.text for a in export.race_animation(race_replay).layout.annotations]
        assert "greedy: code map (UMAP)" in titles and "end-to-end: code map (UMAP)" in titles
    finally:
        for p in made:
            p.unlink(missing_ok=True)
