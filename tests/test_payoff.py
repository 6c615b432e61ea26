import numpy as np
import pytest
import torch

from aelab.config import RunConfig
from aelab.data import _split, load_data
from aelab.payoff import (PayoffConfig, _fit_classifier, balanced_indices, build_classifier, reading, run_cell,
                          run_payoff)
from aelab.runs import RunStore
from aelab.worker import execute


def _write_clusters(path, n=800, dim=256, seed=0):
    """Four tight classes on a 4-d subspace of R^256 buried in isotropic noise: structure an AE finds
    without labels (it is the high-variance subspace), while raw-pixel classifiers see mostly noise."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, 4)))
    means = rng.normal(size=(4, 4)) * 3.0
    y = np.arange(n) % 4
    x = (means[y] + 0.5 * rng.normal(size=(n, 4))) @ basis.T + 1.5 * rng.normal(size=(n, dim))
    np.savez(path, x=x.astype(np.float32), y=y)


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    """A small AE trained (in-process, through the worker's code path) on the unlabelled clusters."""
    root = tmp_path_factory.mktemp("runs")
    _write_clusters(root / "clusters.npz")
    cfg = RunConfig(name="pre").with_overrides({
        "data.name": "file", "data.path": str(root / "clusters.npz"), "model.layers": "32,4", "train.loss": "mse",
        "model.code_activation": "linear", "train.epochs": 20, "train.batch_size": 32, "train.lr": 3e-3})
    run = RunStore(root).create(cfg)
    assert execute(run)["status"] == "completed"
    return run


@pytest.fixture(scope="module")
def clusters(ae_run):
    return load_data(ae_run.config.data)


def test_budgets_are_class_balanced_and_drawn_from_train_only():
    x = np.arange(300, dtype=np.float32)[:, None]  # each row carries its own id
    data = _split(x, np.arange(300) % 3, 0.2, "ids", "tabular", None)
    for budget in (3, 10, 30):
        idx = balanced_indices(data.y_train, budget, seed=0)
        counts = torch.bincount(data.y_train[idx], minlength=3)
        assert len(idx) == budget and int(counts.max() - counts.min()) <= 1
        assert not set(data.x_train[idx, 0].tolist()) & set(data.x_val[:, 0].tolist())
    assert len(balanced_indices(data.y_train, 0, seed=0)) == len(data.y_train)  # 0 = all labels
    assert not torch.equal(balanced_indices(data.y_train, 10, 0), balanced_indices(data.y_train, 10, 1))


def test_frozen_really_freezes_the_encoder(ae_run, clusters):
    model, params = build_classifier("frozen", ae_run, clusters, seed=0)
    before = {k: v.clone() for k, v in model.ae.state_dict().items()}
    head_before = model.head.weight.clone()
    _fit_classifier(model, params, clusters.x_train[:40], clusters.y_train[:40], PayoffConfig(("x",), steps=20), 0)
    assert all(torch.equal(before[k], v) for k, v in model.ae.state_dict().items())
    assert not torch.equal(head_before, model.head.weight)


def test_finetuned_starts_from_the_autoencoder_weights(ae_run, clusters):
    model, params = build_classifier("finetuned", ae_run, clusters, seed=0)
    ae = ae_run.load_model()
    assert torch.equal(model.ae.encoders[0].weight, ae.encoders[0].weight)
    assert {id(p) for p in model.ae.encoders.parameters()} <= {id(p) for p in params}  # and trains them
    scratch, _ = build_classifier("scratch", ae_run, clusters, seed=0)
    assert not torch.equal(scratch.ae.encoders[0].weight, ae.encoders[0].weight)


def test_seeds_reproduce(ae_run, clusters):
    cfg = PayoffConfig((str(ae_run.dir),), steps=30)
    idx = balanced_indices(clusters.y_train, 8, seed=3)
    for method in ("scratch", "scratch_bn", "finetuned", "pca"):
        assert run_cell(method, ae_run, clusters, idx, cfg, 3) == run_cell(method, ae_run, clusters, idx, cfg, 3)


def test_pretrained_beats_scratch_at_the_smallest_budget(ae_run, tmp_path):
    cfg = PayoffConfig((str(ae_run.dir),), budgets=(8, 0), repeats=3, lsuv=True)
    result = run_payoff(cfg, tmp_path)
    table = {(r["method"], r["budget"]): r["accuracy_mean"] for r in result["table"]}
    smallest = 8
    best_scratch = max(table[("scratch", smallest)], table[("scratch_bn", smallest)],
                       table[("scratch_lsuv", smallest)])
    best_pretrained = max(table[("frozen", smallest)], table[("finetuned", smallest)])
    assert best_pretrained > best_scratch + 0.05, table
    assert (tmp_path / "results.csv").exists() and "labels" in result["reading"]


def test_reading_is_computed_from_the_numbers():
    table = [{"series": "scratch", "method": "scratch", "budget": b, "accuracy_mean": a}
             for b, a in ((10, 0.40), (100, 0.70), (1000, 0.90))]
    table += [{"series": "pretrained, fine-tuned [x]", "method": "finetuned", "budget": b, "accuracy_mean": a}
              for b, a in ((10, 0.55), (100, 0.741), (1000, 0.905))]
    text = reading(table)
    assert "beats scratch by 15.0 points at 10 labels" in text and "closes (≤ 1 point) by 1000 labels" in text


def test_bad_payoff_settings_are_refused(ae_run, tmp_path):
    with pytest.raises(ValueError, match="runs"):
        PayoffConfig.make([str(tmp_path)])
    with pytest.raises(ValueError, match="repeats"):
        PayoffConfig.make([str(ae_run.dir)], repeats=0)
