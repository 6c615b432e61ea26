"""The payoff experiment in a terminal: run (or reuse) a grid with a progress bar and print its tables."""
from __future__ import annotations

import os
import sys

from .grid import PayoffConfig, run_payoff
from .job import cached, payoff_dir
from .stats import format_paired, format_table


def print_result(result: dict, repeats: int) -> None:
    print(f"test accuracy on {result['dataset']} (mean ± sd over {repeats} repeats, columns = labels):")
    print(format_table(result["table"]))
    print("\npaired difference pretrained − best scratch baseline (points, 95 % t-interval over repeats):")
    print(format_paired(result["paired"]))
    print("\n" + result["reading"])
    print("\ntraining rule: " + result["rule_text"])


def run_payoff_cli(cfg: PayoffConfig, runs_dir: str | os.PathLike = "runs", ray: str | None = None) -> int:
    """Run the grid in this process, or on Ray (`ray`: "local" or a cluster address), or reuse a cached
    result; the results.csv path is the last line."""
    from tqdm import tqdm

    out = payoff_dir(cfg, runs_dir)
    result = cached(cfg, runs_dir)
    if result is None:
        bar = tqdm(total=None, unit="cell", file=sys.stderr, dynamic_ncols=True)

        def progress(done, total, msg):
            bar.total = total
            bar.n = done
            bar.set_postfix_str(msg, refresh=True)
        if ray:
            from .remote import run_payoff_ray

            result = run_payoff_ray(cfg, out, progress, address=None if ray == "local" else ray)
        else:
            result = run_payoff(cfg, out, progress)
        bar.close()
    else:
        print("(cached result)", file=sys.stderr)
    print_result(result, cfg.repeats)
    print(out / "results.csv")
    return 0
