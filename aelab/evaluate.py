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


def linear_probe(train_codes: np.ndarray, y_train: np.ndarray, val_codes: np.ndarray, y_val: np.ndarray,
                 seed: int = 0) -> float:
    """Accuracy on validation codes of a logistic regression fit on train codes (standardised)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, random_state=seed))
    clf.fit(train_codes, y_train)
    return float(clf.score(val_codes, y_val))


def pca_baseline(data: Data, k: int) -> dict:
    """Validation squared error per image of PCA with k components fit on the train split."""
    from sklearn.decomposition import PCA

    xt = data.x_train.reshape(len(data.x_train), -1).numpy().astype(np.float64)
    xv = data.x_val.reshape(len(data.x_val), -1).numpy().astype(np.float64)
    k_eff = min(k, xt.shape[1], xt.shape[0])
    pca = PCA(n_components=k_eff, random_state=0).fit(xt)
    rec = pca.inverse_transform(pca.transform(xv))
    return {"k": k_eff, "val_sq_err_per_image": float(((rec - xv) ** 2).sum(1).mean()),
            "explained_variance": float(pca.explained_variance_ratio_.sum()), "dataset": data.name}


def summarize(model: AE, data: Data, loss_name: str, seed: int = 0) -> dict:
    """The end-of-run metrics of summary.json (validation reconstruction of the whole network, code
    activity, probe), keyed by the metric vocabulary (`metrics.py`)."""
    x_hat = reconstruct(model, data.x_val)
    if loss_name == "bce":
        x_hat = x_hat.clamp(0, 1)
    val_loss = float(objectives.reconstruction_loss(x_hat, data.x_val, loss_name))
    sq = float(objectives.sq_err_per_image(x_hat, data.x_val).mean())
    val_codes = codes_of(model, data.x_val)
    out = {"val_full_loss": val_loss, "val_full_sq_err": sq, "code_dim": int(val_codes.shape[1]),
           "code_mean_activation": float(val_codes.mean()),
           "code_active_fraction": float((val_codes.abs() > 1e-3).float().mean()),
           "linear_probe_accuracy": None}
    if data.y_train is not None and data.y_val is not None and len(torch.unique(data.y_train)) > 1:
        train_codes = codes_of(model, data.x_train)
        out["linear_probe_accuracy"] = linear_probe(train_codes.numpy(), data.y_train.numpy(),
                                                    val_codes.numpy(), data.y_val.numpy(), seed)
    return out
