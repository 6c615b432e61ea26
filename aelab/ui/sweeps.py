"""The Sweep page's pieces: a grid over the Train page's settings, its launch as a background
`python -m aelab sweep` (the same command as in a terminal, so it outlives the page), and the cells live."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd
import streamlit as st

from .. import jobs
from .. import sweep as S
from ..config import RunConfig
from ..fsutil import pid_alive
from . import build, state, views

ROWS = 3  # grid keys offered at once
REFRESH_S = 2.0
SKIP = ("data.path", "data.data_dir", "data.label_column", "train.seed", "train.pause_after_stage", "train.device")
KEYS = [k for k in build.KNOBS if k not in SKIP]


def base_config() -> tuple[RunConfig | None, str | None]:
    """The Train page's current settings (its last valid build), or the defaults before any visit."""
    values = st.session_state.get(build.STORE) or build.widget_values(RunConfig())
    return build.check(values, st.session_state.get("_name", ""))


WHERE = {"queue": "job queue (here)", "ray": "Ray (here)", "cluster": "Ray cluster"}


@dataclass
class Plan:
    """What the form asks for, as the CLI's arguments: grid rows, seeds, cells at a time, optional tuning and
    where the cells run (None: the job queue; "local": a Ray instance started by the sweep; else a cluster)."""
    grid: list[str]
    seeds: int
    jobs: int
    tune: list[str] = field(default_factory=list)
    trials: int = 12
    ray: str | None = None

    def args(self) -> list[str]:
        out = ["--seeds", str(self.seeds)] + (["--jobs", str(self.jobs)] if self.ray is None else [])
        for g in self.grid:
            out += ["--grid", g]
        for t in self.tune:
            out += ["--tune", t, "--trials", str(self.trials)]
        return out + (["--ray"] if self.ray == "local" else ["--ray-address", self.ray] if self.ray else [])


def grid_form(base: RunConfig) -> tuple[Plan, str | None]:
    """The form; returns the plan and what is wrong with where it would run (None when nothing)."""
    grid = []
    first = ("train.strategy", "greedy,end_to_end") if base.train.strategy == "greedy" else ("train.lr", "0.001,0.003")
    for i in range(ROWS):
        a, b = st.columns([2, 3])
        shown = "visible" if i == 0 else "collapsed"  # one heading over the rows
        key = a.selectbox("setting", [""] + KEYS, key=f"sweep.key{i}", index=KEYS.index(first[0]) + 1 if i == 0
                          else 0, format_func=lambda k: "(none)" if not k else f"{build.label(k)} ({k})",
                          label_visibility=shown)
        vals = b.text_input("values", key=f"sweep.values{i}", value=first[1] if i == 0 else "",
                            placeholder="comma-separated (layer lists: 64,16/128,32)", disabled=not key,
                            label_visibility=shown)
        if key and vals.strip():
            grid.append(f"{key}={vals.strip()}")
    where = st.radio("run the cells on", list(WHERE), format_func=WHERE.get, horizontal=True, key="sweep.where",
                     help="the job queue shares this machine fairly with what you launch on the Train page; on Ray "
                          "each cell is a Ray task asking for its CPUs (a cluster needs no shared filesystem: "
                          "each cell's folder streams back here while it trains)")
    ray, why = {"queue": None, "ray": "local"}.get(where), None
    a, b = st.columns(2)
    seeds = a.number_input("seeds per cell", 1, 20, 3, key="sweep.seeds",
                           help="runs that differ only in seed form a group: mean ± sd, paired differences")
    if where == "cluster":
        ray = b.text_input("Ray address", key="sweep.ray_address", placeholder="ray://head:10001",
                           help="the address `ray start --head` printed, or ray://HOST:10001").strip()
        if not ray:
            why = "Ray address: give the cluster's address (e.g. ray://head:10001), or run the cells here"
    n_jobs = b.number_input("cells at a time", 1, jobs.max_jobs(), S.local_jobs(), key="sweep.jobs",
                            help="one per 2 cores by default: each gets 2 threads"
                            ) if where == "queue" else S.local_jobs()  # on Ray, Ray decides by the CPUs it has
    tune, trials = [], 12
    with st.expander("equal tuning budget (optional)"):
        c, d = st.columns([3, 1])
        spec = c.text_input("tune", key="sweep.tune", placeholder="e.g. train.lr=1e-4:1e-2:log",
                            help="every cell gets the same number of Optuna trials on the validation split, then "
                                 "its seeds run at its best setting")
        trials = d.number_input("trials", 1, 100, 12, key="sweep.trials")
        if spec.strip():
            tune = [spec.strip()]
    return Plan(grid, int(seeds), int(n_jobs), tune, int(trials), ray), why


def preview(base: RunConfig, plan: Plan):
    """(cells, their sweep id, None) once the grid expands, or (None, None, the reason it does not)."""
    from .. import tune as T

    try:
        spaces = T.parse(plan.tune, base)
        cells = S.expand(base, S.parse_grid(plan.grid), 1 if spaces else plan.seeds, build.data_facts(base)["shape"])
    except (ValueError, FileNotFoundError) as e:
        return None, None, str(e)
    extra = json.dumps(([s.describe() for s in spaces], plan.trials)) if spaces else ""
    return cells, S.sweep_id(cells, extra), None


def launch(base: RunConfig, sweep_id: str, plan: Plan) -> None:
    """Start `python -m aelab sweep` in its own session: it outlives the page, and asking again resumes it."""
    folder = state.runs_dir() / S.SWEEPS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{sweep_id}.base.json").write_text(json.dumps(base.to_dict()))
    args = ["sweep", "--config", str(folder / f"{sweep_id}.base.json"), "--runs-dir", str(state.runs_dir())]
    proc = spawn_sweep(args + plan.args(), folder / f"{sweep_id}.log")
    (folder / f"{sweep_id}.pid").write_text(str(proc.pid))


def spawn_sweep(args: list[str], log):
    return jobs.spawn("aelab", *args, log=log, env=state.WORKER_ENV)  # its cells leave the page a core


def driver_alive(sweep_id: str) -> bool:
    try:
        return pid_alive(int((state.runs_dir() / S.SWEEPS_DIR / f"{sweep_id}.pid").read_text()))
    except (OSError, ValueError):
        return False


def cells_table(sweep: S.Sweep, runs: list) -> tuple[pd.DataFrame, float]:
    """One row per cell (status, epochs, test error, run id) and the share of planned epochs done."""
    rows, done, total = [], 0, 0
    for cell, run in zip(sweep.cells, runs):
        planned = S.planned_epochs(RunConfig.from_dict(cell["config"]))
        status = run.status().get("status") if run is not None else "waiting"
        epochs = planned if status == "completed" else len(run.epochs()) if run is not None else 0
        done, total = done + epochs, total + planned
        err = (run.summary() or {}).get("test_full_sq_err") if status == "completed" else None
        rows.append({"cell": cell["label"], "seed": cell["seed"], "status": status, "epochs": f"{epochs}/{planned}",
                     "test sq. err": err,
                     "run": f"Inspect?run={run.id}" if run is not None else None})
    return pd.DataFrame(rows), (done / total if total else 0.0)


def panel(sweep_id: str) -> None:
    """The sweep's progress and cells, redrawn every REFRESH_S while it runs; the groups once it is done."""
    @st.fragment(run_every=REFRESH_S if driver_alive(sweep_id) else None)
    def draw():
        try:
            sweep = S.Sweep.load(state.runs_dir(), sweep_id)
        except KeyError:
            st.info("The sweep is starting…")
            return
        alive = driver_alive(sweep_id)
        if sweep.tuning and not sweep.cells:
            n = sweep.tuning["trials"] * len(sweep.tuning["cells"])
            k = sum(len(c["trials"]) for c in sweep.tuning["cells"].values())
            st.progress(k / n if n else 0.0, text=f"tuning: trial {k} of {n}")
            return
        runs = [state.get_run(c["run_id"]) for c in sweep.cells]  # kept across reruns: metrics read incrementally
        df, share = cells_table(sweep, runs)
        st.progress(share, text=f"{sweep.id}: {share:.0%} of the planned epochs"
                    + ("" if alive or share == 1 else " (not running: Run sweep again to go on)"))
        st.dataframe(df, hide_index=True, key="sweep_cells", height=min(35 * (len(df) + 1) + 3, 420),
                     column_config={"run": st.column_config.LinkColumn("run", display_text="inspect"),
                                    "test sq. err": st.column_config.NumberColumn(
                                        format="%.3f", help="the full network's squared error per test image")})
        if any(df["status"] == "completed"):
            lines = S.report(sweep, state.store(), runs=runs).splitlines()
            st.markdown(f"**{lines[0]}**\n" + "\n".join(f"- {line.strip()}" for line in lines[1:]))
            st.page_link(views.COMPARE_PAGE, label="Open in Compare (seed groups with error bands)",
                         query_params={"sweep": sweep.id}, icon=":material/compare_arrows:")
    draw()
