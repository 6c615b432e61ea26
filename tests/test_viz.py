"""Figures and image grids: shapes, labels, stage shading, PNG export."""
import numpy as np

from aelab import viz


def epoch_rec(stage, epoch, name, n=100):
    return {"kind": "epoch", "stage": stage, "stage_name": name, "epoch": epoch, "step": epoch * 4,
            "samples": epoch * n, "seconds": epoch * 0.5, "train_loss": 0.3 / epoch, "val_loss": 0.31 / epoch,
            "gflop": epoch * 0.02, "val_stage_pixel_loss": 0.3, "val_stage_sq_err": 30.0 / epoch,
            "val_full_sq_err": (30.0 if stage == 2 else 50.0) / epoch}


METRICS = [{"kind": "step", "stage": 1, "epoch": 1, "step": 1, "samples": 32, "seconds": 0.1, "loss": 0.7},
           epoch_rec(1, 1, "stage 1 of 2"), epoch_rec(1, 2, "stage 1 of 2"),
           {"kind": "step", "stage": 2, "epoch": 3, "step": 9, "samples": 250, "seconds": 1.2, "loss": 0.2},
           epoch_rec(2, 3, "stage 2 of 2"), epoch_rec(2, 4, "stage 2 of 2")]


def test_loss_figure_shades_and_labels_greedy_stages():
    fig = viz.loss_figure(METRICS, "epoch")
    assert fig.layout.title.text == "loss: 2 steps, 4 epochs logged"
    assert sorted({s.x0 for s in fig.layout.shapes}) == [0.0, 2.0]  # both panels shaded
    assert {a.text for a in fig.layout.annotations} >= {"stage 1 of 2", "stage 2 of 2"}
    assert list(fig.data[0].x) == [0.32, 2.5]  # steps at fractional epochs: samples / train size
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type != "log"  # stage objectives differ in scale


def test_stage_labels_shorten_until_every_band_holds_its_own():
    def spans(*widths, n=3):
        edges = np.cumsum((0,) + widths)
        names = [f"pretraining layer {k} of {n}" for k in range(1, n + 1)] + ["fine-tuning"]
        return [(float(a), float(b), i + 1, names[i]) for i, (a, b) in enumerate(zip(edges, edges[1:]))]
    # 740 px, 12-px text (7.2 px a character, 4 px padding): "pretraining layer 1 of 3" needs 173 px
    assert viz.stage_tags(spans(10, 10, n=1)) == ["pretraining layer 1 of 1", "fine-tuning"]  # 366 px each
    assert viz.stage_tags(spans(10, 10, 10, 20)) == ["layer 1", "layer 2", "layer 3", "fine-tune"]  # 144 px
    assert viz.stage_tags(spans(10, 10, 10, 200)) == ["L1", "L2", "L3", "FT"]  # 28 px: "layer 1" needs 50
    assert viz.stage_tags(spans(1, 1, 1, 300)) == ["", "", "", "FT"]  # 2-px bands: no room even for "L1"
    assert viz.stage_tags(spans(10, 10, n=1), x_max=200.0) == ["L1", "FT"]  # steps ran on to x=200: 37-px bands
    old = [(0.0, 4.0, 1, "stage 1 of 2"), (4.0, 8.0, 2, "stage 2 of 2"), (8.0, 100.0, 3, "fine-tune")]
    assert viz.stage_tags(old) == ["S1", "S2", "FT"] and viz.stage_tags([]) == []  # older runs' names
    # a projector: 18-px text in 370 px: 49-px bands, "layer 1" needs 76
    assert viz.stage_tags(spans(10, 10, 10, 40), font_px=18, plot_px=370) == ["L1", "L2", "L3", "FT"]
    fig = viz.loss_figure([epoch_rec(s, e, name) for s, e, name in
                           [(1, 1, "pretraining layer 1 of 2"), (1, 2, "pretraining layer 1 of 2"),
                            (2, 3, "fine-tuning")] + [(2, e, "fine-tuning") for e in range(4, 40)]])
    assert {a.text for a in fig.layout.annotations} >= {"L1", "FT"}  # 2 of 39 epochs: 34 px


def test_end_to_end_has_no_stage_shading_and_other_axes():
    recs = [epoch_rec(1, e, "end-to-end") for e in (1, 2)]
    assert not viz.loss_figure(recs, "seconds").layout.shapes
    assert viz.loss_figure(recs).layout.yaxis.type != "log"
    fig = viz.compare_figure({"a": recs, "b": recs}, "samples")
    assert len(fig.data) == 2 and list(fig.data[0].x) == [100, 200]


def test_epochs_are_marked_only_while_they_can_be_told_apart_and_present_mode_thickens_every_curve():
    from aelab.ui import present

    for n, mode in ((viz.MARKERS_UP_TO, "lines+markers"), (viz.MARKERS_UP_TO + 1, "lines")):
        recs = [epoch_rec(1, e, "end-to-end") for e in range(1, n + 1)]
        fig = viz.loss_figure([{"kind": "step", "epoch": 1, "step": 1, "samples": 32, "seconds": 0.1, "loss": 0.7}]
                              + recs)
        assert [t.mode for t in fig.data] == ["lines"] + [mode] * 4  # steps; train, val; two pixel-error curves
        assert {t.mode for t in viz.compare_figure({"a": recs}).data} == {mode}
        widths = [t.line.width for t in present.big(fig, 500).data]
        assert widths == [1, 3, 3, 3, 3]  # the step trace stays thin on a projector, epoch curves are thick


def test_grids_upscale_small_images_and_stack_labelled_rows():
    rng = np.random.default_rng(0)
    imgs, out = (rng.integers(0, 255, (16, 1, 8, 8), dtype=np.uint8) for _ in range(2))
    grid, rows = viz.recon_rows(imgs, out, noisy=255 - imgs, denoised=out // 2)
    assert rows == ["clean", "corrupted input (what the network sees)", "output from the corrupted input",
                    "output from the clean input"]
    assert grid.dtype == np.uint8 and grid.shape[2] == 3 and grid.shape[0] >= 4 * viz.MIN_CELL_PX
    plain = viz.image_grid(np.concatenate([imgs[:8], 255 - imgs[:8], out[:8] // 2, out[:8]]))
    assert grid.shape[0] == plain.shape[0] and grid.shape[1] > plain.shape[1]  # a label margin at the left
    np.testing.assert_array_equal(grid[:, -plain.shape[1]:], plain)  # the cells are the rows asked for
    margin = grid[:, : grid.shape[1] - plain.shape[1]]
    assert (margin < 128).any() and (margin == 255).mean() > 0.7  # dark label text on white
    assert viz.recon_rows(imgs, imgs, noisy=imgs)[1] == ["original", "reconstruction"]  # no noise: no row
    assert len(viz.recon_rows(imgs, imgs, noisy=255 - imgs)[1]) == 3  # an old snapshot without the denoised row


def test_image_grid_is_torchvisions_make_grid():
    import torch
    from torchvision.utils import make_grid

    rng = np.random.default_rng(1)
    for n, c, nrow in ((16, 1, 8), (5, 3, 2), (7, 1, 10), (1, 1, 8)):
        imgs = rng.integers(0, 255, (n, c, 12, 12), dtype=np.uint8)
        ref = make_grid(torch.from_numpy(viz.upscale(imgs)), nrow=nrow, padding=2, pad_value=255)  # cells upscaled
        ref = (ref if ref.shape[0] == 3 else ref.expand(3, -1, -1)).permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(viz.image_grid(imgs, nrow=nrow), ref)


def test_unit_activation_and_pca_angle_figures():
    fig = viz.unit_activation_figure(np.array([0.1, 0.02, 0.05]), target=0.05)
    assert list(fig.data[0].y) == [0.1, 0.02, 0.05] and fig.layout.shapes[0].y0 == 0.05
    assert not viz.unit_activation_figure(np.array([0.3, 0.4])).layout.shapes  # no rho without KL
    fig = viz.pca_angles_figure(np.array([30.0, 0.5, 2.0]), 1.004)
    assert list(fig.data[0].y) == [0.5, 2.0, 30.0] and "largest 30°" in fig.layout.title.text


def test_architecture_figure_marks_code_and_tied_pairs():
    blocks = viz.arch_blocks("dense", (1, 28, 28), (128, 64, 32))
    assert [b["label"] for b in blocks] == ["784", "128", "64", "32", "64", "128", "784"]
    assert [b["role"] for b in blocks].count("code") == 1
    fig = viz.arch_figure("dense", (1, 28, 28), (128, 64, 32), True, 1000, 2000)
    assert sum("tied" in (a.text or "") for a in fig.layout.annotations) == 3
    # by hand: 7 blocks (input, 3 encoder, 2 decoder hidden, output), each a box with a size and a role label;
    # E1-E3 and D1-D3 between them; one dotted link per tied pair
    assert len(fig.layout.shapes) == 7 and len(fig.data) == 3
    assert len(fig.layout.annotations) == 7 * 2 + 6 + 3
    assert [a.text for a in fig.layout.annotations].count("code") == 1
    assert "1,000 parameters (tied; 2,000 if untied)" in fig.layout.title.text
    conv = viz.arch_blocks("conv", (1, 28, 28), (16, 8))
    assert conv[1]["label"] == "16x14x14" and conv[2]["label"] == "8x7x7"


def test_code_map_one_trace_per_class_and_png_export():
    xy = np.random.default_rng(0).standard_normal((40, 2)).astype(np.float32)
    fig = viz.code_map_figure(xy, np.arange(40) % 4, ["a", "b", "c", "d"], "t", viz.shared_ranges([xy]))
    assert [t.name for t in fig.data] == ["a", "b", "c", "d"]
    png = viz.compare_png({"a": [epoch_rec(1, 1, "x")]}, "epoch", {"a": np.zeros((20, 40, 3), np.uint8)})
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_live_map_picks_the_newest_frame_with_a_umap_layout():
    from aelab.ui.views import newest_umap_frame

    assert newest_umap_frame(["UMAP", "UMAP", "PCA", "PCA"]) == 1
    assert newest_umap_frame(["PCA", "PCA"]) is None and newest_umap_frame([]) is None
    assert newest_umap_frame(["PCA", "UMAP"]) == 1


def test_log_ticks_are_one_two_five_over_the_data():
    assert viz.log_ticks([0.07, 0.3, 1.2]) == [0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
    assert viz.log_ticks([None, float("nan"), -1]) == []
