"""Sweeps: a grid of settings × seeds, every cell a normal run, read back as groups with error bands.

One run per strategy proves nothing (two seeds of one config can differ more than two strategies do), so a
sweep expands `--grid KEY=V1,V2 ...` over a base config and `--seeds N`, runs every cell through the lab's
job queue, and reads runs that differ only in their seed as a group: mean ± sd, and paired differences
between groups (same seeds) with a 95 % t-interval.

- `expand`: the cells. An end-to-end cell of a greedy base drops `finetune_epochs` and gets the epochs of
  equal training compute (`race.end_to_end_twin`, as race mode does). A grid value that changes nothing
  (a noise level while noise.kind is none) is an error naming the key and why.
- `Sweep`: the record `sweeps/<id>.json` in the run store; the id is a hash of the expanded cell configs, so
  the same sweep asked again is the same sweep: finished cells are skipped, interrupted ones resumed from their
  checkpoint, failed or missing ones started again.
- `groups` / `paired`: the statistics, from the run folders (pure functions over their summaries).
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .config import RunConfig, flat_items, inactive, set_key, validate
from .fsutil import atomic_write
from .runs import Run, RunStore, Unreadable

SWEEPS_DIR = "sweeps"
DONE = ("completed",)  # a cell with a run in this state is not run again


# ----------------------------------------------------------------------------- the cells

def canonical(cfg: RunConfig) -> dict:
    """The config's dotted items with every field that cannot matter (config.INACTIVE: a noise level without
    noise, fine-tuning of an end-to-end run ...) at its default, so configs that train the same way compare equal."""
    items, default = flat_items(cfg), flat_items(RunConfig())
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in ((k, default[k] if inactive(items, k) else v) for k, v in items.items())}


@dataclass(frozen=True)
class Cell:
    values: tuple[tuple[str, str], ...]  # the grid values of this cell, in grid order
    seed: int
    config: RunConfig

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.values) or "base"


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """`KEY=V1,V2` items -> {key: [values]}; a key given twice or without values is an error."""
    grid: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--grid {item!r}: use KEY=V1,V2, e.g. train.strategy=greedy,end_to_end")
        key, values = (s.strip() for s in item.split("=", 1))
        vals = [v.strip() for v in values.split(",") if v.strip()] if key != "model.layers" else \
            [v.strip() for v in values.split("/") if v.strip()]  # layer lists are comma lists: separate with /
        if not vals:
            raise ValueError(f"--grid {key}: no values")
        if key in grid:
            raise ValueError(f"--grid {key}: given twice")
        if len(set(vals)) != len(vals):
            raise ValueError(f"--grid {key}: a value is repeated ({values})")
        grid[key] = vals
    return grid


def expand(base: RunConfig, grid: dict[str, list[str]], seeds: int, input_shape: tuple | None = None) -> list[Cell]:
    """Every combination of the grid's values, `seeds` seeds each (train.seed, train.seed + 1, ...).
    input_shape is needed when an end-to-end cell derives from a greedy base (equal compute)."""
    if seeds < 1:
        raise ValueError(f"--seeds: give at least 1, got {seeds}")
    if "train.seed" in grid:
        raise ValueError("--grid train.seed: use --seeds N for seeds (the cells of a group differ only in seed)")
    cells = []
    for combo in itertools.product(*grid.values()):
        values = tuple(zip(grid, combo))
        cfg = base
        for k, v in values:
            if k != "train.strategy":
                try:
                    cfg = set_key(cfg, k, v)
                except ValueError as e:
                    raise ValueError(f"--grid {e}") from None
        strategy = dict(values).get("train.strategy", cfg.train.strategy)
        if strategy == "end_to_end" and cfg.train.strategy == "greedy":
            if input_shape is None:
                raise ValueError("an end-to-end cell of a greedy config needs the data's input shape")
            from .race import end_to_end_twin

            cfg = end_to_end_twin(cfg, input_shape)
        elif strategy != cfg.train.strategy:
            cfg = set_key(cfg, "train.strategy", strategy)
        for s in range(seeds):
            c = set_key(cfg, "train.seed", base.train.seed + s)
            try:
                validate(c)
            except ValueError as e:
                raise ValueError(f"cell {', '.join(f'{k}={v}' for k, v in values)}: {e}") from None
            cells.append(Cell(values, base.train.seed + s, c))
    _check_each_value_matters(grid, cells)
    return cells


def _check_each_value_matters(grid: dict[str, list[str]], cells: list[Cell]) -> None:
    """A grid key whose values give the same training in some cell changes nothing there: an error."""
    for key, values in grid.items():
        if len(values) < 2:
            continue
        by_rest: dict[str, set[str]] = {}
        for c in cells:
            rest = json.dumps([(k, v) for k, v in c.values if k != key] + [("seed", c.seed)])
            by_rest.setdefault(rest, set()).add(json.dumps(canonical(c.config), sort_keys=True))
        if any(len(configs) < len(values) for configs in by_rest.values()):
            why = inactive(flat_items(cells[0].config), key) or "the other settings make them train the same way"
            raise ValueError(f"--grid {key}: the values {', '.join(values)} change nothing ({why})")


def sweep_id(cells: list[Cell], tuning: str = "") -> str:
    """A hash of the expanded cell configs (and the tuning asked for): the same sweep asked twice has the same id."""
    blob = json.dumps([c.config.to_dict() for c in cells] + [tuning], sort_keys=True).encode()
    return "sweep-" + hashlib.sha256(blob).hexdigest()[:12]


# ----------------------------------------------------------------------------- the record

@dataclass
class Sweep:
    id: str
    grid: dict
    seeds: int
    cells: list[dict] = field(default_factory=list)  # {label, values, seed, config, run_id}
    created: float = 0.0
    tuning: dict | None = None  # --tune: {spaces, trials, cells: {label: {config, trials: [...], best}}}

    @staticmethod
    def path(root: str | os.PathLike, sweep_id_: str) -> Path:
        if not sweep_id_.replace("-", "").isalnum():  # ids come from URLs and the CLI: never a path
            raise KeyError(sweep_id_)
        return Path(root) / SWEEPS_DIR / f"{sweep_id_}.json"

    def save(self, root: str | os.PathLike) -> Path:
        path = self.path(root, self.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(dataclasses.asdict(self), indent=1).encode())
        return path

    @classmethod
    def load(cls, root: str | os.PathLike, sweep_id_: str) -> "Sweep":
        try:
            d = json.loads(cls.path(root, sweep_id_).read_text())
            return cls(d["id"], d["grid"], int(d["seeds"]), list(d["cells"]), float(d.get("created", 0)),
                       d.get("tuning"))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise KeyError(sweep_id_) from e

    @classmethod
    def open(cls, root: str | os.PathLike, grid: dict, seeds: int, cells: list[Cell],
             tuning: tuple[list[str], int] | None = None) -> "Sweep":
        """The sweep of these cells: the one recorded before (same id), or a new record. With tuning
        (spaces, trials) the cells are the configs to tune (one seed each); the runs come after the tuning."""
        sid = sweep_id(cells, json.dumps(tuning) if tuning else "")
        try:
            return cls.load(root, sid)
        except KeyError:
            pass
        if tuning:
            sweep = cls(sid, grid, seeds, [], time.time(), {"spaces": tuning[0], "trials": tuning[1], "cells": {
                c.label: {"config": c.config.to_dict(), "values": [list(v) for v in c.values], "trials": []}
                for c in cells}})
        else:
            sweep = cls(sid, grid, seeds, [_row(c) for c in cells], time.time())
        sweep.save(root)
        return sweep

    def settle(self, root: str | os.PathLike, best: dict) -> None:
        """After tuning: each tuned cell at its best setting, with every seed, becomes the sweep's runs."""
        if self.cells:
            return
        from .tune import with_params

        for label, cell in self.tuning["cells"].items():
            cfg = with_params(RunConfig.from_dict(cell["config"]), best[label])
            values = tuple(tuple(v) for v in cell["values"])
            self.cells += [_row(Cell(values, cfg.train.seed + s, set_key(cfg, "train.seed", cfg.train.seed + s)))
                           for s in range(self.seeds)]
        self.save(root)

    def runs(self, store: RunStore) -> list[Run | None]:
        """The cells' runs (None: not started or gone). The same Run objects from call to call, so a poll
        reads only what their metrics gained since (Run.metrics is incremental)."""
        cache = self.__dict__.setdefault("_run_cache", {})  # not a field: never saved
        out = []
        for c in self.cells:
            rid = c["run_id"]
            if rid and rid not in cache:
                try:
                    cache[rid] = store.get(rid)
                except (KeyError, ValueError, FileNotFoundError):
                    pass
            out.append(cache.get(rid) if rid else None)
        return out


def _row(c: Cell) -> dict:
    return {"label": c.label, "values": [list(v) for v in c.values], "seed": c.seed, "config": c.config.to_dict(),
            "run_id": None}


def cell_state(run: Run | None) -> str:
    """What a cell needs: 'done', 'resume' (interrupted with a checkpoint), 'running' or 'start'."""
    if run is None:
        return "start"
    status = run.status().get("status")
    if status in DONE:
        return "done"
    if run.resumable():
        return "resume"
    if status in ("queued", "running", "paused"):
        return "running"
    return "start"


# ----------------------------------------------------------------------------- running it here

def local_jobs() -> int:
    """Cells at a time on this machine by default: one per 2 cores (each gets 2 threads)."""
    from .jobs.queue import cores

    return max(1, cores() // 2)


def run_local(sweep: Sweep, store: RunStore, jobs: int | None = None, on_change=None, poll_s: float = 0.5,
              threads: int | None = None) -> None:
    """Run the cells that need it through the job queue, at most `jobs` at a time (each a normal worker
    process waiting for its slot, so a user's launch in the app shares the machine fairly), with `threads`
    torch threads each (default: the fair share). Calls on_change(sweep) after every poll; returns when no
    cell is left to run."""
    from .jobs.queue import THREADS_ENV

    jobs = jobs or local_jobs()
    before = os.environ.get(THREADS_ENV)
    if threads:  # the workers read it (inherited environment)
        os.environ[THREADS_ENV] = str(threads)
    try:
        _run_local(sweep, store, jobs, on_change, poll_s)
    finally:
        if before is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = before


def _run_local(sweep: Sweep, store: RunStore, jobs: int, on_change, poll_s: float) -> None:
    from .worker import start_resume, start_run

    live: dict[int, object] = {}  # cell index -> worker process
    todo = [i for i, r in enumerate(sweep.runs(store)) if cell_state(r) != "done"]
    try:
        while todo or live:
            for i, proc in list(live.items()):
                if proc.poll() is not None:
                    del live[i]
            while todo and len(live) < jobs:
                i = todo.pop(0)
                run = sweep.runs(store)[i]
                state = cell_state(run)
                if state == "resume":
                    live[i] = start_resume(run)
                elif state == "start":
                    cfg = RunConfig.from_dict(sweep.cells[i]["config"])
                    run, live[i] = start_run(replace(cfg, name=sweep.id), store.root)  # tagged: listed by sweep
                    sweep.cells[i]["run_id"] = run.id
                    sweep.save(store.root)
            if on_change:
                on_change(sweep)
            time.sleep(poll_s)
    except KeyboardInterrupt:  # stop the running cells (they keep what they learnt); a re-run resumes them
        for i in live:
            run = sweep.runs(store)[i]
            if run is not None:
                run.request("stop")
        for proc in live.values():
            proc.wait()
        raise


# ----------------------------------------------------------------------------- groups and statistics

def group_key(cfg_dict: dict) -> str:
    """Runs with the same key differ only in their seed (and name)."""
    c = canonical(RunConfig.from_dict(cfg_dict))
    c.pop("train.seed")
    return json.dumps(c, sort_keys=True)


def groups(runs: list[Run], metric: str = "test_full_sq_err") -> list[dict]:
    """Completed runs grouped by config minus seed: n, mean, sd (ddof 1), min, max of `metric` and the values
    by seed, in the order the groups first appear."""
    out: dict[str, dict] = {}
    for run in runs:
        summary = run.summary() or {}
        v = summary.get(metric)
        if summary.get("status") != "completed" or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        try:
            key, seed = group_key(run.config_dict()), run.config.train.seed
        except (Unreadable, ValueError, KeyError, TypeError, AttributeError):  # a damaged config: in no group
            continue
        g = out.setdefault(key, {"key": key, "runs": [], "by_seed": {}})
        g["runs"].append(run.id)
        g["by_seed"][seed] = float(v)
    for g in out.values():
        vals = np.array(list(g["by_seed"].values()))
        g.update(n=len(vals), mean=float(vals.mean()), sd=float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                 min=float(vals.min()), max=float(vals.max()))
    return list(out.values())


def paired(a: dict, b: dict) -> dict:
    """Group a − group b over the seeds both have: mean difference, its 95 % t-interval and a verdict."""
    from .payoff.stats import NO_DIFFERENCE, t_interval

    seeds = sorted(set(a["by_seed"]) & set(b["by_seed"]))
    d = np.array([a["by_seed"][s] - b["by_seed"][s] for s in seeds])
    if not len(d):
        return {"n": 0, "diff_mean": None, "ci_low": None, "ci_high": None, "verdict": "no common seeds"}
    low, high = t_interval(d)
    verdict = ("one seed: no interval" if low is None else NO_DIFFERENCE if low <= 0 <= high
               else "lower" if high < 0 else "higher")
    return {"n": len(d), "diff_mean": float(d.mean()), "ci_low": low, "ci_high": high, "verdict": verdict}


def label_of(group: dict, cells: list[dict]) -> str:
    """A group's name in a sweep: its cells' grid values."""
    for c in cells:
        if c.get("run_id") in group["runs"]:
            return c["label"]
    return group["key"][:40]


def planned_epochs(cfg: RunConfig) -> int:
    t = cfg.train
    return t.epochs * len(cfg.model.layers) + t.finetune_epochs if t.strategy == "greedy" else t.epochs


def report(sweep: Sweep, store: RunStore, metric: str = "test_full_sq_err", runs: list | None = None) -> str:
    """The groups (mean ± sd over seeds) and each group's paired difference with the first one (runs: the
    cells' runs when the caller holds them already)."""
    runs = [r for r in (sweep.runs(store) if runs is None else runs) if r is not None]
    gs = groups(runs, metric)
    if not gs:
        return "no completed cells yet"
    names = [label_of(g, sweep.cells) for g in gs]
    width = max(len(n) for n in names)
    lines = [f"{metric} (test split), mean ± sd over seeds:"]
    lines += [f"  {n:<{width}}  {g['mean']:.4g} ± {g['sd']:.2g}  (n={g['n']}, min {g['min']:.4g}, max {g['max']:.4g})"
              for n, g in zip(names, gs)]
    for n, g in zip(names[1:], gs[1:]):
        p = paired(g, gs[0])
        ci = "" if p["ci_low"] is None else f" [{p['ci_low']:+.3g}, {p['ci_high']:+.3g}]"
        diff = "-" if p["diff_mean"] is None else f"{p['diff_mean']:+.3g}"
        lines.append(f"  {n} − {names[0]}: {diff}{ci} over {p['n']} paired seeds: {p['verdict']}")
    return "\n".join(lines)


def band(curves: list[tuple[list, list]]) -> dict:
    """Seeds' curves (x, y) as one: per point index (up to the shortest curve), the mean x and the mean,
    sd (ddof 1), min and max of y. The seeds of one config share their x (epochs, compute) point by point."""
    n = min((len(x) for x, _ in curves), default=0)
    if not n:
        return {"x": [], "mean": [], "sd": [], "min": [], "max": [], "n": len(curves)}
    xs = np.array([x[:n] for x, _ in curves], dtype=float)
    ys = np.array([y[:n] for _, y in curves], dtype=float)
    sd = ys.std(0, ddof=1) if len(ys) > 1 else np.zeros(n)
    return {"x": xs.mean(0).tolist(), "mean": ys.mean(0).tolist(), "sd": sd.tolist(), "min": ys.min(0).tolist(),
            "max": ys.max(0).tolist(), "n": len(curves)}


def sweeps(store: RunStore) -> list[Sweep]:
    """The store's sweep records, newest first (unreadable ones left out)."""
    out = []
    for path in (store.root / SWEEPS_DIR).glob("*.json"):
        try:
            out.append(Sweep.load(store.root, path.stem))
        except KeyError:
            continue
    return sorted(out, key=lambda s: -s.created)
