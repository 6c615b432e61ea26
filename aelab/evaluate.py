"""Honest numbers for a trained AE: reconstruction error, code statistics, linear probe, PCA baseline.

Uses scikit-learn for PCA and the logistic-regression probe. Nothing here trains an autoencoder.
"""
from __future__ import annotations

import numpy as np
import torch

from . import objectives
from .data import Data
from .model import AE

CHUNK = 1024


@torch.no_grad()
def codes_of(model: AE, x: torch.Tensor, level: int | None = None, device=None) -> torch.Tensor:
    """Codes h_level of all rows of x, flattened to (N, code_dim), on the CPU."""
    device = device or next(model.parameters()).device
    model.eval()
    out = [model.encode(x[i:i + CHUNK].to(device), upto=level).reshape(min(CHUNK, len(x) - i), -1).cpu()
           for i in range(0, len(x), CHUNK)]
    return torch.cat(out)


@torch.no_grad()
def reconstruct(model: AE, x: torch.Tensor, device=None) -> torch.Tensor:
    device = device or next(model.parameters()).device
    model.eval()
    return torch.cat([model(x[i:i + CHUNK].to(device)).cpu() for i in range(0, len(x), CHUNK)])


def sq_err_per_image(model: AE, x: torch.Tensor) -> np.ndarray:
    """Per-image sum of squared pixel error (the anomaly score and Hinton & Salakhutdinov's measure)."""
    return objectives.sq_err_per_image(reconstruct(model, x), x).numpy()


def linear_probe(train_codes: np.ndarray, y_train: np.ndarray, eval_codes: np.ndarray, y_eval: np.ndarray,
                 seed: int = 0) -> float:
    """Accuracy on held-out codes of a logistic regression fit on train codes (standardised)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, random_state=seed))
    clf.fit(train_codes, y_train)
    return float(clf.score(eval_codes, y_eval))


def pca_baseline(data: Data, k: int) -> dict:
    """Squared error per image of PCA with k components fit on the train split, on validation and test."""
    from sklearn.decomposition import PCA

    flat = lambda t: t.reshape(len(t), -1).numpy().astype(np.float64)  # noqa: E731
    xt = flat(data.x_train)
    k_eff = min(k, xt.shape[1], xt.shape[0])
    pca = PCA(n_components=k_eff, random_state=0).fit(xt)
    err = lambda x: float(((pca.inverse_transform(pca.transform(x)) - x) ** 2).sum(1).mean())  # noqa: E731
    return {"k": k_eff, "val_sq_err_per_image": err(flat(data.x_val)),
            "test_sq_err_per_image": err(flat(data.x_test)),
            "explained_variance": float(pca.explained_variance_ratio_.sum()), "dataset": data.name}


def _recon_metrics(model: AE, x: torch.Tensor, loss_name: str) -> tuple[float, float]:
    """(mean reconstruction loss, mean squared error per image) of the whole network on x."""
    x_hat = reconstruct(model, x)
    if loss_name == "bce":
        x_hat = x_hat.clamp(0, 1)
    return (float(objectives.reconstruction_loss(x_hat, x, loss_name)),
            float(objectives.sq_err_per_image(x_hat, x).mean()))


def summarize(model: AE, data: Data, loss_name: str, seed: int = 0) -> dict:
    """The end-of-run metrics of summary.json. Validation figures are what choices may look at; the test
    figures (reconstruction, linear probe fit on train codes) are the ones to report: nothing tunes on them. Keys: the metric vocabulary (`metrics.py`)."""
    val_loss, val_sq = _recon_metrics(model, data.x_val, loss_name)
    test_loss, test_sq = _recon_metrics(model, data.x_test, loss_name)
    test_codes = codes_of(model, data.x_test)
    out = {"val_full_loss": val_loss, "val_full_sq_err": val_sq, "test_full_loss": test_loss,
           "test_full_sq_err": test_sq, "code_dim": int(test_codes.shape[1]),
           "code_mean_activation": float(test_codes.mean()),
           "code_active_fraction": float((test_codes.abs() > 1e-3).float().mean()),
           "linear_probe_accuracy": None}
    if data.y_train is not None and data.y_test is not None and len(torch.unique(data.y_train)) > 1:
        train_codes = codes_of(model, data.x_train)
        out["linear_probe_accuracy"] = linear_probe(train_codes.numpy(), data.y_train.numpy(),
                                                    test_codes.numpy(), data.y_test.numpy(), seed)
    return out
