"""The metric vocabulary, the alias table for old run folders, and the training-compute counter."""
import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from aelab import flops, viz
from aelab import train as T
from aelab.config import RunConfig
from aelab.data import Data
from aelab.evaluate import summarize
from aelab.metrics import FIELDS, VOCABULARY, header, label
from aelab.model import build_model
from aelab.runs import Run

N = 40  # training rows of the hand-counted runs; batch 16 -> batches of 16, 16, 8


def _tabular(d: int = 6) -> Data:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(N + 20, d, generator=g), torch.arange(N + 20) % 2
    return Data("t", x[:N], y[:N], x[N:N + 10], y[N:N + 10], x[N + 10:], y[N + 10:], "tabular")


def _images(size: int = 8) -> Data:
    x = torch.rand(N + 20, 1, size, size, generator=torch.Generator().manual_seed(0))
    return Data("i", x[:N], None, x[N:N + 10], None, x[N + 10:], None, "image")


def _run(overrides: dict, data: Data):
    cfg = RunConfig().with_overrides({"train.loss": "mse", "train.epochs": 2, "train.batch_size": 16, **overrides})
    torch.manual_seed(0)
    model = build_model(cfg, data.input_shape)
    records = []
    ctx = T.train(cfg, data, model, emit=lambda kind, **e: records.append((kind, e)))
    return cfg, model, ctx, records


# Dense 6-4-2 per sample: encoder 1 6x4 = 24, decoder 1 24, encoder 2 4x2 = 8, decoder 2 8; whole network 64.
HAND_DENSE = {
    "end_to_end": 3 * 64 * N * 2,  # 2 epochs, forward + backward
    # stage 1 (2 epochs), caching h1 (encoder 1 once, forward only), stage 2 (2 epochs), fine-tune (2 epochs)
    "greedy": 3 * 48 * N * 2 + 24 * N + 3 * 16 * N * 2 + 3 * 64 * N * 2,
}


@pytest.mark.parametrize("strategy", ["end_to_end", "greedy"])
def test_dense_compute_matches_a_hand_count(strategy):
    cfg, model, ctx, records = _run({"model.layers": "4,2", "train.strategy": strategy,
                                     "train.finetune_epochs": 2}, _tabular())
    assert ctx.macs == HAND_DENSE[strategy] == flops.planned_macs(model, cfg, N)
    epochs = [e for k, e in records if k == "epoch"]
    assert epochs[-1]["gflop"] == pytest.approx(2 * HAND_DENSE[strategy] / 1e9)
    steps = [e["gflop"] for k, e in records if k in ("step", "epoch")]
    assert steps == sorted(steps) and steps[0] > 0


def test_conv_compute_matches_a_hand_count():
    # 1x8x8 input, layers 2,3, 3x3 kernels: conv k runs at level k-1's resolution (8x8, then 4x4).
    hand = [(9 * 1 * 2 * 64, 9 * 2 * 1 * 64), (9 * 2 * 3 * 16, 9 * 3 * 2 * 16)]
    for tied in (False, True):
        cfg, model, ctx, _ = _run({"model.kind": "conv", "model.layers": "2,3", "model.tied": tied}, _images())
        assert flops.stage_macs(model) == hand
        assert ctx.macs == 3 * sum(map(sum, hand)) * N * 2


@pytest.mark.parametrize("kind,layers,shape", [("dense", "5,3", (1, 6, 6)), ("conv", "4,2", (1, 12, 10)),
                                               ("conv", "3", (3, 8, 8))])
@pytest.mark.parametrize("tied", [False, True])
def test_layer_count_agrees_with_torch_flop_counter(kind, layers, shape, tied):
    """PyTorch's own counter (matmul and conv FLOPs = 2 x MACs) on one forward pass of one sample."""
    cfg = RunConfig().with_overrides({"model.kind": kind, "model.layers": layers, "model.tied": tied})
    model = build_model(cfg, shape)
    with FlopCounterMode(display=False) as counter:
        model(torch.rand(1, *shape))
    assert 2 * sum(map(sum, flops.stage_macs(model))) == counter.get_total_flops()


def test_every_recorded_key_is_in_the_vocabulary(shapes):
    _, model, _, records = _run({"data.name": "shapes", "model.layers": "8,4", "train.strategy": "greedy",
                                 "train.finetune_epochs": 1, "train.epochs": 1}, shapes)
    keys = {k for kind, e in records if kind in ("step", "epoch") for k in e}
    keys |= set(summarize(model, shapes, "mse"))
    assert keys - set(FIELDS) <= set(VOCABULARY), keys - set(FIELDS) - set(VOCABULARY)
    assert {"val_full_sq_err", "val_stage_sq_err", "gflop"} <= keys


def test_old_run_folders_read_with_todays_keys(tmp_path):
    old = [{"kind": "epoch", "stage": 1, "stage_name": "stage 1 of 2", "epoch": 1, "step": 3, "samples": 96,
            "seconds": 0.1, "train_loss": 0.3, "val_loss": 0.3, "val_pixel_loss": 0.31, "val_sq_err": 5.76},
           {"kind": "epoch", "stage": 3, "stage_name": "fine-tune", "epoch": 3, "step": 9, "samples": 288,
            "seconds": 0.3, "train_loss": 0.2, "val_loss": 0.2, "val_pixel_loss": 0.21, "val_sq_err": 7.25}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    (tmp_path / "summary.json").write_text(json.dumps({"status": "completed", "val_sq_err_per_image": 7.1,
                                                       "val_loss": 0.2, "wall_seconds": 1.5}))
    run = Run(tmp_path)
    stage1, finetune = run.epochs()
    # what the old curve measured: stages 1..k; only where k = n was that the whole network
    assert stage1["val_stage_sq_err"] == 5.76 and "val_full_sq_err" not in stage1 and "val_sq_err" not in stage1
    assert finetune["val_stage_sq_err"] == finetune["val_full_sq_err"] == 7.25
    assert finetune["val_stage_pixel_loss"] == 0.21 and finetune["val_loss"] == 0.2  # the stage objective stays
    assert run.summary() == {"status": "completed", "val_full_sq_err": 7.1, "val_full_loss": 0.2, "seconds": 1.5}
    fig = viz.compare_figure({"old": run.epochs()}, "epoch")
    assert list(fig.data[0].y) == [7.25]  # the compared curve never shows a stage-local value


def test_charts_name_their_traces_with_the_vocabulary():
    recs = [{"kind": "epoch", "stage": s, "stage_name": f"stage {s} of 2", "epoch": s, "step": s, "samples": 10 * s,
             "seconds": s, "gflop": 0.1 * s, "train_loss": 1.0, "val_loss": 1.0, "val_full_sq_err": 9.0,
             "val_stage_sq_err": 5.0 if s == 1 else 9.0} for s in (1, 2)]
    loss = viz.loss_figure(recs, "gflop")
    assert {t.name for t in loss.data} == {label(k) for k in ("loss", "train_loss", "val_loss", "val_full_sq_err",
                                                              "val_stage_sq_err")}
    assert label("val_full_sq_err") == "full network" and label("val_stage_sq_err") == "through stages 1..k"
    cmp = viz.compare_figure({"a": recs}, "gflop")
    assert list(cmp.data[0].y) == [9.0, 9.0] and list(cmp.data[0].x) == [0.1, 0.2]
    assert cmp.layout.xaxis.title.text == label("gflop") and cmp.layout.yaxis.title.text == header("val_full_sq_err")
    e2e = [dict(r, val_stage_sq_err=r["val_full_sq_err"]) for r in recs]
    assert label("val_stage_sq_err") not in {t.name for t in viz.loss_figure(e2e).data}  # no duplicate line


def test_equal_compute_arm_of_races_and_the_strategy_benchmark():
    from aelab.presets import get_preset
    from aelab.race import equal_compute_epochs

    cfg = get_preset("stacked-denoising").config()  # 784-256-64-32, 10 epochs per stage + 35 fine-tune
    per_stage = [784 * 256 * 2, 256 * 64 * 2, 64 * 32 * 2]  # encoder + decoder MACs per sample
    greedy = 3 * 10 * sum(per_stage) + 784 * 256 + 256 * 64 + 3 * 35 * sum(per_stage)  # + caching h1, h2
    assert greedy / (3 * sum(per_stage)) == pytest.approx(45.16, abs=0.01)
    assert equal_compute_epochs(cfg, (1, 28, 28)) == 45


def test_headers_name_each_unit_once():
    """A label that already says its unit has none (the Train page's summary and Compare's table read
    "training compute (GFLOP) (GFLOP)" and "wall-clock seconds (training) (s)")."""
    from aelab.metrics import VOCABULARY, header

    assert header("gflop") == "training compute (GFLOP)"
    assert header("seconds") == "wall-clock seconds (training)"
    for m in VOCABULARY.values():
        assert not m.unit or f"({m.unit})" not in m.label, m.key
