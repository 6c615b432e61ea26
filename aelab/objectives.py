"""What an autoencoder is trained to minimise: reconstruction, input corruption, sparsity, contraction.

Pure tensor functions; the training loop composes them through `stage_loss`. Nothing here knows about
stages, optimisers or the run store.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import ContractiveConfig, NoiseConfig, SparsityConfig


def corrupt(x: torch.Tensor, cfg: NoiseConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Corrupt a batch for denoising (Vincent et al. 2010); the target stays the clean x.

    gaussian: x + N(0, level^2); masking: a `level` fraction of entries set to 0;
    salt_pepper: a `level` fraction set to the batch min or max (0/1 for images), half each.
    """
    if cfg.kind == "none" or cfg.level == 0:
        return x
    if cfg.kind == "gaussian":
        return x + cfg.level * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if cfg.kind == "masking":
        return x * (u >= cfg.level)
    if cfg.kind == "salt_pepper":
        lo, hi = x.min(), x.max()
        out = torch.where(u < cfg.level / 2, lo, x)
        return torch.where((u >= cfg.level / 2) & (u < cfg.level), hi, out)
    raise ValueError(f"noise.kind: unknown {cfg.kind!r}")


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean over all elements (the Keras convention), so the value does not depend on image size."""
    if loss == "bce":
        return F.binary_cross_entropy(x_hat, x)
    return F.mse_loss(x_hat, x)


def sparsity_penalty(code: torch.Tensor, cfg: SparsityConfig) -> torch.Tensor:
    """L1: weight * mean |h|.  KL: beta * sum_j KL(rho || rho_hat_j), rho_hat_j = batch mean of unit j
    (the sparse-autoencoder penalty of Ng's CS294A notes); needs units in (0, 1)."""
    if cfg.kind == "none" or cfg.weight == 0:
        return code.new_zeros(())
    h = code.reshape(len(code), -1)
    if cfg.kind == "l1":
        return cfg.weight * h.abs().mean()
    rho = cfg.target
    rho_hat = h.mean(0).clamp(1e-6, 1 - 1e-6)
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return cfg.weight * kl.sum()


def contractive_penalty(encode, x_in: torch.Tensor, code: torch.Tensor, cfg: ContractiveConfig,
                        layer=None) -> torch.Tensor:
    """lambda * ||J_f(x)||_F^2 averaged over the batch (Rifai et al. 2011).

    For a single dense layer h = s(Wx + b) the norm is exact and cheap: sum_j s'(a_j)^2 ||W_j||^2.
    For deeper/conv encoders we use the unbiased estimate E_v ||J^T v||^2 with v ~ N(0, I) (one
    vector-Jacobian product), which needs x_in to require grad; `encode` recomputes the code from it.
    """
    if cfg.weight == 0:
        return code.new_zeros(())
    if layer is not None:
        act = layer.act_name
        h = code
        if act == "sigmoid":
            d = h * (1 - h)
        elif act == "tanh":
            d = 1 - h * h
        elif act == "relu":
            d = (h > 0).to(h.dtype)
        else:
            d = torch.ones_like(h)
        w2 = layer.weight.pow(2).sum(1)  # (n_out,) = ||W_j||^2
        return cfg.weight * (d.pow(2) * w2).sum(1).mean()
    x = x_in.detach().requires_grad_(True)
    h = encode(x)
    v = torch.randn_like(h)
    (g,) = torch.autograd.grad(h, x, grad_outputs=v, create_graph=True)
    return cfg.weight * g.reshape(len(g), -1).pow(2).sum(1).mean()


def sq_err_per_image(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum over pixels of squared error, one value per image (Hinton & Salakhutdinov 2006's measure)."""
    return (x_hat - x).reshape(len(x), -1).pow(2).sum(1)
