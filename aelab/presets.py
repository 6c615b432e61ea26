"""One preset per classic experiment: a name, one line on what it shows, and its config overrides.

Defaults were tuned so each preset gives a good result on mnist5k in about a minute on 2 CPU cores
(the README lists the measured numbers; `scripts/measure_presets.py` re-measures them). Deep
nonlinear presets must beat PCA with the same code size on the same split; two choices get them
there on only 4,000 images: small batches (more updates per epoch) and a linear code layer.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import RunConfig, validate


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    idea: str  # the one line shown in lists and the gallery
    overrides: dict

    def config(self) -> RunConfig:
        return validate(RunConfig(name=self.name).with_overrides(self.overrides))


PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("keras-simple", "Keras simple AE",
           "784-32-784, ReLU code, sigmoid output, BCE: the smallest undercomplete autoencoder",
           {"model.layers": "32", "model.activation": "relu", "train.loss": "bce", "train.epochs": 40,
            "train.batch_size": 64}),
    Preset("keras-deep", "Keras deep AE",
           "784-128-64-32 mirrored, trained end-to-end at once (the classic Keras example, made to beat PCA)",
           {"model.layers": "128,64,32", "model.code_activation": "linear", "train.epochs": 60,
            "train.batch_size": 32}),
    Preset("tied-stacked", "Tied stacked AE (greedy)",
           "784-100-30 with tied weights, trained stage by stage then fine-tuned: half the parameters",
           {"model.layers": "100,30", "model.tied": True, "model.code_activation": "linear",
            "train.strategy": "greedy", "train.epochs": 15, "train.finetune_epochs": 40,
            "train.batch_size": 32}),
    # Masking 0.1 barely beat the identity (the corrupted input itself: 8.26 vs 8.47); at 0.3 the
    # denoised output is clearly better than its input, so the grid shows denoising.
    Preset("stacked-denoising", "Stacked denoising AE",
           "30 % masking noise on each stage's input, greedy layer-wise pretraining, then fine-tuning "
           "(Vincent 2010); the grid shows the output from the corrupted input",
           {"model.layers": "256,64,32", "model.code_activation": "linear", "noise.kind": "masking",
            "noise.level": 0.3, "train.strategy": "greedy", "train.epochs": 10, "train.finetune_epochs": 35,
            "train.batch_size": 32}),
    Preset("denoising-gaussian", "Denoising AE (Gaussian noise)",
           "Gaussian noise (sigma 0.4) on the input, trained end-to-end to give back the clean image: "
           "its output error is far below the noisy input's own",
           {"model.layers": "256,64,32", "model.code_activation": "linear", "noise.kind": "gaussian",
            "noise.level": 0.4, "train.epochs": 30, "train.batch_size": 32}),
    Preset("sparse-kl", "Sparse AE (KL)",
           "a sigmoid code pushed to a mean activation of 0.05 by a KL penalty",
           {"model.layers": "128", "model.activation": "sigmoid", "sparsity.kind": "kl",
            "sparsity.target": 0.05, "sparsity.weight": 0.05, "train.epochs": 40, "train.batch_size": 64,
            "train.lr": 3e-3}),  # sigmoid units learn slowly at Adam's default 1e-3
    Preset("contractive", "Contractive AE",
           "penalises the encoder Jacobian's Frobenius norm: codes that change little with the input",
           {"model.layers": "64", "model.activation": "sigmoid", "contractive.weight": 5e-4,
            "train.epochs": 40, "train.batch_size": 64, "train.lr": 3e-3}),
    Preset("linear-pca", "Linear AE = PCA",
           "linear units and squared error: the AE spans PCA's subspace (Baldi 2012); compare with pca --k 32",
           {"model.layers": "32", "model.activation": "linear", "train.loss": "mse", "train.epochs": 60,
            "train.batch_size": 64}),
    Preset("conv", "Convolutional AE",
           "conv/pool encoder, upsample/conv decoder: image structure for free, few parameters",
           {"model.kind": "conv", "model.layers": "16,8", "train.epochs": 10, "train.batch_size": 64,
            "train.lr": 3e-3}),
    Preset("hinton-2006", "Hinton & Salakhutdinov 2006",
           "784-1000-500-250-30, greedy layer-wise pretraining then end-to-end fine-tuning; the stages are "
           "ReLU autoencoders trained with Adam, not the paper's RBMs",
           {"model.layers": "1000,500,250,30", "model.code_activation": "linear", "train.strategy": "greedy",
            "train.epochs": 4, "train.finetune_epochs": 30, "train.batch_size": 64}),
]}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[name]
