"""The example runs a fresh install offers: one finished run per preset and one greedy-vs-end-to-end race.

They are ordinary runs in the run store (config.json, metrics, snapshots, weights), trained one after
another by the normal worker at the lowest queue priority (BACKGROUND: any run a person launches
goes first, and an example run gives the cores back while one trains). `examples/manifest.json` in the store
names the runs of each example, so a second start finds them and builds only what is missing: an example
whose runs are gone or ended without completing is built again (its own unfinished runs are removed).

    statuses(root)               where each example stands (reads files only: no torch; Home calls it)
    build(root, only, overrides) build what is missing here and now (`python -m aelab examples`)
    python -m aelab.examples RUNS_DIR   the same as a background job (the app starts it when some are missing)

Not here: training (aelab/worker.py), races (aelab/race.py), the Home section (aelab/ui/examples.py).
"""
from __future__ import annotations

import fcntl
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import jobs, race
from .config import RunConfig, validate
from .fsutil import atomic_write_json, read_json
from .jobs.queue import BACKGROUND
from .presets import PRESETS, get_preset
from .runs import LIVE, Run

FOLDER = "examples"  # in the run store: the manifest, the build's job record, lock and log
RACE = "race"
RACE_PRESET = "stacked-denoising"  # the deeper, noisier net: greedy leads clearly at equal compute (README)
# What Compare shows each example beside: the one experiment it differs from in one idea.
VERSUS = {"keras-simple": "linear-pca", "keras-deep": "keras-simple", "tied-stacked": "keras-deep",
          "stacked-denoising": "denoising-gaussian", "denoising-gaussian": "stacked-denoising",
          "sparse-kl": "contractive", "contractive": "sparse-kl", "linear-pca": "keras-simple",
          "conv": "keras-deep", "hinton-2006": "tied-stacked"}


@dataclass(frozen=True)
class Example:
    name: str  # the preset's name, or RACE
    title: str
    preset: str
    race: str | None = None  # a race kind (aelab/race.py): the example is that race of the preset
    versus: str | None = None  # the example Compare shows beside this one (a race: its own two arms)

    def config(self, overrides: dict | None = None) -> RunConfig:
        """The preset's config as it is (nobody clicks between stages), then `overrides` (tests shrink it)."""
        cfg = get_preset(self.preset).config().with_overrides({"train.pause_after_stage": False})
        return validate(cfg.with_overrides(overrides or {}))


EXAMPLES: dict[str, Example] = {
    **{p.name: Example(p.name, p.title, p.name, versus=VERSUS.get(p.name, "keras-deep")) for p in PRESETS.values()},
    RACE: Example(RACE, f"Race: greedy vs end-to-end ({RACE_PRESET}, equal compute)", RACE_PRESET, race="strategy")}


@dataclass(frozen=True)
class State:
    example: Example
    state: str  # done, building (queued or training), missing, failed (its runs ended without completing)
    run_ids: tuple[str, ...] = ()
    race_id: str | None = None
    fraction: float = 0.0  # of its planned epochs trained
    message: str = ""  # what its runs say (why one waits, why one failed)


def folder(root: str | os.PathLike) -> Path:
    return Path(root) / FOLDER


def manifest(root: str | os.PathLike) -> dict:
    """{example name: {"runs": [run ids], "race": race id or None, "overrides": {...}}}; {} when absent."""
    return read_json(folder(root) / "manifest.json", {})


def example_run_ids(root: str | os.PathLike) -> set[str]:
    return {i for entry in manifest(root).values() for i in entry.get("runs", [])}


def _state(root: Path, ex: Example, entry: dict | None) -> State:
    if not entry or not entry.get("runs") or not all((root / i / "config.json").exists() for i in entry["runs"]):
        return State(ex, "missing")
    runs = [Run(root / i) for i in entry["runs"]]
    sts = [r.status() for r in runs]
    done = [min(1.0, (s.get("epoch") or 0) / s["epochs_total"]) if s.get("epochs_total") else 0.0 for s in sts]
    kind = ("done" if all(s["status"] == "completed" for s in sts) else
            "building" if any(s["status"] in LIVE for s in sts) else "failed")
    message = next((s.get("message") for s in sts if s.get("message") and s["status"] != "completed"), "")
    return State(ex, kind, tuple(entry["runs"]), entry.get("race"), 1.0 if kind == "done" else sum(done) / len(done),
                 message)


def statuses(root: str | os.PathLike) -> list[State]:
    """Each example's state, in the order they are built."""
    m = manifest(root)
    return [_state(Path(root), ex, m.get(name)) for name, ex in EXAMPLES.items()]


def complete(root: str | os.PathLike) -> bool:
    return all(s.state == "done" for s in statuses(root))


def building(root: str | os.PathLike) -> bool:
    """A build (the app's background job or the CLI) is going on now."""
    return jobs.state(folder(root)) in ("queued", "running")


def pick(only: list[str] | None) -> list[Example]:
    """The examples named (all when None); ValueError naming an unknown one."""
    if only is None:
        return list(EXAMPLES.values())
    unknown = [n for n in only if n not in EXAMPLES]
    if unknown:
        raise ValueError(f"--only: unknown example {', '.join(unknown)} (known: {', '.join(EXAMPLES)})")
    return [EXAMPLES[n] for n in EXAMPLES if n in only]


def _launch(root: Path, ex: Example, overrides: dict) -> list:
    """Start the example's run(s) at background priority and record them; returns the worker processes."""
    from .worker import start_group

    cfg = ex.config(overrides)
    if ex.race:
        from .data import load_data  # torch: only in the build's own process

        pairs = race.arms(cfg, ex.race, load_data(cfg.data).input_shape)
        launched = start_group([c for _, c in pairs], root, BACKGROUND)
        race_id = race.save(root, ex.race, [label for label, _ in pairs], [r.id for r, _ in launched]).id
    else:
        launched, race_id = start_group([cfg], root, BACKGROUND), None
    m = manifest(root)
    m[ex.name] = {"runs": [r.id for r, _ in launched], "race": race_id, "overrides": overrides}
    atomic_write_json(folder(root) / "manifest.json", m)
    return [p for _, p in launched]


def _discard(root: Path, st: State) -> None:
    """Remove an example's unfinished runs (and race record) before it is built again in their place."""
    for i in st.run_ids:
        shutil.rmtree(root / i, ignore_errors=True)
    if st.race_id:
        (root / race.RACES_DIR / f"{st.race_id}.json").unlink(missing_ok=True)


def _lock(root: Path, wait: bool, tick, poll_s: float):
    """The build lock (one build per store at a time), or None when another build holds it and wait is False;
    while waiting, tick(statuses) keeps a caller's progress moving with the other build's."""
    f = open(folder(root) / "build.lock", "a")
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            if not wait:
                f.close()
                return None
        tick(statuses(root))
        time.sleep(poll_s)


def build(root: str | os.PathLike, only: list[str] | None = None, overrides: dict | None = None,
          tick=lambda states: None, wait: bool = True, poll_s: float = 0.5) -> list[State] | None:
    """Build the missing examples (of `only`, or all), one after another, the race's two runs together;
    tick(statuses) after every poll. Examples already done are left alone; one that is building (a build
    before this one was cut short) is waited for. Returns the final states, or None when wait is False and
    another build is going on."""
    root = Path(root)
    folder(root).mkdir(parents=True, exist_ok=True)
    lock = _lock(root, wait, tick, poll_s)
    if lock is None:
        return None
    with lock, jobs.Job(folder(root), "examples"):
        for ex in pick(only):
            st = next(s for s in statuses(root) if s.example == ex)
            if st.state in ("missing", "failed"):
                _discard(root, st)
                procs = _launch(root, ex, overrides or {})
            else:
                procs = []
            while any(p.poll() is None for p in procs) or \
                    next(s for s in statuses(root) if s.example == ex).state == "building":
                tick(statuses(root))
                time.sleep(poll_s)
    states = statuses(root)
    tick(states)
    return states


def start_background(root: str | os.PathLike):
    """Start `python -m aelab.examples ROOT` as a service of this process (it ends with the app; what it left
    unbuilt is built at the next start) unless every example is done or a build is going on. The Popen or None."""
    if complete(root) or building(root):
        return None
    folder(root).mkdir(parents=True, exist_ok=True)
    return jobs.spawn("aelab.examples", str(root), log=folder(root) / "build.log", service=True)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m aelab.examples RUNS_DIR", file=sys.stderr)
        return 2
    os.nice(10)  # its runs are background jobs already; the build's own polling stays out of the way too
    states = build(argv[0], wait=False)
    return 0 if states is None or all(s.state == "done" for s in states) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
