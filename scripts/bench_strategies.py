"""Greedy layer-wise pretraining (+ fine-tuning) vs end-to-end training at equal training compute: which
network reconstructs the test split better?

    nice .venv/bin/python -m scripts.bench_strategies [--preset stacked-denoising] [--dataset fashion_mnist]
                                                      [--seeds 0,1,2] [--max-train N] [--set KEY=VALUE ...]

Both arms share everything but the strategy: architecture, optimiser, learning rate, batch size, noise and
loss come from the preset. The greedy arm is the preset as it is; the end-to-end arm gets the number of
epochs whose training compute (`aelab/flops.py`: forward multiply-adds x 3, plus the greedy arm's one
forward pass per stage caching codes) is closest to the greedy arm's total. For each seed both arms start
from the same initial weights (same torch seed before `build_model`) and the same batch-order generator,
so the per-seed difference is paired. Reported: the full network's squared error per test image (the
split nothing tunes on; nothing here looks at validation), mean +- sd over seeds, and the paired
difference greedy - end-to-end with its 95 % t-interval. Prints a markdown table for the README.
"""
import argparse
import math
import time

import numpy as np
import torch
from scipy import stats

from aelab import train as T
from aelab.data import load_data
from aelab.evaluate import sq_err_per_image
from aelab.metrics import header, label
from aelab.model import build_model
from aelab.presets import get_preset
from aelab.race import end_to_end_twin


def train_arm(cfg, data) -> dict:
    torch.manual_seed(cfg.train.seed)  # the same initial weights in both arms of a seed
    model = build_model(cfg, data.input_shape)
    ctx = T.train(cfg, data, model)
    return {"test": float(sq_err_per_image(model.cpu(), data.x_test).mean()), "gflop": ctx.gflop(),
            "seconds": ctx.seconds(), "epochs": ctx.epoch}


def mean_sd(v: list[float]) -> str:
    return f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def paired(diffs: list[float]) -> tuple[float, float, float]:
    """Mean difference and its 95 % t-interval over the seeds."""
    d = np.asarray(diffs)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def verdict(lo: float, hi: float) -> str:
    if not lo < 0 < hi and np.isfinite(lo):
        return "greedy (+ fine-tune) reconstructs better" if hi < 0 else "end-to-end reconstructs better"
    return "no measurable difference (the interval contains 0)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="stacked-denoising", help="a greedy preset (e.g. tied-stacked)")
    ap.add_argument("--dataset", default="mnist5k", help="data.name, e.g. fashion_mnist (the full 60k + 10k)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--max-train", type=int, default=0, help="data.max_train (0: the whole train split)")
    ap.add_argument("--set", action="append", default=[], help="a dotted config override for both arms")
    args = ap.parse_args()
    sets = dict(item.split("=", 1) for item in args.set)
    greedy = get_preset(args.preset).config().with_overrides({"data.name": args.dataset,
                                                              "data.max_train": args.max_train, **sets})
    if greedy.train.strategy != "greedy":
        raise SystemExit(f"--preset: {args.preset} is not a greedy preset")
    data = load_data(greedy.data)
    t = greedy.train
    e2e = end_to_end_twin(greedy, data.input_shape)  # the race's end-to-end arm: equal training compute
    e2e_epochs = e2e.train.epochs
    print(f"{args.preset} ({','.join(map(str, greedy.model.layers))}, {t.optimizer} lr {t.lr}, batch "
          f"{t.batch_size}, noise {greedy.noise.kind} {greedy.noise.level}) on {data.describe()}; "
          f"{len(data.x_test)} test images; torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    res = {"greedy": [], "end_to_end": []}
    for seed in (int(s) for s in args.seeds.split(",")):
        for arm, cfg in (("greedy", greedy), ("end_to_end", e2e)):
            t0 = time.perf_counter()
            r = train_arm(cfg.with_overrides({"train.seed": seed}), data)
            res[arm].append(r)
            print(f"  seed {seed} {arm}: {header('test_full_sq_err')} {r['test']:.3f}, {r['gflop']:.1f} GFLOP, "
                  f"{r['epochs']} epochs, {time.perf_counter() - t0:.0f} s", flush=True)
    n = greedy.model.layers
    rows = (("greedy", f"greedy ({t.epochs} epochs x {len(n)} stages + {t.finetune_epochs} fine-tune)"),
            ("end_to_end", f"end-to-end ({e2e_epochs} epochs)"))
    print(f"\n| arm | {label('gflop')} | {header('test_full_sq_err')}, mean ± sd | per seed |\n|---|---|---|---|")
    for arm, name in rows:
        v = [r["test"] for r in res[arm]]
        print(f"| {name} | {np.mean([r['gflop'] for r in res[arm]]):.1f} | {mean_sd(v)} | "
              f"{', '.join(f'{x:.3f}' for x in v)} |")
    m, lo, hi = paired([g["test"] - e["test"] for g, e in zip(res["greedy"], res["end_to_end"])])
    print(f"\npaired difference greedy - end-to-end over {len(res['greedy'])} seeds: {m:+.3f} "
          f"(95 % t-interval [{lo:+.3f}, {hi:+.3f}]): {verdict(lo, hi)}")


if __name__ == "__main__":
    main()
