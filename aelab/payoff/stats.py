"""Statistics of a payoff grid: mean ± sd per cell, the paired difference pretrained − best scratch baseline
with its 95 % t-interval over repeats, a plain-language reading computed from those intervals, text tables.

Pure functions over result rows (dicts); no training and no files here.
"""
from __future__ import annotations

import math

import numpy as np

PRETRAINED = ("frozen", "finetuned")
NO_DIFFERENCE = "no measurable difference"


def series_name(row: dict) -> str:
    return row["label"] + (f" [{row['run_label']}]" if row.get("run_label") else "")


def _groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault((series_name(r), r["method"], r["budget"]), []).append(r)
    return out


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean ± sd of test accuracy, mean validation accuracy, steps and cost per (series, budget)."""
    out = []
    for (series, method, budget), rs in _groups(rows).items():
        acc = np.array([r["accuracy"] for r in rs])
        out.append({"series": series, "method": method, "budget": budget, "n": len(rs), "split": "test",
                    "accuracy_mean": float(acc.mean()), "accuracy_sd": float(acc.std(ddof=1)) if len(rs) > 1 else 0.0,
                    "val_accuracy_mean": float(np.mean([r["val_accuracy"] for r in rs])),
                    "steps_mean": float(np.mean([r["steps"] for r in rs])),
                    "stopped": ", ".join(sorted({r["stopped"] for r in rs})),
                    "seconds_mean": float(np.mean([r["seconds"] for r in rs]))})
    return sorted(out, key=lambda r: (r["series"], r["budget"]))


def t_interval(d: np.ndarray, level: float = 0.95) -> tuple[float, float] | tuple[None, None]:
    """Two-sided t-interval of the mean of paired differences d (None, None for fewer than 2)."""
    from scipy import stats

    if len(d) < 2:
        return None, None
    half = stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def verdict(low: float | None, high: float | None) -> str:
    if low is None:
        return "one repeat: no interval"
    if low <= 0 <= high:
        return NO_DIFFERENCE
    return "pretrained better" if low > 0 else "pretrained worse"


def paired_differences(rows: list[dict]) -> list[dict]:
    """Per pretrained series and budget: accuracy(pretrained) − accuracy(best scratch baseline), paired by
    repeat (same label draw, same seed). The best baseline is the scratch method with the highest mean
    *validation* accuracy at that budget, so no choice looks at the test split."""
    groups = _groups(rows)
    out = []
    for budget in sorted({r["budget"] for r in rows}):
        scratch = {k: rs for k, rs in groups.items() if k[2] == budget and k[1].startswith("scratch")}
        if not scratch:
            continue
        base = max(scratch, key=lambda k: np.mean([r["val_accuracy"] for r in scratch[k]]))
        base_acc = {r["repeat"]: r["accuracy"] for r in scratch[base]}
        for (series, method, b), rs in sorted(groups.items()):
            if b != budget or method not in PRETRAINED:
                continue
            d = np.array([r["accuracy"] - base_acc[r["repeat"]] for r in sorted(rs, key=lambda r: r["repeat"])
                          if r["repeat"] in base_acc])
            low, high = t_interval(d)
            out.append({"series": series, "method": method, "budget": budget, "baseline": base[0], "n": len(d),
                        "diff_mean": float(d.mean()), "ci_low": low, "ci_high": high, "verdict": verdict(low, high)})
    return out


def reading(paired: list[dict]) -> str:
    """A plain-language reading of the paired intervals, one sentence per pretrained series."""
    lines = []
    for series in sorted({p["series"] for p in paired}):
        ps = [p for p in paired if p["series"] == series]
        parts = []
        for v in ("pretrained better", NO_DIFFERENCE, "pretrained worse", "one repeat: no interval"):
            hits = [p for p in ps if p["verdict"] == v]
            if not hits:
                continue
            at = ", ".join(str(p["budget"]) for p in hits)
            gaps = ", ".join(f"{100 * p['diff_mean']:+.1f}" for p in hits)
            parts.append(f"{NO_DIFFERENCE} at {at} labels" if v == NO_DIFFERENCE else
                         f"{v.removeprefix('pretrained ')} at {at} labels ({gaps} points)")
        n = max(p["n"] for p in ps)
        lines.append(f"{series} vs the best scratch baseline (95 % interval over {n} paired repeats): "
                     + "; ".join(parts) + ".")
    return " ".join(lines) if lines else "No pretrained series to compare."


def format_table(table: list[dict]) -> str:
    """Test accuracy, mean ± sd, one line per series, one column per budget."""
    budgets = sorted({r["budget"] for r in table})
    series = sorted({r["series"] for r in table}, key=lambda s: [r["method"] for r in table if r["series"] == s][0])
    width = max(len(s) for s in series)
    lines = [f"{'method':<{width}}  " + "  ".join(f"{b:>13}" for b in budgets)]
    for s in series:
        cells = {r["budget"]: r for r in table if r["series"] == s}
        lines.append(f"{s:<{width}}  " + "  ".join(
            f"{100 * cells[b]['accuracy_mean']:6.1f} ± {100 * cells[b]['accuracy_sd']:4.1f}" if b in cells
            else f"{'-':>13}" for b in budgets))
    return "\n".join(lines)


def format_paired(paired: list[dict]) -> str:
    """Paired differences in points with their 95 % intervals, one line per series and budget."""
    lines = [f"{'pretrained series':<44} {'labels':>6}  {'best scratch (by val)':<24} {'diff':>6}  95 % interval"]
    for p in paired:
        ci = "-" if p["ci_low"] is None else f"[{100 * p['ci_low']:+.1f}, {100 * p['ci_high']:+.1f}]"
        lines.append(f"{p['series'][:44]:<44} {p['budget']:>6}  {p['baseline'][:24]:<24} "
                     f"{100 * p['diff_mean']:+6.1f}  {ci}  {p['verdict']}")
    return "\n".join(lines)
