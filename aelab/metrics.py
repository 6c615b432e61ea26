"""The lab's metric vocabulary: each quantity that metrics.jsonl, summary.json, the charts, the Compare table
and its CSV export show is defined here once, with its record key, display label, unit and definition.

Run folders written before a key was renamed stay readable: `upgrade_record` and `upgrade_summary` map the
old keys to the new ones and are applied in one place, where `runs.Run` reads the files. Nothing here
computes a metric; the training loop (`train.py`), `evaluate.py` and the worker do.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    key: str  # the name in metrics.jsonl / summary.json
    label: str  # legends, axis titles, table columns
    unit: str  # "" for pure counts and labels that already say it
    definition: str

    @property
    def header(self) -> str:
        """Table / CSV column: the label with its unit."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


_SQ = "val sq. err / image"
VOCABULARY: dict[str, Metric] = {m.key: m for m in [
    # x axes (every step and epoch record carries all of them)
    Metric("epoch", "epoch", "", "global epoch counter over all stages (charts: samples / train-set size)"),
    Metric("step", "optimiser steps", "", "optimiser steps taken, all stages"),
    Metric("samples", "samples seen", "", "training examples processed by optimiser steps, all stages"),
    Metric("seconds", "wall-clock seconds (training)", "", "training time, pauses excluded"),
    Metric("gflop", "training compute (GFLOP)", "",
           "2 x the multiply-adds of the training steps (forward x 3 for forward + backward) plus a greedy "
           "stage's one forward pass caching its input codes; validation and snapshots excluded"),
    # the objective of the stage being trained
    Metric("loss", "train (steps)", "loss", "the trained stage's objective on the batches since the last step "
           "record (noise and penalties included)"),
    Metric("train_loss", "train (epoch)", "loss", "the trained stage's objective averaged over the epoch"),
    Metric("val_loss", "validation (stage objective)", "loss",
           "the trained stage's reconstruction loss on validation data, no noise or penalty (greedy stage "
           "k > 1: of its input codes h_k-1, first 1,024 validation images)"),
    # pixel-space reconstruction error on validation data
    Metric("val_full_sq_err", "full network", _SQ,
           "squared pixel error per validation image of the whole network: all n encoders, then all n "
           "decoders, whatever state the not-yet-trained stages are in"),
    Metric("val_full_loss", "full network, val loss", "loss",
           "the configured pixel loss (train.loss) of the whole network on validation data"),
    Metric("val_stage_sq_err", "through stages 1..k", _SQ,
           "squared pixel error per validation image through encoders 1..k and decoders k..1, k = the stage "
           "being trained (k = n for end-to-end and fine-tuning: then it equals full network)"),
    Metric("val_stage_pixel_loss", "through stages 1..k, val loss", "loss",
           "the configured pixel loss through stages 1..k on validation data"),
    Metric("test_full_sq_err", "full network, test", "sq. err / image",
           "squared pixel error per test image of the whole network (Hinton & Salakhutdinov's measure) on the "
           "test split, which nothing was tuned on"),
    Metric("test_full_loss", "full network, test loss", "loss",
           "the configured pixel loss (train.loss) of the whole network on the test split"),
    Metric("pca_test_sq_err", "PCA, same code size", "test sq. err / image",
           "the same test error for PCA fit on the train split with as many components as the code has units"),
    # instruments of aelab/probes.py: each snapshot, on the run's fixed probe images (validation)
    Metric("denoised_sq_err", "denoised (probe)", "sq. err / image",
           "squared error per probe image of the output from the corrupted input, against the clean image"),
    Metric("identity_sq_err", "identity (probe)", "sq. err / image",
           "squared error of the corrupted input itself against the clean image: what a denoiser must beat"),
    Metric("jacobian_fro", "encoder ||J||_F", "",
           "mean Frobenius norm of the encoder's Jacobian dh/dx on probe images (a contractive penalty lowers "
           "it: compare with the same architecture without the penalty)"),
    Metric("pca_angles_deg", "max angle to PCA", "deg",
           "all-linear runs: the largest principal angle between the decoder's column space and the top-k PCA "
           "subspace of the train split (0 = the same subspace, Baldi 2012)"),
    Metric("pca_ratio", "error / PCA (probe)", "",
           "all-linear runs: the probe images' squared error divided by PCA's with as many components"),
    # end-of-run summary
    Metric("params", "parameters", "", "trainable parameters, a tied weight counted once"),
    Metric("epochs_completed", "epochs", "", "epoch records written"),
    Metric("samples_per_second", "samples / s", "", "samples / seconds"),
    Metric("code_dim", "code size", "", "units of the code layer"),
    Metric("code_mean_activation", "mean code activation", "", "mean of the code units on the test split"),
    Metric("code_active_fraction", "active code fraction", "", "fraction of code values with |h| > 1e-3"),
    Metric("linear_probe_accuracy", "linear-probe accuracy", "",
           "test accuracy of a logistic regression fit on the standardised train codes"),
]}

# Record fields that name things rather than measure them.
FIELDS = ("kind", "stage", "stage_name", "status", "message", "strategy", "name")

# old key -> new key. The old per-epoch "full-stack" curve reconstructed through stages 1..k only.
RECORD_ALIASES = {"val_sq_err": "val_stage_sq_err", "val_pixel_loss": "val_stage_pixel_loss"}
# Old summaries were computed with the whole model (evaluate.summarize), so they are full-network values.
SUMMARY_ALIASES = {"val_sq_err_per_image": "val_full_sq_err", "val_loss": "val_full_loss",
                   "test_sq_err_per_image": "test_full_sq_err", "test_loss": "test_full_loss",
                   "wall_seconds": "seconds", "samples_seen": "samples", "steps": "step",
                   "train_samples_per_second": "samples_per_second"}


def label(key: str) -> str:
    return VOCABULARY[key].label


def header(key: str) -> str:
    return VOCABULARY[key].header


def _renamed(d: dict, aliases: dict) -> dict:
    out = {k: v for k, v in d.items() if k not in aliases}
    for old, new in aliases.items():
        if old in d:
            out.setdefault(new, d[old])  # a record holding both keeps the new one
    return out


def _whole_network(record: dict) -> bool:
    """Old epoch records carry no level; their stage name says when stages 1..k were the whole network."""
    name = str(record.get("stage_name", ""))
    if name in ("end-to-end", "fine-tune", "fine-tuning"):
        return True
    parts = name.split()  # "stage k of n" (old) or "pretraining layer k of n"
    return len(parts) >= 4 and parts[-4] in ("stage", "layer") and parts[-3] == parts[-1]


def upgrade_record(record: dict) -> dict:
    """A metrics.jsonl record with today's keys (records written before the renames included)."""
    if not any(k in record for k in RECORD_ALIASES):
        return record
    out = _renamed(record, RECORD_ALIASES)
    if "val_full_sq_err" not in out and "val_stage_sq_err" in out and _whole_network(out):
        out["val_full_sq_err"] = out["val_stage_sq_err"]
        out.setdefault("val_full_loss", out.get("val_stage_pixel_loss"))
    return out


def upgrade_summary(summary: dict | None) -> dict | None:
    """A summary.json with today's keys."""
    return None if summary is None else _renamed(summary, SUMMARY_ALIASES)
