"""Instruments read on the fixed probe set at snapshot time: what the theory says should be visible.

- denoising: the model's output from the corrupted probe images vs the clean ones, next to the identity
  baseline (the corrupted input itself taken as the estimate: a denoiser must beat it);
- contraction: the exact Frobenius norm of the encoder's Jacobian, ||J_f(x)||_F (Rifai et al. 2011);
- sparsity: the mean activation of each code unit (to be read against the KL target rho);
- linear AE = PCA (Baldi 2012): principal angles between the span of the decoder and the top-k PCA
  subspace of the train data, and the error ratio to PCA.

The probe set is fixed for a run (the first N validation images, corrupted once with a fixed seed), so
successive snapshots measure the same thing. Pure functions of (model, probe tensors); no training, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .config import NoiseConfig
from .model import AE, Dense, TiedDense
from .objectives import corrupt, sq_err_per_image

CHUNK = 1024
N_JACOBIAN = 256  # probe images whose exact Jacobian is taken, at most
# Multiply-adds per snapshot for the Jacobian (~0.05 s of matmul on 2 cores; small convs run slower). An
# exact Jacobian costs min(input, code) passes through the encoder per image, so wide or conv encoders use
# fewer images (at least 4, always the first of the fixed probe set: every snapshot and every run of one
# architecture measure the same images).
JACOBIAN_BUDGET = 5e8


@dataclass
class ProbeSet:
    """The fixed images every snapshot is measured on."""
    x: torch.Tensor  # (N, ...) clean validation images
    x_noisy: torch.Tensor | None  # the same, corrupted once (None when the run has no noise)
    pca_mean: np.ndarray | None = None  # (D,) train mean, for linear dense runs only
    pca_components: np.ndarray | None = None  # (k_max, D) top principal directions of the train data


def fixed_corruption(x: torch.Tensor, noise: NoiseConfig, seed: int, n_head: int) -> torch.Tensor | None:
    """x corrupted once, reproducibly. The first n_head rows are drawn exactly as the worker draws the
    probe.npz images it shows (a generator seeded with seed, those rows first), so the grid's corrupted
    row is the input the snapshot's denoised row was computed from."""
    if noise.kind == "none" or noise.level == 0:
        return None
    gen = torch.Generator().manual_seed(seed)
    head = corrupt(x[:n_head], noise, gen)
    return torch.cat([head, corrupt(x[n_head:], noise, gen)]) if len(x) > n_head else head


def is_linear_dense(model: AE) -> bool:
    """Every layer dense and linear: the case where the AE's optimum spans PCA's subspace."""
    layers = list(model.encoders) + list(model.decoders)
    return model.kind == "dense" and all(m.act_name == "linear" for m in layers)


def make_probe_set(model: AE, x_train: torch.Tensor, x_val: torch.Tensor, noise: NoiseConfig, seed: int,
                   n: int, n_head: int) -> ProbeSet:
    """The probe set of a run: the first n validation images (PCA of the train data for linear runs)."""
    x = x_val[:n]
    probe = ProbeSet(x, fixed_corruption(x, noise, seed, n_head))
    if is_linear_dense(model):
        from sklearn.decomposition import PCA

        xt = x_train.reshape(len(x_train), -1).double().numpy()
        k_max = min(max(int(e.linear.out_features) for e in model.encoders), *xt.shape)
        # covariance_eigh: exact (the angles must be ~0 for an exact PCA decoder) and fast for N >> D
        pca = PCA(n_components=k_max, svd_solver="covariance_eigh").fit(xt)
        probe.pca_mean, probe.pca_components = pca.mean_, pca.components_
    return probe


@torch.no_grad()
def _outputs(model: AE, x: torch.Tensor, level: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes h_level flattened (N, k), reconstructions through stages 1..level) of x, on the CPU."""
    codes, recon = [], []
    for i in range(0, len(x), CHUNK):
        h = model.encode(x[i:i + CHUNK].to(device), upto=level)
        recon.append(model.decode(h, frm=level).float().cpu())
        codes.append(h.reshape(len(h), -1).float().cpu())
    return torch.cat(codes), torch.cat(recon)


def reconstruction_probes(model: AE, probe: ProbeSet, level: int, n_images: int, device) -> dict:
    """Squared error per image (mean over the probe set) of the clean-input reconstruction, and with
    noise: of the output from the corrupted input (denoised) and of the corrupted input itself (identity).
    Also the mean activation of each code unit and the denoised images of the first n_images."""
    model.eval()
    codes, recon = _outputs(model, probe.x, level, device)
    out = {"clean_sq_err": float(sq_err_per_image(recon, probe.x).mean()),
           "unit_mean": codes.mean(0).numpy(), "probe_images": len(probe.x)}
    if probe.x_noisy is not None:
        _, den = _outputs(model, probe.x_noisy, level, device)
        out["denoised_sq_err"] = float(sq_err_per_image(den, probe.x).mean())
        out["identity_sq_err"] = float(sq_err_per_image(probe.x_noisy, probe.x).mean())
        out["denoised"] = den[:n_images].clamp(0, 1)
    return out


def _act_grad(act: str, a: torch.Tensor) -> torch.Tensor:
    """d act / d a, elementwise, at pre-activation a."""
    if act == "relu":
        return (a > 0).to(a.dtype)
    if act == "sigmoid":
        s = torch.sigmoid(a)
        return s * (1 - s)
    if act == "tanh":
        return 1 - torch.tanh(a) ** 2
    return torch.ones_like(a)


def _push(block, h: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One encoder block on activations h (b, ...) and on their tangents t (b, P, ...): forward mode by
    hand (a linear map, the activation's slope, max-pooling's selected entries), batched over P."""
    b, p = t.shape[:2]
    if isinstance(block, Dense):
        a = block.linear(h)  # (b, n_out)
        return block.act(a), (t @ block.linear.weight.t()) * _act_grad(block.act_name, a)[:, None]
    a = block.conv(h)  # (b, c, H, W)
    ta = F.conv2d(t.flatten(0, 1), block.conv.weight, padding=1).unflatten(0, (b, p))
    z, tz = block.act(a), ta * _act_grad(block.act_name, a)[:, None]
    out, idx = F.max_pool2d(z, 2, return_indices=True)  # idx: flat H*W positions of each window's max
    picked = tz.flatten(3).gather(3, idx.flatten(2)[:, None].expand(b, p, -1, -1))
    return out, picked.reshape(b, p, *out.shape[1:])


def _dense_reverse(blocks, h: torch.Tensor) -> torch.Tensor:
    """||J||_F per row of h for a chain of Dense blocks: J = D_L W_L ... D_1 W_1, D_l = diag(act'(a_l)),
    accumulated from the code side so the running product stays (b, k, n_l) with k the code size."""
    slopes = []
    for block in blocks:
        a = block.linear(h)
        slopes.append(_act_grad(block.act_name, a))
        h = block.act(a)
    m = None
    for block, d in zip(reversed(blocks), reversed(slopes)):
        w = block.linear.weight  # (n_out, n_in)
        m = d[:, :, None] * w if m is None else (m * d[:, None, :]) @ w
    return m.flatten(1).norm(dim=1)


def jacobian_fro(model: AE, x: torch.Tensor, level: int | None = None) -> torch.Tensor:
    """Exact ||J_f(x_i)||_F per image, f = the encoder through stages 1..level; (N,).

    Dense encoders whose code is smaller than the input: reverse mode (one row per code unit, as batched
    matrix products). Otherwise forward mode (`_push`, one tangent per input dimension, all batched).
    Both by hand: torch.func's vmapped jacrev/jacfwd gave the same numbers 3-100x slower here (max-pooling).
    """
    model.eval()
    level = model.n_stages if level is None else level
    _, widest, n_out = _encoder_sizes(model, x, level)
    n_in = x[0].numel()
    with torch.no_grad():
        if model.kind == "dense" and n_out <= n_in:
            return torch.cat([_dense_reverse(model.encoders[:level], model.prepare(x[i:i + 256]))
                              for i in range(0, len(x), 256)])
        out, step = [], max(1, 2 ** 22 // (n_in * widest))  # ~16 MB of tangents at a time
        # d h_0 / d x: one tangent per input dimension, through `prepare` (padding adds no inputs)
        eye = model.prepare(torch.eye(n_in, dtype=x.dtype, device=x.device).reshape(n_in, *x.shape[1:]))
        for i in range(0, len(x), step):
            h = model.prepare(x[i:i + step])
            t = eye.expand(len(h), *eye.shape)  # (b, n_in, ...)
            for block in model.encoders[:level]:
                h, t = _push(block, h, t)
            out.append(t.flatten(2).pow(2).sum((1, 2)).sqrt())
        return torch.cat(out)


def _encoder_sizes(model: AE, x: torch.Tensor, level: int) -> tuple[int, int, int]:
    """(multiply-adds, most values held at once (a conv block's before pooling), code size) for one image."""
    macs, widest, h = 0, x[0].numel(), model.prepare(x[:1])
    with torch.no_grad():
        for block in model.encoders[:level]:
            spatial = h[0, 0].numel() if h.dim() == 4 else 1  # a 3x3 conv runs at its input's resolution
            macs += block.weight.numel() * spatial
            widest = max(widest, block.weight.shape[0] * spatial)
            h = block(h)
    return macs, widest, h[0].numel()


def _jacobian_images(model: AE, x: torch.Tensor, level: int) -> int:
    """How many probe images the Jacobian is taken on: as many as fit the budget, 4 to N_JACOBIAN."""
    macs, _, n_out = _encoder_sizes(model, x, level)
    n_in = x[0].numel()
    passes = n_out if model.kind == "dense" and n_out <= n_in else n_in
    return int(min(len(x), N_JACOBIAN, max(4, JACOBIAN_BUDGET // (passes * macs))))


def decoder_matrix(model: AE, level: int | None = None) -> torch.Tensor:
    """(D, k): the linear decoder through decoders level..1 as one matrix, W_dec1 @ ... @ W_dec_level.
    Its column space is where every reconstruction lies (up to the output bias)."""
    m = None
    for dec in model.decoders[: model.n_stages if level is None else level]:
        w = dec.weight.t() if isinstance(dec, TiedDense) else dec.linear.weight  # (n_below, n_above)
        m = w if m is None else m @ w
    return m.detach().double().cpu()


def pca_probes(model: AE, probe: ProbeSet, level: int, clean_sq_err: float) -> dict:
    """Principal angles (degrees, largest first) between the decoder's column space and the top-k PCA
    subspace (k = the code size at `level`), and the AE's error over PCA's on the probe set."""
    from scipy.linalg import subspace_angles

    dec = decoder_matrix(model, level).numpy()
    k = dec.shape[1]
    comps = probe.pca_components[:k]  # (k, D)
    x = probe.x.reshape(len(probe.x), -1).double().numpy() - probe.pca_mean
    pca_err = float((((x @ comps.T) @ comps - x) ** 2).sum(1).mean())
    angles = np.degrees(subspace_angles(dec, comps.T))
    return {"pca_angles_deg": angles, "pca_sq_err": pca_err, "pca_ratio": clean_sq_err / pca_err}


def snapshot_probes(model: AE, probe: ProbeSet, level: int, n_images: int, device,
                    jacobian: bool = True) -> dict:
    """Everything a snapshot stores beyond the grid and the codes (see the module docstring).
    jacobian=False skips ||J||_F (the training loop throttles it: it is the one costly instrument)."""
    out = reconstruction_probes(model, probe, level, n_images, device)
    if jacobian:
        n_jac = _jacobian_images(model, probe.x, level)
        norms = jacobian_fro(model, probe.x[:n_jac].to(device), level)
        out["jacobian_fro"], out["jacobian_images"] = float(norms.mean()), n_jac
    if probe.pca_components is not None and is_linear_dense(model):
        out.update(pca_probes(model, probe, level, out["clean_sq_err"]))
    return out
