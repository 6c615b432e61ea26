"""Equal tuning budget: every strategy gets the same number of hyper-parameter trials, then is reported at its
best setting on the test split (the fair answer to "which strategy is better").

`python -m aelab sweep ... --tune train.lr=1e-4:1e-2:log --trials 12` runs, for each cell of the grid (e.g. each
strategy), an Optuna study (TPE, seeded) whose trials are normal runs judged on the validation split
(`val_full_sq_err` of the finished run); the best setting of each cell is then trained with `--seeds` seeds and
those runs are what the sweep reports, on the test split. The trials are recorded in the sweep record, so a
re-run replays the finished ones into the study and goes on from there.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace

from .config import RunConfig, flat_items, set_key, validate
from .runs import RunStore

OBJECTIVE = "val_full_sq_err"  # validation split: nothing is tuned on test
NOT_TUNABLE = ("train.seed", "train.strategy", "train.epochs", "train.finetune_epochs")  # compute stays equal


@dataclass(frozen=True)
class Space:
    key: str
    lo: float
    hi: float
    log: bool = False
    integer: bool = False

    def describe(self) -> str:
        return f"{self.key}={self.lo:g}:{self.hi:g}" + (":log" if self.log else "") + (":int" if self.integer else "")


def parse(items: list[str], base: RunConfig) -> list[Space]:
    """`KEY=LO:HI[:log][:int]` items -> spaces; keys that would change a strategy's compute are refused."""
    spaces = []
    for item in items:
        if "=" not in item:
            raise ValueError(f"--tune {item!r}: use KEY=LO:HI[:log], e.g. train.lr=1e-4:1e-2:log")
        key, spec = (s.strip() for s in item.split("=", 1))
        if key in NOT_TUNABLE:
            raise ValueError(f"--tune {key}: not tunable here (the seeds are --seeds; epochs and strategy set the "
                             "compute each strategy gets, which must stay equal)")
        parts = spec.split(":")
        flags = set(parts[2:])
        if len(parts) < 2 or flags - {"log", "int"}:
            raise ValueError(f"--tune {key}: use LO:HI[:log][:int], got {spec!r}")
        try:
            lo, hi = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"--tune {key}: LO and HI must be numbers, got {spec!r}") from None
        if not lo < hi or ("log" in flags and lo <= 0):
            raise ValueError(f"--tune {key}: need LO < HI (and LO > 0 on a log scale), got {spec!r}")
        current = _current(base, key)
        if isinstance(current, bool) or not isinstance(current, (int, float)):
            raise ValueError(f"--tune {key}: only numeric settings can be tuned")
        spaces.append(Space(key, lo, hi, "log" in flags, "int" in flags or isinstance(current, int)))
    return spaces


def _current(cfg: RunConfig, key: str):
    items = flat_items(cfg)
    if key not in items:
        set_key(cfg, key, 0)  # raises the usual message naming the known keys
    return items[key]


def _distributions(spaces: list[Space]) -> dict:
    from optuna.distributions import FloatDistribution, IntDistribution

    return {s.key: IntDistribution(int(s.lo), int(s.hi), log=s.log) if s.integer
            else FloatDistribution(s.lo, s.hi, log=s.log) for s in spaces}


def with_params(cfg: RunConfig, params: dict) -> RunConfig:
    for key, value in params.items():
        cfg = set_key(cfg, key, value)
    return validate(cfg)


def study(spaces: list[Space], seed: int, done: list[dict]):
    """An Optuna TPE study (seeded) holding the finished trials `done` ({params, value})."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    dists = _distributions(spaces)
    for t in done:
        value = t.get("value")
        state = optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.FAIL
        s.add_trial(optuna.trial.create_trial(params=t["params"], distributions=dists, value=value, state=state))
    return s


def outcome(run) -> float | None:
    """A finished trial's value: its final validation error, or None when it failed or diverged."""
    value = (run.summary() or {}).get(OBJECTIVE)
    ok = (run.summary() or {}).get("status") == "completed" and isinstance(value, float) and math.isfinite(value)
    return value if ok else None


def run_trial_here(cfg: RunConfig, store: RunStore, name: str) -> tuple[str, float | None]:
    """Train one trial as a normal run through the job queue; (run id, its final validation error or None)."""
    from .worker import start_run

    run, proc = start_run(replace(cfg, name=name), store.root)
    proc.wait()
    return run.id, outcome(run)


def run_trial_on(remote):
    """Trials as Ray tasks (an aelab.sweep_ray.Remote): the same runs, trained on whichever node Ray picks."""
    def train(cfg: RunConfig, store: RunStore, name: str) -> tuple[str, float | None]:
        run = remote.train(replace(cfg, name=name))
        return run.id, outcome(run)
    return train


def tune(sweep, store: RunStore, spaces: list[Space], train=run_trial_here, on_trial=None) -> dict:
    """Give every base config in sweep.tuning the same number of trials; returns {cell label: best params}.
    The cells' studies run side by side (each cell's trials one after the other, as TPE learns from the
    finished ones; the job queue or Ray decides how many train at once). The trials are kept in the record
    (saved after each), so an interrupted tuning goes on where it was."""
    trials = sweep.tuning["trials"]
    lock, stop = threading.Lock(), threading.Event()  # stop: a cell failed or was interrupted: no new trials

    def one(label: str, cell: dict) -> dict:
        done = cell["trials"]
        base = RunConfig.from_dict(cell["config"])
        st = study(spaces, base.train.seed, done)
        dists = _distributions(spaces)
        while len(done) < trials:
            if stop.is_set():
                raise KeyboardInterrupt  # another cell stopped the tuning; what is done stays recorded
            trial = st.ask(dists)
            run_id, value = train(with_params(base, trial.params), store, f"{sweep.id}-trial")
            st.tell(trial, value) if value is not None else st.tell(trial, state=_fail())
            with lock:
                done.append({"params": trial.params, "value": value, "run_id": run_id})
                sweep.save(store.root)
                if on_trial:
                    on_trial(label, len(done), trials, value)
        finished = [t for t in done if t["value"] is not None]
        if not finished:
            raise ValueError(f"cell {label}: every trial failed; see the runs named {sweep.id}-trial")
        return min(finished, key=lambda t: t["value"])["params"]

    cells = sweep.tuning["cells"]
    results: dict[str, object] = {}
    first: list[BaseException] = []  # the error that stopped the tuning (not the stops it caused)

    def run(label: str, cell: dict) -> None:
        try:
            results[label] = one(label, cell)
        except BaseException as e:  # noqa: BLE001 - raised again in the calling thread
            with lock:
                if not stop.is_set():
                    first.append(e)
                stop.set()
    # Daemon threads, not an executor: a Ctrl-C returns at once (a trial in flight goes on in its own worker
    # process and is not recorded; the next run of the command asks for a new one).
    threads = [threading.Thread(target=run, args=item, daemon=True) for item in cells.items()]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except BaseException:
        stop.set()
        raise
    if first:
        raise first[0]
    best = {label: results[label] for label in cells}
    for label, params in best.items():
        cells[label]["best"] = params
    sweep.save(store.root)
    return best


def _fail():
    import optuna

    return optuna.trial.TrialState.FAIL
