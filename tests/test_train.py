import copy

import numpy as np
import pytest
import torch

from aelab import train as T
from aelab.config import RunConfig, kl_stages
from aelab.data import load_data
from aelab.evaluate import pca_baseline, sq_err_per_image
from aelab.model import build_model


def _train(cfg, data, **kw):
    events = []
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, data.input_shape)
    ctx = T.train(cfg, data, model, emit=lambda kind, **e: events.append((kind, e)), **kw)
    return model, ctx, events


def _epochs(events):
    return [e for k, e in events if k == "epoch"]


def test_loss_falls_on_tiny_data(shapes, tiny_cfg):
    _, _, ev = _train(tiny_cfg.with_overrides({"train.epochs": 6}), shapes)
    ep = _epochs(ev)
    assert ep[-1]["val_full_sq_err"] < 0.8 * ep[0]["val_full_sq_err"]
    assert ep[-1]["train_loss"] < ep[0]["train_loss"]


def test_same_config_and_seed_give_the_same_numbers(shapes, tiny_cfg):
    a = [e["val_full_sq_err"] for e in _epochs(_train(tiny_cfg, shapes)[2])]
    b = [e["val_full_sq_err"] for e in _epochs(_train(tiny_cfg, shapes)[2])]
    c = [e["val_full_sq_err"] for e in _epochs(_train(tiny_cfg.with_overrides({"train.seed": 1}), shapes)[2])]
    assert a == b and a != c


def test_training_flushes_subnormal_floats_to_zero(shapes, tiny_cfg):
    """Long runs fill Adam's moments with subnormals, which the CPU computes many times slower."""
    torch.set_flush_denormal(False)  # (earlier tests trained in this process)
    tiny = torch.tensor([1e-39])  # below float32's smallest normal, 1.18e-38
    assert (tiny * 1.0).item() > 0
    try:
        _train(tiny_cfg.with_overrides({"train.epochs": 1}), shapes)
        assert (tiny * 1.0).item() == 0.0
    finally:
        torch.set_flush_denormal(False)


def test_validation_bce_agrees_with_torch_and_stays_finite_with_subnormals_flushed():
    g = torch.Generator().manual_seed(0)
    x, x_hat = torch.rand(8, 20, generator=g), torch.rand(8, 20, generator=g) * 0.98 + 0.01
    ref = torch.nn.functional.binary_cross_entropy(x_hat, x).item()
    saturated = torch.tensor([[0.0, 1.0, 0.0, 1.0]])  # a sigmoid that reached 0 and 1 on black and white pixels
    torch.set_flush_denormal(True)  # as in training
    try:
        assert T._eval_loss(x_hat, x, "bce") == pytest.approx(ref, rel=1e-5)
        assert T._eval_loss(saturated, saturated, "bce") == 0.0  # 0 * log(0) would be NaN
    finally:
        torch.set_flush_denormal(False)


def test_metrics_carry_all_comparison_axes(shapes, tiny_cfg):
    _, ctx, ev = _train(tiny_cfg, shapes)
    rec = _epochs(ev)[-1]
    for key in ("epoch", "stage", "step", "samples", "seconds", "train_loss", "val_loss", "val_full_sq_err",
                "val_stage_sq_err", "gflop"):
        assert key in rec
    assert rec["samples"] == 2 * len(shapes.x_train) == ctx.samples
    steps = [e for k, e in ev if k == "step"]
    assert steps and steps[0]["step"] == 1  # the first batch is logged at once (first loss point fast)


def test_greedy_stage_k_leaves_earlier_stages_unchanged(shapes):
    cfg = RunConfig().with_overrides({"data.name": "shapes", "model.layers": "24,12,6", "train.strategy": "greedy",
                                      "train.epochs": 2, "train.batch_size": 32})
    torch.manual_seed(0)
    model = build_model(cfg, shapes.input_shape)
    states = {}

    def emit(kind, **e):
        if kind == "stage":
            states[e["stage"]] = copy.deepcopy(model.state_dict())

    T.train(cfg, shapes, model, emit=emit)
    final = model.state_dict()
    for k in (1, 2, 3):
        after = states.get(k + 1, final)
        for name, before in states[k].items():
            stage_of = int(name.split(".")[1]) + 1  # encoders.<i>.* / decoders.<i>.*
            changed = not torch.equal(before, after[name])
            assert changed == (stage_of == k), f"stage {k} training changed={changed} for {name}"


def test_greedy_logs_full_stack_pixel_error_every_epoch_and_finetunes(shapes):
    cfg = RunConfig().with_overrides({"data.name": "shapes", "model.layers": "24,6", "train.strategy": "greedy",
                                      "train.epochs": 2, "train.finetune_epochs": 2, "train.batch_size": 32,
                                      "model.tied": True, "noise.kind": "masking", "noise.level": 0.2})
    _, _, ev = _train(cfg, shapes)
    ep = _epochs(ev)
    assert [e["stage"] for e in ep] == [1, 1, 2, 2, 3, 3]
    assert [e["stage_name"] for e in ep][-1] == "fine-tuning"
    assert all(e["val_full_sq_err"] > 0 for e in ep)
    snaps = [e for k, e in ev if k == "snapshot"]
    assert [s["level"] for s in snaps] == [1, 1, 2, 2, 2, 2]  # reconstructions through stages 1..k
    assert snaps[0]["codes"].shape[1] == 24 and snaps[-1]["codes"].shape[1] == 6


def test_conv_trains_greedily_block_by_block(shapes):
    cfg = RunConfig().with_overrides({"data.name": "shapes", "model.kind": "conv", "model.layers": "4,2",
                                      "train.strategy": "greedy", "train.epochs": 1, "train.finetune_epochs": 1})
    _, _, ev = _train(cfg, shapes)
    assert [e["stage"] for e in _epochs(ev)] == [1, 2, 3]


@pytest.mark.parametrize("extra", [
    {"sparsity.kind": "l1", "sparsity.weight": 0.01},
    {"contractive.weight": 0.01},
    {"noise.kind": "gaussian", "noise.level": 0.2, "train.optimizer": "sgd"},
    {"noise.kind": "salt_pepper", "noise.level": 0.1, "train.optimizer": "rmsprop"},
])
def test_every_objective_trains(shapes, tiny_cfg, extra):
    _, _, ev = _train(tiny_cfg.with_overrides(extra), shapes)
    assert len(_epochs(ev)) == 2


def test_kl_sparsity_pushes_mean_activation_toward_rho(shapes):
    base = RunConfig().with_overrides({"data.name": "shapes", "model.layers": "32", "model.activation": "sigmoid",
                                       "train.epochs": 8, "train.batch_size": 32, "train.lr": 3e-3})
    sparse = base.with_overrides({"sparsity.kind": "kl", "sparsity.target": 0.05, "sparsity.weight": 0.5})
    means = []
    for cfg in (base, sparse):
        model, _, _ = _train(cfg, shapes)
        with torch.no_grad():
            means.append(float(model.encode(shapes.x_val).mean()))
    assert abs(means[1] - 0.05) < 0.5 * abs(means[0] - 0.05), means


def test_linear_ae_matches_pca_with_the_same_k():
    """Baldi 2012: a linear AE with squared error reaches PCA's error with the same k (8 of 64 dims)."""
    data = load_data(RunConfig().with_overrides({"data.name": "digits"}).data)
    cfg = RunConfig().with_overrides({"model.layers": "8", "model.activation": "linear", "train.loss": "mse",
                                      "train.epochs": 100, "train.batch_size": 128, "train.lr": 3e-2,
                                      "train.schedule": "cosine"})
    model, _, _ = _train(cfg, data)
    ae_err = float(sq_err_per_image(model, data.x_val).mean())
    pca_err = pca_baseline(data, 8)["val_sq_err_per_image"]
    assert pca_err * 0.99 < ae_err < pca_err * 1.03


def test_nan_loss_raises_diverged(shapes, tiny_cfg):
    cfg = tiny_cfg.with_overrides({"train.loss": "mse", "train.lr": 10.0, "train.optimizer": "sgd",
                                   "model.activation": "linear", "train.epochs": 30})
    with pytest.raises(T.Diverged):
        _train(cfg, shapes)


class _StopAfter(T.Control):
    def __init__(self, n):
        self.n = n

    def poll(self):
        self.n -= 1
        return "stop" if self.n <= 0 else None


def test_stop_request_unwinds_between_batches(shapes, tiny_cfg):
    with pytest.raises(T.Stopped):
        _train(tiny_cfg.with_overrides({"train.epochs": 50}), shapes, control=_StopAfter(3))


class _PauseLog(T.Control):
    pause_after_stage = True

    def __init__(self):
        self.reasons = []

    def wait(self, reason):
        self.reasons.append(reason)
        return "run"


def test_stage_by_stage_mode_pauses_after_each_greedy_stage(shapes):
    cfg = RunConfig().with_overrides({"data.name": "shapes", "model.layers": "16,8,4", "train.strategy": "greedy",
                                      "train.epochs": 1, "train.finetune_epochs": 1})
    ctl = _PauseLog()
    _train(cfg, shapes, control=ctl)
    assert ctl.reasons == ["pretraining layer 1 of 3 done", "pretraining layer 2 of 3 done",
                           "pretraining layer 3 of 3 done; fine-tuning next"]


def _np_forward(state: dict, acts: list[tuple[str, str]], x: np.ndarray, upto: int) -> np.ndarray:
    """Dense untied AE by hand with numpy: encoders 1..upto, then decoders upto..1."""
    f = {"relu": lambda a: np.maximum(a, 0), "sigmoid": lambda a: 1 / (1 + np.exp(-a)), "linear": lambda a: a}
    h = x.reshape(len(x), -1).astype(np.float64)
    for i in range(upto):
        h = f[acts[i][0]](h @ state[f"encoders.{i}.linear.weight"].T + state[f"encoders.{i}.linear.bias"])
    for i in reversed(range(upto)):
        h = f[acts[i][1]](h @ state[f"decoders.{i}.linear.weight"].T + state[f"decoders.{i}.linear.bias"])
    return ((h - x.reshape(len(x), -1)) ** 2).sum(1).mean()


def test_full_network_metric_of_a_greedy_stage_is_the_whole_model(shapes):
    cfg = RunConfig().with_overrides({"data.name": "shapes", "model.layers": "24,12,6", "train.strategy": "greedy",
                                      "train.epochs": 1, "train.batch_size": 32})
    torch.manual_seed(0)
    model = build_model(cfg, shapes.input_shape)
    seen = []

    def emit(kind, **e):  # the model exactly as it was when the epoch record was written
        if kind == "epoch":
            seen.append((e, {k: v.double().numpy() for k, v in copy.deepcopy(model.state_dict()).items()}))

    T.train(cfg, shapes, model, emit=emit)
    acts = [(e.act_name, d.act_name) for e, d in zip(model.encoders, model.decoders)]
    x = shapes.x_val.numpy().astype(np.float64)
    for k, (rec, state) in enumerate(seen, 1):  # one epoch per stage: record k is stage k of 3
        assert rec["val_full_sq_err"] == pytest.approx(_np_forward(state, acts, x, 3), rel=1e-4)
        assert rec["val_stage_sq_err"] == pytest.approx(_np_forward(state, acts, x, k), rel=1e-4)
    assert seen[0][0]["val_full_sq_err"] != pytest.approx(seen[0][0]["val_stage_sq_err"], rel=1e-3)
    assert seen[-1][0]["val_full_sq_err"] == seen[-1][0]["val_stage_sq_err"]  # stage n: the same pass, once


def test_kl_sparsity_never_touches_a_relu_stage(shapes):
    """Greedy, ReLU stage 1 and a sigmoid code: KL acts on stage 2 only; stage 1 trains exactly as without it."""
    base = RunConfig().with_overrides({"data.name": "shapes", "model.layers": "16,8", "model.activation": "relu",
                                       "model.code_activation": "sigmoid", "train.strategy": "greedy",
                                       "train.epochs": 2, "train.batch_size": 32})
    kl = base.with_overrides({"sparsity.kind": "kl", "sparsity.target": 0.05, "sparsity.weight": 0.5})
    assert kl_stages(kl) == (2,)
    runs = [_epochs(_train(cfg, shapes)[2]) for cfg in (base, kl)]
    stage = [[e["train_loss"] for e in run if e["stage"] == k] for run in runs for k in (1, 2)]
    assert stage[0] == stage[2]  # stage 1 (ReLU): identical losses with and without KL configured
    assert stage[1] != stage[3]  # stage 2 (sigmoid code): the KL term is there
    assert T.stage_sparsity(kl, 1).kind == "none" and T.stage_sparsity(kl, 2).kind == "kl"
    l1 = base.with_overrides({"sparsity.kind": "l1", "sparsity.weight": 0.1})
    assert T.stage_sparsity(l1, 1).kind == "l1"  # L1 needs no range: every stage keeps it


def test_snapshots_carry_the_probe_instruments_and_throttle_the_jacobian(shapes, tiny_cfg):
    _, _, ev = _train(tiny_cfg.with_overrides({"train.epochs": 3}), shapes)
    snaps = [e for k, e in ev if k == "snapshot"]
    assert snaps and all("clean_sq_err" in s["probes"] and "unit_mean" in s["probes"] for s in snaps)
    for s in (snaps[0], snaps[-1]):  # a stage's edges always measure ||J||_F afresh
        assert s["probes"]["jacobian_epoch"] == s["epoch"] and s["probes"]["jacobian_fro"] > 0
    assert "denoised" not in snaps[0]["probes"]  # no noise configured: no denoising row
