"""Is every payoff method at its own optimum? Run the grid under the training rule at 1x and at 2x the budget
(maximum optimiser steps and plateau patience both doubled) and print, per method and label budget, the mean
test accuracy at 1x and 2x and the difference. A method moved by more than 1 point was not converged.

    .venv/bin/python -m scripts.bench_payoff --runs runs/<keras-deep run> [--budgets 10,30,100,300,1000,all]
                                             [--repeats 3] [--max-steps 3000] [--lsuv]

Also times the 1x grid (wall clock and this process's CPU seconds; the machine may be shared) and prints its
tables as the CLI does. Exit status 1 when any method moves by more than the tolerance.
"""
import argparse
import resource
import time

from aelab.payoff.grid import LABELS, PayoffConfig, run_payoff
from aelab.payoff.report import print_result

TOLERANCE = 0.01  # 1 point of accuracy


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(cfg: PayoffConfig, rule) -> tuple[dict, float, float]:
    t0, c0 = time.perf_counter(), cpu_seconds()
    result = run_payoff(cfg, None, rule=rule)
    return result, time.perf_counter() - t0, cpu_seconds() - c0


def sensitivity(one: dict, two: dict) -> list[dict]:
    """Per (series, budget): mean test accuracy at 1x and 2x, difference, mean steps at 1x and 2x."""
    by = {(r["series"], r["budget"]): r for r in two["table"]}
    out = []
    for r in one["table"]:
        s = by[(r["series"], r["budget"])]
        out.append({"series": r["series"], "budget": r["budget"], "acc_1x": r["accuracy_mean"],
                    "acc_2x": s["accuracy_mean"], "diff": s["accuracy_mean"] - r["accuracy_mean"],
                    "steps_1x": r["steps_mean"], "steps_2x": s["steps_mean"]})
    return out


def print_sensitivity(rows: list[dict]) -> None:
    width = max(len(r["series"]) for r in rows)
    print(f"| {'method':<{width}} | labels | 1x acc % | 2x acc % | 2x − 1x | steps 1x | steps 2x |")
    print(f"|{'-' * (width + 2)}|-------:|---------:|---------:|--------:|---------:|---------:|")
    for r in rows:
        flag = " !" if abs(r["diff"]) > TOLERANCE else ""
        print(f"| {r['series']:<{width}} | {r['budget']:>6} | {100 * r['acc_1x']:8.1f} | {100 * r['acc_2x']:8.1f} | "
              f"{100 * r['diff']:+7.1f}{flag} | {r['steps_1x']:8.0f} | {r['steps_2x']:8.0f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", required=True, help="RUN_DIR[,RUN_DIR...] of trained autoencoders")
    ap.add_argument("--budgets", default="10,30,100,300,1000,all")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-steps", type=int, default=PayoffConfig.max_steps)
    ap.add_argument("--lsuv", action="store_true")
    args = ap.parse_args()
    budgets = tuple(0 if b == "all" else int(b) for b in args.budgets.split(","))
    cfg = PayoffConfig.make(args.runs.split(","), budgets=budgets, repeats=args.repeats, max_steps=args.max_steps,
                            lsuv=args.lsuv)
    one, wall1, cpu1 = timed(cfg, cfg.rule())
    print_result(one, cfg.repeats)
    print(f"\n1x grid ({len(one['rows'])} classifiers): {wall1:.0f} s wall, {cpu1:.0f} s CPU")
    two, wall2, cpu2 = timed(cfg, cfg.rule().scaled(2))
    print(f"2x grid: {wall2:.0f} s wall, {cpu2:.0f} s CPU\n")
    rows = sensitivity(one, two)
    print_sensitivity(rows)
    worst = max(rows, key=lambda r: abs(r["diff"]))
    print(f"\nlargest move: {worst['series']} at {worst['budget']} labels, {100 * worst['diff']:+.1f} points "
          f"(tolerance ±{100 * TOLERANCE:.0f}); methods: "
          + ", ".join(LABELS[m] for m in sorted({r["method"] for r in one["table"]})))
    return int(abs(worst["diff"]) > TOLERANCE)


if __name__ == "__main__":
    raise SystemExit(main())
