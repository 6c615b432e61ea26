"""The snapshot instruments, each recomputed another way: by hand, in numpy, with scikit-learn's PCA,
with finite differences, and from a model rebuilt from a captured state."""
import copy

import numpy as np
import pytest
import torch

from aelab import probes
from aelab import train as T
from aelab.config import NoiseConfig, RunConfig
from aelab.model import build_model
from aelab.objectives import corrupt
from aelab.runs import RunStore, RunWriter


def _model(cfg_over, shape=(1, 12, 12), seed=0):
    torch.manual_seed(seed)
    cfg = RunConfig().with_overrides({"data.name": "shapes", **cfg_over})
    return build_model(cfg, shape), cfg


def _probe_set(model, data, noise=NoiseConfig(), n=64):
    return probes.make_probe_set(model, data.x_train, data.x_val, noise, seed=1, n=n, n_head=8)


def test_denoised_row_is_the_models_output_on_the_corrupted_input(shapes, tiny_cfg):
    cfg = tiny_cfg.with_overrides({"noise.kind": "masking", "noise.level": 0.4})
    torch.manual_seed(0)
    model = build_model(cfg, shapes.input_shape)
    snaps = []

    def emit(kind, **e):
        if kind == "snapshot":
            snaps.append((e, copy.deepcopy(model.state_dict())))

    T.train(cfg, shapes, model, emit=emit)
    event, state = snaps[-1]
    again = build_model(cfg, shapes.input_shape)
    again.load_state_dict(state)
    # The corrupted probe images the worker shows (probe.npz): the first rows, generator seeded with seed + 1.
    noisy = corrupt(shapes.x_val[:T.N_PROBE_IMAGES], cfg.noise, torch.Generator().manual_seed(cfg.train.seed + 1))
    with torch.no_grad():
        expected = again.eval()(noisy).clamp(0, 1)
    denoised = event["probes"]["denoised"]
    torch.testing.assert_close(denoised, expected)
    assert not torch.allclose(denoised, event["recon"], atol=1e-3)  # not the clean-input reconstruction


def test_identity_baseline_is_the_corrupted_inputs_own_error(shapes):
    model, _ = _model({"model.layers": "8"})
    noise = NoiseConfig("gaussian", 0.3)
    ps = _probe_set(model, shapes, noise)
    out = probes.reconstruction_probes(model, ps, 1, 4, "cpu")
    clean, noisy = ps.x.numpy(), ps.x_noisy.numpy()
    assert out["identity_sq_err"] == pytest.approx(((noisy - clean) ** 2).reshape(len(clean), -1).sum(1).mean(),
                                                   rel=1e-5)
    assert out["identity_sq_err"] == pytest.approx(0.09 * clean[0].size, rel=0.1)  # sigma^2 per pixel
    with torch.no_grad():
        den = model(ps.x_noisy).numpy()
    assert out["denoised_sq_err"] == pytest.approx(((den - clean) ** 2).reshape(len(clean), -1).sum(1).mean(),
                                                   rel=1e-5)
    assert "identity_sq_err" not in probes.reconstruction_probes(model, _probe_set(model, shapes), 1, 4, "cpu")


def test_fixed_corruption_starts_with_the_workers_probe_images(shapes):
    noise = NoiseConfig("salt_pepper", 0.3)
    x = shapes.x_val[:40]
    head = corrupt(x[:8], noise, torch.Generator().manual_seed(5))
    full = probes.fixed_corruption(x, noise, 5, 8)
    assert torch.equal(full[:8], head) and full.shape == x.shape
    assert probes.fixed_corruption(x, NoiseConfig(), 5, 8) is None


def test_per_unit_activation_is_the_numpy_mean_of_the_codes(shapes):
    model, _ = _model({"model.layers": "16,6", "model.activation": "sigmoid"})
    ps = _probe_set(model, shapes)
    for level in (1, 2):
        with torch.no_grad():
            codes = model.encode(ps.x, upto=level).numpy()
        got = probes.reconstruction_probes(model, ps, level, 4, "cpu")["unit_mean"]
        np.testing.assert_allclose(got, codes.mean(0), rtol=1e-5)


def _pca_linear_ae(shapes, k):
    """A linear AE whose encoder and decoder ARE scikit-learn's top-k principal components."""
    from sklearn.decomposition import PCA

    model, _ = _model({"model.layers": str(k), "model.activation": "linear", "train.loss": "mse"})
    xt = shapes.x_train.reshape(len(shapes.x_train), -1).double().numpy()
    pca = PCA(n_components=k).fit(xt)
    comps, mean = torch.tensor(pca.components_).float(), torch.tensor(pca.mean_).float()
    enc, dec = model.encoders[0].linear, model.decoders[0].linear
    with torch.no_grad():
        enc.weight.copy_(comps), enc.bias.copy_(-comps @ mean)
        dec.weight.copy_(comps.t()), dec.bias.copy_(mean)
    return model


def test_principal_angles_vanish_for_an_exact_pca_decoder_and_not_for_a_random_one(shapes):
    model = _pca_linear_ae(shapes, 5)
    ps = _probe_set(model, shapes, n=len(shapes.x_val))
    out = probes.snapshot_probes(model, ps, 1, 4, "cpu")
    assert out["pca_angles_deg"].shape == (5,) and out["pca_angles_deg"].max() < 0.1
    assert out["pca_ratio"] == pytest.approx(1.0, abs=1e-3)  # it IS PCA: the same error
    with torch.no_grad():
        model.decoders[0].linear.weight.normal_()
    angles = probes.snapshot_probes(model, ps, 1, 4, "cpu")["pca_angles_deg"]
    assert angles.max() > 45
    relu, _ = _model({"model.layers": "5"})
    assert "pca_angles_deg" not in probes.snapshot_probes(relu, _probe_set(relu, shapes), 1, 4, "cpu")


def test_decoder_matrix_is_the_composed_linear_decoder(shapes):
    model, _ = _model({"model.layers": "12,5", "model.activation": "linear", "train.loss": "mse",
                       "model.tied": True})
    h = torch.randn(7, 5)
    with torch.no_grad():
        lin = (model.decode(h) - model.decode(torch.zeros(1, 5))).reshape(7, -1)
    torch.testing.assert_close(lin.double(), h.double() @ probes.decoder_matrix(model).t(), atol=1e-5, rtol=1e-4)


def test_jacobian_norm_matches_the_closed_form_of_one_sigmoid_layer(shapes):
    model, _ = _model({"model.layers": "9", "model.activation": "sigmoid"})
    x = shapes.x_val[:20]
    w, b = model.encoders[0].linear.weight, model.encoders[0].linear.bias
    s = torch.sigmoid(x.reshape(20, -1) @ w.t() + b)
    closed = ((s * (1 - s)) ** 2 * w.pow(2).sum(1)).sum(1).sqrt()  # sqrt(sum_j s'(a_j)^2 ||W_j||^2)
    torch.testing.assert_close(probes.jacobian_fro(model, x).detach(), closed.detach(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("over", [
    {"model.layers": "16,6", "model.activation": "tanh"},  # code < input: reverse mode
    {"model.layers": "200,160", "model.activation": "sigmoid"},  # code > input (144): forward mode
    {"model.kind": "conv", "model.layers": "3,2", "model.activation": "sigmoid"},  # conv + max-pooling
])
def test_jacobian_norm_of_deep_encoders_matches_finite_differences(shapes, over):
    model, _ = _model(over)
    model = model.double()
    # Random images: the shapes' flat regions tie inside max-pool windows, where no derivative exists.
    x = torch.rand((3,) + shapes.input_shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    eps, cols = 1e-6, []
    with torch.no_grad():
        for i in range(x[0].numel()):  # central differences, one input pixel at a time
            e = torch.zeros_like(x).reshape(3, -1)
            e[:, i] = eps
            e = e.reshape(x.shape)
            cols.append((model.encode(x + e) - model.encode(x - e)).reshape(3, -1) / (2 * eps))
    fd = torch.stack(cols, 2).flatten(1).norm(dim=1)
    torch.testing.assert_close(probes.jacobian_fro(model, x), fd, rtol=1e-5, atol=1e-8)


def test_snapshot_file_keeps_the_instruments(tmp_path, shapes, tiny_cfg):
    cfg = tiny_cfg.with_overrides({"noise.kind": "gaussian", "noise.level": 0.3})
    run = RunStore(tmp_path).create(cfg)
    writer = RunWriter(run)
    torch.manual_seed(0)
    T.train(cfg, shapes, build_model(cfg, shapes.input_shape), emit=writer.emit)
    snap = run.latest_snapshot()
    assert snap["denoised"].dtype == np.uint8 and snap["denoised"].shape == snap["recon"].shape
    for key in ("identity_sq_err", "denoised_sq_err", "clean_sq_err", "jacobian_fro", "jacobian_images"):
        assert np.isfinite(float(snap[key])), key
    assert snap["unit_mean"].shape == (8,)
