"""PCA maps, frame alignment and the projection process's bookkeeping (no UMAP compile: seconds)."""
import os
from pathlib import Path

import numpy as np

from aelab import embed

ROOT = Path(__file__).resolve().parents[1]


def rot(theta):
    return np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


def test_pca_2d_keeps_the_two_main_directions():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 6)) * [10, 5, 0.1, 0.1, 0.1, 0.1]
    xy = embed.pca_2d(x)
    assert xy.shape == (500, 2) and xy.dtype == np.float32
    assert np.allclose(np.abs(np.corrcoef(xy[:, 0], x[:, 0])[0, 1]), 1, atol=1e-3)
    assert embed.pca_2d(x[:, :1]).shape == (500, 2)  # a 1-unit code still maps


def test_align_undoes_rotation_reflection_scale_and_shift():
    rng = np.random.default_rng(1)
    prev = rng.standard_normal((300, 2))
    new = (prev @ rot(1.1)) * [1, -1] * 3.0 + [5, -2]
    assert np.allclose(embed.align(new, prev), prev, atol=1e-4)
    assert np.array_equal(embed.align(new, None), new.astype(np.float32))
    assert embed.align(new[:10], prev).shape == (10, 2)  # different point sets: left as is


def test_a_layout_unlike_the_reference_keeps_the_references_spread():
    """Least-squares Procrustes would scale an uncorrelated layout down to a knot at the centre."""
    rng = np.random.default_rng(7)
    prev, new = rng.standard_normal((400, 2)) * 5, rng.standard_normal((400, 2))
    out = embed.align(new, prev)

    def spread(xy):
        return np.sqrt(((xy - xy.mean(0)) ** 2).sum(1).mean())
    assert np.isclose(spread(out), spread(prev), rtol=1e-4) and np.allclose(out.mean(0), prev.mean(0), atol=1e-4)


def test_consecutive_layouts_do_not_jump():
    rng = np.random.default_rng(2)
    codes = rng.standard_normal((400, 8)) * np.arange(8, 0, -1)
    frames = [codes, -codes + 0.01 * rng.standard_normal(codes.shape)]  # a sign flip PCA would show
    a, b = embed.layouts(frames)
    assert np.abs(a - b).mean() < 0.05 * np.abs(a).mean()


def _snapshot(d, epoch, codes):
    (d / "snapshots").mkdir(parents=True, exist_ok=True)
    p = d / "snapshots" / f"{epoch:05d}.npz"
    np.savez(p, codes=codes.astype(np.float16), epoch=np.int32(epoch))
    return p


class FakeProjector:
    """Stands in for UMAP: PCA, remembering whether each fit started from a previous layout."""

    def __init__(self):
        self.inits = []

    def fit(self, codes, init=None):
        self.inits.append(init is not None)
        return embed.pca_2d(codes) if init is None else init + 0.01


def test_projection_process_handles_live_runs_newest_first_and_replays_in_order(tmp_path):
    rng = np.random.default_rng(3)
    live, saved = tmp_path / "b-live", tmp_path / "a-saved"
    for d, status in ((live, "running"), (saved, "completed")):
        d.mkdir()
        (d / "status.json").write_text(f'{{"status": "{status}", "pid": null}}')
        for e in (1, 2, 3):
            _snapshot(d, e, rng.standard_normal((50, 4)))
    proj = FakeProjector()
    assert embed.work_once(proj, tmp_path) == 1  # live run: only its newest frame
    assert embed.read_layout(live / "snapshots/00003.npz").shape == (50, 2)
    assert embed.read_layout(saved / "snapshots/00001.npz") is None  # not asked for
    (saved / embed.REQUEST_FILE).touch()
    assert embed.work_once(proj, tmp_path) == 3
    assert proj.inits[-3:] == [False, True, True]  # each replay frame starts from the previous layout
    assert not (saved / embed.REQUEST_FILE).exists()


def test_a_live_run_gets_a_new_layout_no_more_often_than_the_page_shows_one(tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "LIVE_EVERY_S", 60.0)  # 4 s on a 2-core machine; long here, so no stall can flake it
    rng = np.random.default_rng(5)
    run = tmp_path / "live"
    run.mkdir()
    status = run / "status.json"
    status.write_text('{"status": "running", "epochs_total": 9, "pid": null}')
    _snapshot(run, 1, rng.standard_normal((40, 3)))
    proj = FakeProjector()
    assert embed.work_once(proj, tmp_path) == 1
    _snapshot(run, 2, rng.standard_normal((40, 3)))  # the worker's next frame
    assert embed.work_once(proj, tmp_path) == 0  # the layout of frame 1 is too recent
    laid = embed.umap_path(run / "snapshots/00001.npz")
    os.utime(laid, (laid.stat().st_atime, laid.stat().st_mtime - 61))
    _snapshot(run, 3, rng.standard_normal((40, 3)))
    assert embed.work_once(proj, tmp_path) == 1  # then the newest frame, skipping frame 2
    assert embed.read_layout(run / "snapshots/00003.npz") is not None
    assert embed.read_layout(run / "snapshots/00002.npz") is None
    _snapshot(run, 9, rng.standard_normal((40, 3)))  # the run's last epoch: at once, before its status says ended
    assert embed.work_once(proj, tmp_path) == 1
    _snapshot(run, 10, rng.standard_normal((40, 3)))  # (a stale epochs_total: a frame past it counts as last too)
    assert embed.work_once(proj, tmp_path) == 1


def test_a_run_stopped_between_layouts_gets_its_last_frame_projected(tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "LIVE_EVERY_S", 60.0)
    rng = np.random.default_rng(6)
    run = tmp_path / "stopped"
    run.mkdir()
    (run / "status.json").write_text('{"status": "running", "epochs_total": 50, "pid": null}')
    _snapshot(run, 1, rng.standard_normal((40, 3)))
    proj = FakeProjector()
    assert embed.work_once(proj, tmp_path) == 1
    _snapshot(run, 4, rng.standard_normal((40, 3)))
    assert embed.work_once(proj, tmp_path) == 0
    (run / "status.json").write_text('{"status": "stopped", "epochs_total": 50, "pid": null}')
    assert embed.work_once(proj, tmp_path) == 1  # the page of the stopped run shows this frame
    assert embed.read_layout(run / "snapshots/00004.npz") is not None
    _snapshot(run, 5, rng.standard_normal((40, 3)))  # (never happens; but once ended, nothing more without a request)
    assert embed.work_once(proj, tmp_path) == 0
    monkeypatch.setattr(embed, "LIVE_EVERY_S", 0.0)  # a bigger machine: every newest frame of a live run
    (run / "status.json").write_text('{"status": "running", "pid": null}')
    assert embed.work_once(proj, tmp_path) == 1
    _snapshot(run, 6, rng.standard_normal((40, 3)))
    assert embed.work_once(proj, tmp_path) == 1


def test_frame_layouts_switch_to_umap_when_its_file_appears(tmp_path):
    rng = np.random.default_rng(4)
    snaps = [_snapshot(tmp_path, e, rng.standard_normal((60, 5))) for e in (1, 2)]
    fl = embed.FrameLayouts().update(snaps)
    assert fl.methods == ["PCA", "PCA"]
    np.save(embed.umap_path(snaps[1]), rng.standard_normal((60, 2)).astype(np.float32))
    fl.update(snaps + [_snapshot(tmp_path, 3, rng.standard_normal((60, 5)))])
    assert fl.methods == ["PCA", "UMAP", "PCA"] and all(x.shape == (60, 2) for x in fl.xy)


def test_the_umap_wait_estimate_counts_down_from_the_last_warm_up(tmp_path):
    """The note under a PCA map while UMAP warms: elapsed time from .umap_warming, the estimate from how long the
    last warm-up took (.umap_warmup_s, kept across server starts)."""
    from aelab.embed import LAST_WARMUP_FILE, WARMING_FILE, warmup_eta
    from aelab.ui.views import umap_wait

    assert warmup_eta(tmp_path, now=100.0) == (0.0, None)  # nothing started: no estimate
    (tmp_path / WARMING_FILE).write_text("90.0\n")
    assert warmup_eta(tmp_path, now=100.0) == (10.0, None)
    assert "10 s so far" in umap_wait(10.0, None) and "once per app start" in umap_wait(10.0, None)
    (tmp_path / LAST_WARMUP_FILE).write_text("35.5\n")
    elapsed, last = warmup_eta(tmp_path, now=100.0)
    assert (elapsed, last) == (10.0, 35.5) and umap_wait(elapsed, last).startswith("UMAP in about 26 s")
    assert "longer than last time (40 s so far, 36 s then)" in umap_wait(*warmup_eta(tmp_path, now=130.0))


PROBE_KERNEL = "import numba\n\n\n@numba.njit\ndef twice(x):\n    return 2 * x\n"


def test_umaps_kernels_compile_once_then_load_from_numbas_disk_cache(tmp_path):
    """umap-learn declares most kernels without cache=True; cache_kernels turns the disk cache on for every
    kernel of a umap* module, so a second process loads instead of compiling (a stand-in module here: the real
    one costs 20 s of compiling on a clean machine)."""
    import subprocess
    import sys

    (tmp_path / "umap_aelab_probe.py").write_text(PROBE_KERNEL)
    script = ("import umap_aelab_probe as m; from aelab.embed import cache_kernels; n = cache_kernels(); "
              "m.twice(3.0); print(n, sum(m.twice.stats.cache_hits.values()))")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}")
    seen = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60,
                           check=True).stdout.split() for _ in range(2)]
    assert int(seen[0][0]) >= 1 and seen[0][1] == "0"  # the first process compiles (and writes the cache)
    assert seen[1][1] == "1"  # the second loads it from disk


def test_live_layouts_come_as_often_as_the_train_page_redraws_its_map():
    from aelab.ui import live

    assert (embed.LIVE_EVERY_S > 0) == live.SMALL_MACHINE
    assert embed.LIVE_EVERY_S in (0.0, live.SNAPSHOT_VIEW_S)
