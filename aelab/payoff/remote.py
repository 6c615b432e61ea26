"""The payoff grid on Ray: one task per label draw (a budget and a repeat: every method on the same labels).

No shared filesystem is assumed, as for sweep cells (aelab.sweep_ray). The caller ships each autoencoder run's
three small files (config, status with the input shape, weights) once through Ray's object store; a task writes
them into a scratch store on its node, loads the dataset there by its config (the bundled or installed data, as a
local worker does) and returns its rows. The caller puts the rows back in the order of a local run, so the result
is the one `run_payoff` gives (the `seconds` of each cell aside).
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from ..runs import Run
from .classifiers import TrainingRule
from .grid import Features, PayoffConfig, draws, finish, load_payoff_data, one_thread, plan, run_draw

SHIPPED = ("config.json", "status.json", "weights.safetensors")  # what Run.load_model reads


def pack(run: Run) -> dict:
    return {"id": run.id, "files": {name: (run.dir / name).read_bytes() for name in SHIPPED}}


def draw_task(packed: list[dict], cfg: dict, rule: dict, budget: int, rep: int) -> list[dict]:
    """On a node: the runs into a scratch store, then every method on the draw (one torch thread, as locally)."""
    scratch = Path(tempfile.mkdtemp(prefix="aelab-payoff-"))
    try:
        for p in packed:
            (scratch / p["id"]).mkdir()
            for name, data in p["files"].items():
                (scratch / p["id"] / name).write_bytes(data)
        runs = [Run(scratch / p["id"]) for p in packed]
        c = PayoffConfig(**{**cfg, "runs": tuple(str(r.dir) for r in runs), "budgets": tuple(cfg["budgets"])})
        data = load_payoff_data(runs)
        with one_thread():
            return run_draw(c, runs, data, Features(data, runs), budget, rep, TrainingRule(**rule))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_payoff_ray(cfg: PayoffConfig, out_dir: Path | None, progress=lambda done, total, msg: None,
                   rule: TrainingRule | None = None, address: str | None = None) -> dict:
    """The grid of `run_payoff`, each label draw a Ray task asking for one CPU."""
    from ..sweep_ray import connect

    ray = connect(address)
    runs = [Run(r) for r in cfg.runs]
    data = load_payoff_data(runs)  # checked here first: a bad grid fails before any task starts
    rule = rule or cfg.rule()
    todo = draws(cfg, data)
    per_draw, total = len(plan(cfg)), len(plan(cfg)) * len(todo)
    packed = ray.put([pack(r) for r in runs])
    task = ray.remote(draw_task).options(num_cpus=1)
    refs = {task.remote(packed, asdict(cfg), asdict(rule), budget, rep): i for i, (budget, rep) in enumerate(todo)}
    got: dict[int, list[dict]] = {}
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        i = refs[ready[0]]
        got[i] = ray.get(ready[0])
        progress(per_draw * len(got), total, f"{got[i][0]['budget']} labels, repeat {todo[i][1] + 1} (on Ray)")
    rows = [row for i in range(len(todo)) for row in got[i]]
    return finish(cfg, rule, data, rows, out_dir)
