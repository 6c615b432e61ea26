import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from scipy import stats as sps

from aelab.config import RunConfig
from aelab.data import _split, load_data
from aelab.jobs import record
from aelab.payoff import job
from aelab.payoff.classifiers import TrainingRule, fit_network
from aelab.payoff.grid import (Features, PayoffConfig, balanced_indices, build_classifier, one_thread, run_cell,
                               run_payoff)
from aelab.payoff.stats import NO_DIFFERENCE, paired_differences, reading
from aelab.runs import RunStore, atomic_write_json
from aelab.worker import execute

FAST = TrainingRule(max_steps=600)  # caps of 60..600 steps: enough for these tiny problems


def _write_clusters(path, n=800, dim=256, seed=0):
    """Four tight classes on a 4-d subspace of R^256 buried in isotropic noise: structure an AE finds
    without labels (it is the high-variance subspace), while raw-pixel classifiers see mostly noise."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, 4)))
    means = rng.normal(size=(4, 4)) * 3.0
    y = np.arange(n) % 4
    x = (means[y] + 0.5 * rng.normal(size=(n, 4))) @ basis.T + 1.5 * rng.normal(size=(n, dim))
    np.savez(path, x=x.astype(np.float32), y=y)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    with one_thread():  # as run_payoff does: tiny networks, no OpenMP contention on a shared machine
        yield


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


@pytest.fixture(scope="module")
def grid(ae_run, tmp_path_factory):
    """The whole grid once (budgets 8 and all, 3 paired repeats, with LSUV), written to a folder."""
    out = tmp_path_factory.mktemp("grid")
    cfg = PayoffConfig.make([str(ae_run.dir)], budgets=(8, 0), repeats=3, max_steps=FAST.max_steps, lsuv=True)
    return run_payoff(cfg, out), out


def _hand_codes(run, x):
    """The saved encoder by hand from the weights file: relu(x W1' + b1) W2' + b2 (no aelab model code)."""
    from safetensors.numpy import load_file

    w = load_file(str(run.dir / "weights.safetensors"))
    h = np.maximum(x.reshape(len(x), -1).numpy() @ w["encoders.0.linear.weight"].T + w["encoders.0.linear.bias"], 0)
    return h @ w["encoders.1.linear.weight"].T + w["encoders.1.linear.bias"]


def test_budgets_are_class_balanced_and_disjoint_from_validation_and_test():
    x = np.arange(300, dtype=np.float32)[:, None]  # each row carries its own id
    data = _split(x, np.arange(300) % 3, 0.2, "ids", "tabular", None)
    held_out = set(data.x_val[:, 0].tolist()) | set(data.x_test[:, 0].tolist())
    for budget in (3, 10, 30):
        idx = balanced_indices(data.y_train, budget, seed=0)
        counts = torch.bincount(data.y_train[idx], minlength=3)
        assert len(idx) == budget and int(counts.max() - counts.min()) <= 1
        assert not set(data.x_train[idx, 0].tolist()) & held_out
    assert len(balanced_indices(data.y_train, 0, seed=0)) == len(data.y_train)  # 0 = all labels
    assert not torch.equal(balanced_indices(data.y_train, 10, 0), balanced_indices(data.y_train, 10, 1))


def test_frozen_features_are_the_saved_encoders_codes_standardised(ae_run, clusters):
    z_train, _, z_test = Features(clusters, [ae_run]).get("frozen", 0)
    codes = _hand_codes(ae_run, clusters.x_train)
    mean, sd = codes.mean(0), codes.std(0)
    assert np.allclose(z_train, (codes - mean) / sd, atol=1e-4)
    assert np.allclose(z_test, (_hand_codes(ae_run, clusters.x_test) - mean) / sd, atol=1e-4)


def test_frozen_is_sklearns_logistic_regression_solved_to_convergence(ae_run, clusters):
    from sklearn.linear_model import LogisticRegression

    idx = balanced_indices(clusters.y_train, 40, seed=1)
    cell = run_cell("frozen", 0, [ae_run], clusters, Features(clusters, [ae_run]), idx, FAST, seed=1)
    assert cell["stopped"] == "converged" and cell["steps"] < FAST.max_iter
    codes = _hand_codes(ae_run, clusters.x_train)
    mean, sd = codes.mean(0), codes.std(0)
    ref = LogisticRegression(C=1.0, max_iter=100_000, tol=1e-8).fit((codes[idx.numpy()] - mean) / sd,
                                                                   clusters.y_train[idx].numpy())
    expected = ref.score((_hand_codes(ae_run, clusters.x_test) - mean) / sd, clusters.y_test.numpy())
    assert abs(cell["accuracy"] - expected) <= 1 / len(clusters.y_test) + 1e-9  # at most one test image apart


def test_frozen_never_changes_the_saved_weights(ae_run, clusters):
    before = (ae_run.dir / "weights.safetensors").read_bytes()
    idx = balanced_indices(clusters.y_train, 8, seed=0)
    run_cell("frozen", 0, [ae_run], clusters, Features(clusters, [ae_run]), idx, FAST, seed=0)
    assert (ae_run.dir / "weights.safetensors").read_bytes() == before


def test_finetuned_starts_from_the_autoencoder_weights(ae_run, clusters):
    model, params = build_classifier("finetuned", ae_run, clusters, seed=0)
    ae = ae_run.load_model()
    assert torch.equal(model.ae.encoders[0].weight, ae.encoders[0].weight)
    assert {id(p) for p in model.ae.encoders.parameters()} <= {id(p) for p in params}  # and trains them
    scratch, _ = build_classifier("scratch", ae_run, clusters, seed=0)
    assert not torch.equal(scratch.ae.encoders[0].weight, ae.encoders[0].weight)


def test_bn_classifier_is_the_encoder_blocks_with_batchnorm_between_layer_and_activation(ae_run, clusters):
    model, _ = build_classifier("scratch_bn", ae_run, clusters, seed=0)
    model.eval()
    x = clusters.x_val[:5]
    l0, l1 = model.ae.encoders[0].linear, model.ae.encoders[1].linear
    h = torch.relu(model.norms[0](l0(x)))
    assert torch.allclose(model.features(x), model.norms[1](l1(h)), atol=1e-6)  # linear code: no activation


def test_networks_stop_on_a_training_loss_plateau_before_the_cap(ae_run, clusters):
    model, params = build_classifier("finetuned", ae_run, clusters, seed=0)
    x, y = clusters.x_train[:64], clusters.y_train[:64]
    rule = TrainingRule(max_steps=30_000, patience=5)  # a cap of 3,000 steps, far beyond what it needs
    fit = fit_network(model, params, x, y, rule, seed=0)
    assert fit["stopped"] == "plateau" and fit["steps"] < rule.step_cap(64)
    assert (model.eval()(x).argmax(1) == y).float().mean() == 1.0  # the optimum of a separable set: all fit


def test_seeds_reproduce(ae_run, clusters):
    idx = balanced_indices(clusters.y_train, 8, seed=3)
    feats = Features(clusters, [ae_run])
    for method in ("scratch", "scratch_bn", "scratch_lsuv", "finetuned", "frozen", "pca"):
        a = run_cell(method, 0, [ae_run], clusters, feats, idx, FAST, 3)
        assert a == run_cell(method, 0, [ae_run], clusters, feats, idx, FAST, 3), method


def test_pretrained_beats_scratch_at_the_smallest_budget(grid):
    result, _ = grid
    table = {(r["method"], r["budget"]): r["accuracy_mean"] for r in result["table"]}
    best_scratch = max(table[(m, 8)] for m in ("scratch", "scratch_bn", "scratch_lsuv"))
    assert max(table[("frozen", 8)], table[("finetuned", 8)]) > best_scratch + 0.05, table
    frozen_8 = next(p for p in result["paired"] if p["method"] == "frozen" and p["budget"] == 8)
    assert frozen_8["ci_low"] > 0 and frozen_8["verdict"] == "pretrained better"


def test_results_json_has_one_test_split_row_per_cell(grid, clusters):
    result, out = grid
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert len(rows) == 6 * 2 * 3  # methods x budgets x repeats
    for r in rows:
        assert {"method", "budget", "repeat", "seed", "split", "accuracy"} <= set(r) and r["split"] == "test"
        assert 0 <= r["accuracy"] <= 1
    full = [r for r in rows if r["budget"] == len(clusters.x_train)]
    assert len({(r["method"], r["repeat"]) for r in full}) == len(full)  # one row per cell
    assert (out / "results.csv").exists() and (out / "paired.csv").exists()


def _rows(diffs_a, diffs_b, budget=10):
    """Rows of a scratch and a pretrained series with given per-repeat accuracies."""
    mk = lambda m, lab, accs: [{"method": m, "label": lab, "run_label": "", "budget": budget, "repeat": i,  # noqa: E731
                                "accuracy": a, "val_accuracy": a} for i, a in enumerate(accs)]
    return mk("scratch", "scratch", diffs_a) + mk("finetuned", "pretrained, fine-tuned", diffs_b)


def test_paired_interval_matches_a_hand_computation():
    scratch, pre = [0.50, 0.60, 0.55, 0.58], [0.56, 0.61, 0.63, 0.60]
    (p,) = paired_differences(_rows(scratch, pre))
    d = np.array(pre) - np.array(scratch)
    half = sps.t.ppf(0.975, df=3) * d.std(ddof=1) / np.sqrt(4)
    assert p["diff_mean"] == pytest.approx(d.mean()) and p["n"] == 4
    assert (p["ci_low"], p["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))


def test_reading_says_no_measurable_difference_when_the_interval_contains_zero():
    (p,) = paired_differences(_rows([0.50, 0.60, 0.55], [0.58, 0.52, 0.57]))  # differences +8, -8, +2 points
    assert p["ci_low"] < 0 < p["ci_high"] and p["verdict"] == NO_DIFFERENCE
    assert f"{NO_DIFFERENCE} at 10 labels" in reading([p])
    (q,) = paired_differences(_rows([0.50, 0.60, 0.55], [0.60, 0.71, 0.64]))
    assert "better at 10 labels (+10.0 points)" in reading([q])


def test_best_scratch_baseline_is_chosen_on_validation_not_test():
    rows = _rows([0.5, 0.5], [0.6, 0.6])
    rows += [{"method": "scratch_bn", "label": "scratch + BN + Kaiming", "run_label": "", "budget": 10, "repeat": i,
              "accuracy": 0.9, "val_accuracy": 0.1} for i in range(2)]  # best on test, worst on validation
    (p,) = paired_differences(rows)
    assert p["baseline"] == "scratch" and p["diff_mean"] == pytest.approx(0.1)


def test_a_killed_job_reads_interrupted_not_running(ae_run, tmp_path):
    cfg = PayoffConfig.make([str(ae_run.dir)], budgets=(8,), repeats=1)
    out = job.payoff_dir(cfg, tmp_path)
    out.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    atomic_write_json(out / "progress.json", {"done": 3, "total": 9, "message": "scratch at 8 labels"})
    # the job system's record, as a job process writes it: running, with a pid and a fresh heartbeat
    record.write(out, record.new_record(out, "payoff", pid=dead.pid, state="running", heartbeat=time.time()))
    assert job.job_status(out)["status"] == "interrupted"  # its process is gone
    record.write(out, record.new_record(out, "payoff", pid=1, state="running", heartbeat=time.time()))
    assert job.job_status(out) == {"done": 3, "total": 9, "message": "scratch at 8 labels", "status": "running"}
    record.write(out, record.new_record(out, "payoff", pid=1, state="running", heartbeat=time.time() - 60))
    assert job.job_status(out)["status"] == "interrupted"  # alive but silent for 60 s: stale


def test_bad_payoff_settings_are_refused(ae_run, tmp_path):
    with pytest.raises(ValueError, match="runs"):
        PayoffConfig.make([str(tmp_path)])
    with pytest.raises(ValueError, match="repeats"):
        PayoffConfig.make([str(ae_run.dir)], repeats=0)
    with pytest.raises(ValueError, match="max_steps"):
        PayoffConfig.make([str(ae_run.dir)], max_steps=5)


def test_a_grid_on_ray_gives_the_rows_of_a_local_grid(ray_local, ae_run, tmp_path):
    """Each label draw a Ray task on a scratch copy of the run (config, status, weights shipped through the
    object store, not read from the caller's folder): the same rows in the same order, timing aside."""
    from aelab.payoff.remote import pack, run_payoff_ray

    assert set(pack(ae_run)["files"]) == {"config.json", "status.json", "weights.safetensors"}
    cfg = PayoffConfig.make([str(ae_run.dir)], budgets=(8,), repeats=2, max_steps=FAST.max_steps)
    seen = []
    remote = run_payoff_ray(cfg, tmp_path / "ray", lambda done, total, msg: seen.append((done, total)))
    here = run_payoff(cfg, tmp_path / "here")
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("seconds")} for r in rows]  # noqa: E731
    assert len(remote["rows"]) == 2 * 5 and strip(remote["rows"]) == strip(here["rows"])
    assert strip(remote["table"]) == strip(here["table"]) and remote["paired"] == here["paired"]
    assert remote["reading"] == here["reading"] and (tmp_path / "ray" / "results.csv").exists()
    assert seen[-1] == (10, 10) and [d for d, _ in seen] == sorted(d for d, _ in seen)
