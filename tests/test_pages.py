"""Every page through Streamlit's AppTest, with short real training runs on the tiny shapes set.

AppTest does not fire `run_every` fragments, so the tests poll with repeated `at.run()`.
"""
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from aelab.metrics import header, label
from aelab.presets import PRESETS

from apptest import lab_env, open_page, tab_for
TINY = {"data.name": "shapes", "model.layers": "32,8", "train.epochs": 2, "train.batch_size": 32}


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    d = tmp_path_factory.mktemp("runs")
    lab_env(mp, d)
    yield d
    mp.undo()


app = open_page


def qp(at, key: str) -> str:
    v = at.query_params[key]
    return v[-1] if isinstance(v, list) else v


def charts(at) -> dict:
    out = {}
    for c in at.get("plotly_chart"):
        spec = json.loads(c.proto.spec)
        out[spec["layout"].get("title", {}).get("text", "")] = spec
    return out


def progress_text(at) -> str:
    bars = at.get("progress")
    return bars[0].proto.text if bars else ""


def wait_for(at, text: str, timeout: float = 90) -> str:
    t = time.time()
    while time.time() - t < timeout:
        at.run()
        assert not at.exception, at.exception
        if text in progress_text(at):
            return progress_text(at)
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {text!r}; last: {progress_text(at)!r}")


def set_widgets(at, values: dict):
    for k, v in values.items():
        tab_for(at, k)
        w = at.get_by_key(k) if hasattr(at, "get_by_key") else None
        kind = type(w).__name__ if w is not None else ""
        if kind == "TextInput":
            at.text_input(key=k).set_value(str(v)).run()
        elif kind == "Selectbox":
            at.selectbox(key=k).set_value(v).run()
        elif kind == "Checkbox":
            at.checkbox(key=k).set_value(v).run()
        else:
            at.number_input(key=k).set_value(v).run()
    assert not at.exception, at.exception


def test_home_shows_presets_and_links_to_train(runs_dir):
    at = app()
    links = [p.proto.query_string for p in at.get("page_link")]
    assert sum("preset=" in q for q in links) == len(PRESETS)


def test_home_says_so_when_there_are_no_runs(tmp_path, monkeypatch):
    lab_env(monkeypatch, tmp_path / "empty")  # its own store: tests run in any order
    assert any("No runs yet" in i.value for i in app().info)


def test_invalid_config_is_explained_and_launch_disabled(runs_dir):
    at = app("app_pages/1_Train.py")
    set_widgets(at, {"sparsity.kind": "kl", "sparsity.weight": 0.1})
    assert "sparsity.kind: kl needs code units in (0,1)" in at.error[0].value
    assert at.button(key="launch").disabled


def test_preset_link_and_url_reproduce_a_setup(runs_dir):
    at = app("app_pages/1_Train.py", preset="tied-stacked")
    assert at.text_input(key="model.layers").value == "100,30"
    assert at.caption[0].value.startswith("Preset **Tied stacked AE (greedy)**:")  # the loaded preset is named
    assert at.checkbox(key="model.tied").value is True
    title = next(t for t in charts(at) if "autoencoder" in t)
    assert "tied" in title and "if untied" in title
    assert qp(at, "model.layers") == "100,30"  # the URL now holds the setup
    # the settings on screen, as a program to take home (before any run)
    assert {b.proto.label for b in at.get("download_button")} == {"Take home: script (.py)", "Take home: notebook"}
    at2 = app("app_pages/1_Train.py", **{"model.layers": "64,16", "train.strategy": "greedy"})
    assert at2.text_input(key="model.layers").value == "64,16"
    assert tab_for(at2, "train.strategy").selectbox(key="train.strategy").value == "greedy"


@pytest.fixture(scope="module")
def greedy_run(runs_dir):
    """A stage-by-stage greedy run launched and driven through the Train page."""
    at = app("app_pages/1_Train.py")
    set_widgets(at, {**TINY, "train.strategy": "greedy", "train.pause_after_stage": True, "noise.kind": "masking",
                     "noise.level": 0.3})
    at.button(key="launch").click().run()
    assert not at.exception, at.exception
    run_id = qp(at, "run")
    wait_for(at, "paused")
    assert at.button(key="next_stage") and at.button(key="run_all")
    at.button(key="run_all").click().run()
    wait_for(at, "completed")
    return at, run_id


def test_train_page_runs_live_and_stage_by_stage(greedy_run):
    at, run_id = greedy_run
    figs = charts(at)
    loss = next(f for t, f in figs.items() if t.startswith("loss:"))
    assert "4 epochs logged" in loss["layout"]["title"]["text"]
    names = [a.get("text") for a in loss["layout"].get("annotations", [])]
    # greedy stages shaded and labelled
    assert "pretraining layer 1 of 2" in names and "pretraining layer 2 of 2" in names
    traces = {d.get("name") for d in loss["data"]}
    assert {label("val_full_sq_err"), label("val_stage_sq_err")} <= traces  # stage 1 of 2: both curves
    assert any(t.startswith("code map h2 (PCA)") for t in figs)
    assert any(t.startswith("code activations") for t in figs)
    assert len(at.image) == 1 and "output from the corrupted input" in at.image[0].proto.imgs[0].caption
    text = " ".join(m.value for m in at.markdown)
    assert "vs the corrupted input itself (identity)" in text and "Encoder ‖J‖_F" in text
    assert any(t.startswith("mean activation per code unit") for t in figs)


@pytest.fixture(scope="module")
def two_runs(greedy_run, runs_dir):
    import signal

    from aelab.config import RunConfig
    from aelab.runs import RunStore
    from aelab.worker import execute

    linear = {"model.activation": "linear", "train.loss": "mse"}  # a linear AE: its angles to PCA are shown
    run = RunStore(runs_dir).create(RunConfig(name="e2e").with_overrides({**TINY, **linear, "model.tied": True}))
    with pytest.MonkeyPatch.context() as mp:  # trained in this process: no second interpreter importing torch
        mp.setattr(signal, "signal", lambda *a: None)  # execute's SIGTERM handler is for a worker process
        assert execute(run)["status"] == "completed"
    return greedy_run[1], run.id


def test_compare_page(two_runs):
    at = app("app_pages/2_Compare.py")
    assert len(at.multiselect(key="compare.runs").value) == 2
    assert at.radio(key="compare.x").value == "gflop"  # greedy vs end-to-end: equal compute by default
    curves = next(f for t, f in charts(at).items() if t.startswith("validation squared error"))
    assert curves["layout"]["xaxis"]["title"]["text"] == label("gflop")
    assert label("val_full_sq_err") in curves["layout"]["title"]["text"]
    at.radio(key="compare.x").set_value("seconds").run()
    assert not at.exception, at.exception
    figs = charts(at)
    curves = next(f for t, f in figs.items() if t.startswith("validation squared error"))
    assert len(curves["data"]) == 2 and curves["layout"]["xaxis"]["title"]["text"].startswith("wall-clock")
    df = at.dataframe[0].value
    assert len(df) == 2 and df[header("pca_test_sq_err")].notna().all()
    assert df[header("linear_probe_accuracy")].notna().all() and (df[header("gflop")] > 0).all()
    assert df[header("jacobian_fro")].notna().all()
    noisy = df["run"].str.contains("greedy")  # the greedy run has masking noise, the linear one none
    assert df[header("denoised_sq_err")].notna().tolist() == noisy.tolist()
    assert df[header("pca_angles_deg")].notna().tolist() == (~noisy).tolist()
    assert len(at.get("download_button")) == 2
    assert len(at.image) == 2 and sum(t.startswith("code map") for t in figs) == 2


def test_replay_frames_are_named_by_their_own_epoch_not_their_position():
    """Snapshots come at most every 2 s and at stage edges: the 9th frame of a 17-epoch run is not epoch 9."""
    from aelab.ui.inspect import frame_names

    class Ran:
        def epochs(self):
            return [{"epoch": e, "stage_name": "pretraining layer 1 of 2" if e <= 3 else "fine-tuning"}
                    for e in range(1, 18)]
    files = [Path(f"snapshots/{e:05d}.npz") for e in (1, 3, 4, 9, 17)] + [Path("snapshots/odd.npz")]
    assert frame_names(Ran(), files) == ["epoch 1 (pretraining layer 1 of 2)", "epoch 3 (pretraining layer 1 of 2)",
                                         "epoch 4 (fine-tuning)", "epoch 9 (fine-tuning)", "epoch 17 (fine-tuning)",
                                         "snapshot 6"]
    assert frame_names(type("Live", (), {"epochs": lambda self: []})(), files[:1]) == ["epoch 1"]


def test_a_just_ended_runs_map_waits_for_its_last_layout_and_says_which_frame_it_shows(two_runs, runs_dir, tmp_path,
                                                                                      monkeypatch):
    """The page stops polling once a run ends; while the UMAP process still lays out the last frame, the map keeps
    polling (30 s at most) and its note says so. A copy of a finished run, so no other test sees the layout files."""
    import shutil

    from streamlit.testing.v1 import AppTest

    from aelab.embed import umap_path
    from aelab.runs import Run
    from aelab.ui import live, state

    run_dir = tmp_path / f"{two_runs[0]}-umap"
    shutil.copytree(runs_dir / two_runs[0], run_dir)
    snaps = sorted((run_dir / "snapshots").glob("[0-9]*.npz"))
    assert len(snaps) >= 2
    n = len(np.load(snaps[0])["codes"])
    np.save(umap_path(snaps[0]), np.random.default_rng(0).standard_normal((n, 2)).astype(np.float32))
    run = Run(run_dir)
    monkeypatch.setattr(state, "umap_state", lambda: "ready")
    ended = dict(run.status(), status="completed", updated=time.time())
    assert live.map_catching_up(run, ended)
    assert not live.map_catching_up(run, dict(ended, updated=time.time() - live.CATCH_UP_S - 1))
    assert not live.map_catching_up(run, dict(ended, status="running"))  # a live run polls anyway

    def snapshot_panel(path, is_live, catching_up):
        from aelab.runs import Run
        from aelab.ui import live
        live._draw_snapshot(Run(path), is_live, catching_up)

    def note(is_live: bool, catching_up: bool) -> str:
        at = AppTest.from_function(snapshot_panel, args=(str(run_dir), is_live, catching_up), default_timeout=60)
        at.run()
        assert not at.exception, at.exception
        return next(c.value for c in at.caption if c.value.startswith("UMAP of epoch"))
    catching = live.map_catching_up
    monkeypatch.setattr(live, "map_catching_up", lambda run, status: True)
    monkeypatch.setattr(live, "LIVE_EVERY_S", 4.0)
    first, last = (int(s.stem) for s in (snaps[0], snaps[-1]))
    assert note(False, True) == (f"UMAP of epoch {first}, the newest frame with a UMAP layout; the last frame's is "
                                 f"being made (the grid shows epoch {last}).")
    assert "; a live run gets a new one at most every 4 s on this machine (the grid" in note(True, False)
    assert f"layout (the grid shows epoch {last})" in note(False, False)  # ended long ago: nothing more is coming
    np.save(umap_path(snaps[-1]), np.zeros((n, 2), np.float32))
    assert not catching(run, ended)  # the last frame has its layout: the map stops polling


def test_inspect_page_replays_and_probes_the_model(two_runs, runs_dir):
    at = app("app_pages/3_Inspect.py", run=two_runs[0])
    assert at.selectbox(key="inspect.run").value == two_runs[0]
    at.select_slider(key="inspect.snapshot").set_value(0).run()
    assert not at.exception, at.exception
    assert any("epoch 1, pretraining layer 1 of 2" in t for t in charts(at))
    assert [s.value for s in at.subheader] == ["Replay", "Take it home", "First-layer filters",
                                                "Interpolation through the code", "Denoising demo",
                                                "Worst-reconstructed validation images"]
    assert len(at.image) == 5
    assert {b.proto.label for b in at.get("download_button")} == {
        "Replay as GIF", "Replay as MP4", "Last frame as PNG", "Take home: script (.py)", "Take home: notebook"}
    assert sum("vs the corrupted input itself (identity)" in m.value for m in at.markdown) == 2  # replay, demo
    at.selectbox(key="inspect.noise.kind").set_value("gaussian").run()
    assert not at.exception, at.exception
    at.toggle(key="inspect.animate").set_value(True).run()  # the replay as a browser-side animation
    assert not at.exception, at.exception
    anim = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "frames" in json.loads(c.proto.spec))
    n = len(list((runs_dir / two_runs[0] / "snapshots").glob("*.npz")))
    assert len(anim["frames"]) == n and [f["name"] for f in anim["frames"]] == [str(i) for i in range(n)]
    epochs = [f["data"][0]["x"][0] for f in anim["frames"]]  # the loss cursor moves forward frame by frame
    assert epochs == sorted(epochs) and epochs[0] < epochs[-1]


def test_home_lists_recent_runs(two_runs):
    at = app()
    df = at.dataframe[0].value
    assert set(df["run"]) == set(two_runs) and set(df["status"]) == {"completed"}


def test_uploaded_csv_is_checked_against_the_loss(tmp_path, monkeypatch):
    from aelab.ui.build import check

    monkeypatch.setenv("AELAB_DATA_ROOT", str(tmp_path))  # the app reads files only in its data folders
    csv = tmp_path / "table.csv"
    csv.write_text("a,b,c,label\n" + "\n".join(f"{i},{i * 2 % 7},{i % 3},{i % 2}" for i in range(40)))
    base = {"data.name": "file", "data.path": str(csv), "model.layers": "4,2"}
    cfg, err = check({**base, "train.loss": "bce"})
    assert cfg is None and err.startswith("train.loss: bce needs data in [0,1]")
    cfg, err = check({**base, "train.loss": "mse"})
    assert err is None and cfg.data.path == str(csv)
    cfg, err = check({**base, "train.loss": "mse", "model.kind": "conv"})
    assert err.startswith("model.kind: a conv autoencoder needs image data")


def test_live_maps_show_the_newest_umap_frame_while_the_newest_is_not_projected(greedy_run, runs_dir):
    """On the Train page and a projector the map must not flip to the newest frame's PCA while UMAP catches up."""
    from aelab.embed import umap_path
    from aelab.runs import Run

    _, run_id = greedy_run
    run = Run(runs_dir / run_id)
    files = run.snapshot_files()
    assert len(files) >= 3
    codes = np.load(files[1])["codes"]
    np.save(umap_path(files[1]), np.random.default_rng(0).normal(size=(len(codes), 2)).astype(np.float32))
    status = json.loads((run.dir / "status.json").read_text())
    (run.dir / "status.json").write_text(json.dumps({**status, "status": "running", "pid": os.getpid()}))
    try:
        shown = app("app_pages/1_Train.py", run=run_id, present="1")
        titles = [t for t in charts(shown) if t.startswith("code map")]
        epoch = int(run.load_snapshot(files[1])["epoch"])
        assert titles == [f"code map (UMAP of epoch {epoch})"], titles
        train = app("app_pages/1_Train.py", run=run_id)  # the Train page's live map: the same frame
        (title,) = [t for t in charts(train) if t.startswith("code map")]
        assert "(UMAP)" in title and f"epoch {epoch}," in title, title
    finally:
        (run.dir / "status.json").write_text(json.dumps(status))
        umap_path(files[1]).unlink()
