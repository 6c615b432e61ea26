"""Train every preset on its default data and compare with PCA of the same code size.

    .venv/bin/python -m scripts.measure_presets [--only NAME,...] [--set KEY=VALUE ...]

Prints one markdown row per preset (the README's preset table). Runs go to runs/presets/.
"""
import argparse
import json
import subprocess
import sys

from aelab.data import load_data
from aelab.evaluate import pca_baseline
from aelab.model import build_model
from aelab.presets import PRESETS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--runs-dir", default="runs/presets")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(PRESETS)
    print("| preset | params | test sq. err / image | PCA, same code size (test) | linear probe (test) | wall s |")
    print("|---|---|---|---|---|---|")
    for name in names:
        cfg = PRESETS[name].config()
        cmd = [sys.executable, "-m", "aelab", "train", "--preset", name, "--runs-dir", args.runs_dir]
        for s in args.set:
            cmd += ["--set", s]
        out = subprocess.run(cmd, capture_output=True, text=True)
        run_dir = out.stdout.strip().splitlines()[-1]
        s = json.load(open(f"{run_dir}/summary.json"))
        data = load_data(cfg.data)
        k = build_model(cfg, data.input_shape).code_dim()
        pca = pca_baseline(data, k)["test_sq_err_per_image"]
        probe = s["linear_probe_accuracy"]
        print(f"| `{name}` | {s['params']:,} | {s['test_full_sq_err']:.2f} | {pca:.2f} (k={k}) | "
              f"{'-' if probe is None else f'{probe:.3f}'} | {s['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
