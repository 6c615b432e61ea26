"""`python -m aelab ...`: the headless face of the lab (presets, train, resume, runs, examples, pca, payoff,
sweep, export).

Each command builds a config, calls the library and prints; training goes through the same worker
process the app uses.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .config import RunConfig, validate
from .presets import PRESETS, get_preset


def _build_config(args) -> RunConfig:
    cfg = get_preset(args.preset).config() if args.preset else RunConfig()
    if args.config:
        try:
            d = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"--config: cannot read {args.config}: {e}") from None
        base = cfg.to_dict()
        for section, values in d.items():
            if isinstance(values, dict) and isinstance(base.get(section), dict):
                base[section].update(values)
            else:
                base[section] = values
        cfg = RunConfig.from_dict(base)
    return validate(cfg.with_overrides(_overrides(args.set)))


def _overrides(items: list[str] | None) -> dict:
    """--set KEY=VALUE items as a dict of dotted overrides."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: use KEY=VALUE, e.g. model.layers=128,64,32")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def cmd_presets(args) -> int:
    width = max(map(len, PRESETS))
    for p in PRESETS.values():
        print(f"{p.name:<{width}}  {p.idea}")
    return 0


def cmd_train(args) -> int:
    from .worker import start_run

    if args.resume:
        if args.preset or args.config or args.set:
            raise ValueError("--resume: a resumed run keeps its own config; drop --preset/--config/--set")
        return cmd_resume(argparse.Namespace(run_dir=args.resume))
    cfg = _build_config(args)
    run, proc = start_run(cfg, args.runs_dir)
    return _follow(run, proc, cfg.name or "train")


def cmd_resume(args) -> int:
    """Continue an interrupted run from its checkpoint, in its own folder."""
    from .runs import Run
    from .worker import start_resume

    run = Run(args.run_dir)
    if not (run.dir / "config.json").exists():
        raise ValueError(f"RUN_DIR: {args.run_dir} is not a run folder")
    return _follow(run, start_resume(run), run.config.name or "resume")


def _follow(run, proc, desc: str) -> int:
    """A progress bar until the worker ends (Ctrl-C asks it to stop); prints the outcome and the folder."""
    from tqdm import tqdm

    bar = tqdm(total=None, unit="epoch", desc=desc, file=sys.stderr, dynamic_ncols=True)
    try:
        while proc.poll() is None:
            _update_bar(bar, run)
            time.sleep(0.2)
    except KeyboardInterrupt:  # the worker runs in its own session: ask it to stop (or leave the queue)
        run.request("stop")
        proc.wait()
    _update_bar(bar, run)
    bar.close()
    summary = run.summary() or run.status()
    status = summary.get("status", "failed")
    line = f"status={status}"
    for key in ("test_full_sq_err", "val_full_sq_err", "val_full_loss", "linear_probe_accuracy", "params",
                "gflop", "seconds"):
        if summary.get(key) is not None:
            v = summary[key]
            line += f" {key}={v:.4g}" if isinstance(v, float) else f" {key}={v}"
    print(line, file=sys.stderr)
    if summary.get("message"):
        print(summary["message"], file=sys.stderr)
    print(run.dir)
    return 0 if status in ("completed", "stopped") else 1


def _update_bar(bar, run) -> None:
    from . import jobs

    st = run.status()
    pos = (jobs.read(run.dir) or {}).get("position") if st.get("status") == "queued" else None
    if pos:
        bar.set_postfix_str(f"{jobs.ordinal(pos)} in queue")
    if st.get("epochs_total") and bar.total != st["epochs_total"]:
        bar.total = st["epochs_total"]
    epochs = run.epochs()
    if epochs:
        last = epochs[-1]
        bar.n = last["epoch"]
        err = last.get("val_full_sq_err")
        bar.set_postfix_str(f"{last['stage_name']} val_full_sq_err={'-' if err is None else f'{err:.2f}'}",
                            refresh=False)
        bar.refresh()


def _num(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def cmd_runs(args) -> int:
    from .runs import RunStore

    for run in RunStore(args.runs_dir).list():
        row = run.listing()  # never raises: a damaged run is listed with the reason, the rest go on
        print(f"{run.id}  {row['status']:<11} {row['strategy'] or '':<10} "
              f"test_full_sq_err={_num(row['test_full_sq_err'])}  {run.dir}"
              + (f"  damage: {row['damage']}" if row["damage"] else ""))
    return 0


def cmd_examples(args) -> int:
    """Build the example runs that are missing (one per preset and a greedy-vs-end-to-end race) here, with a
    progress bar; prints one line per example and its run folder(s). Finished examples are kept as they are."""
    from tqdm import tqdm

    from . import examples

    only = [n for n in args.only.split(",") if n] if args.only else None
    picked = examples.pick(only)
    bar = tqdm(total=len(picked), unit="example", desc="examples", file=sys.stderr, dynamic_ncols=True)

    def tick(states):
        mine = [s for s in states if s.example in picked]
        bar.update(sum(s.state == "done" for s in mine) - bar.n)
        now = next((s for s in mine if s.state == "building"), None)
        text = f"{now.example.name} {now.fraction:.0%}" if now else ""
        if text != bar.postfix:
            bar.set_postfix_str(text)
    states = examples.build(args.runs_dir, only, _overrides(args.set), tick=tick)
    bar.close()
    for s in states:
        if s.example in picked:
            print(f"{s.example.name:<18} {s.state:<8} " + " ".join(str(Path(args.runs_dir) / i) for i in s.run_ids)
                  + (f"  ({s.message})" if s.state != "done" and s.message else ""))
    return 0 if all(s.state == "done" for s in states if s.example in picked) else 1


def cmd_pca(args) -> int:
    from .data import load_data
    from .evaluate import pca_baseline

    cfg = validate(RunConfig().with_overrides(_overrides(args.set)))
    print(json.dumps(pca_baseline(load_data(cfg.data), args.k)))
    return 0


def cmd_payoff(args) -> int:
    from .payoff import PayoffConfig, run_payoff_cli

    budgets = tuple(int(b) if b != "all" else 0 for b in args.budgets.split(",")) if args.budgets else None
    runs = [r for r in args.runs.split(",") if r]
    cfg = PayoffConfig.make(runs=runs, budgets=budgets, repeats=args.repeats, max_steps=args.max_steps,
                            patience=args.patience, lsuv=args.lsuv)
    # results live in the runs' own store; --ray: each label draw a task of a local Ray instance or a cluster
    ray = (args.ray_address or "local") if _on_ray(args) else None
    return run_payoff_cli(cfg, Path(runs[0]).parent, ray=ray)


def _on_ray(args) -> bool:
    """--ray (a local Ray instance started here) or --ray-address ADDR (an existing cluster)."""
    return bool(args.ray or args.ray_address)


def cmd_sweep(args) -> int:
    """A grid of settings x seeds, every cell a normal run; prints the groups and the sweep record last."""
    from tqdm import tqdm

    from . import sweep as S
    from . import tune as T
    from .runs import RunStore

    base = _build_config(args)
    grid = S.parse_grid(args.grid or [])
    shape = None
    if grid.get("train.strategy") and base.train.strategy == "greedy":  # equal-compute end-to-end cells
        from .data import load_data

        shape = load_data(base.data).input_shape
    store = RunStore(args.runs_dir)
    spaces = T.parse(args.tune or [], base)
    if spaces:  # equal tuning budget: every cell gets --trials trials on validation, then --seeds runs at its best
        if args.trials < 1:
            raise ValueError(f"--trials: give at least 1, got {args.trials}")
        cells = S.expand(base, grid, 1, shape)
        sweep = S.Sweep.open(store.root, grid, args.seeds, cells, ([s.describe() for s in spaces], args.trials))
        if not sweep.cells:
            _tune(sweep, store, spaces, args)
    else:
        if args.trials != 12:
            raise ValueError("--trials: only with --tune KEY=LO:HI")
        sweep = S.Sweep.open(store.root, grid, args.seeds, S.expand(base, grid, args.seeds, shape))
    cells = sweep.cells
    planned = [S.planned_epochs(RunConfig.from_dict(c["config"])) for c in sweep.cells]
    bar = tqdm(total=sum(planned), unit="epoch", desc=sweep.id, file=sys.stderr, dynamic_ncols=True)
    said: dict[int, str] = {}

    def show(sw) -> None:
        done = 0
        for i, (run, cell) in enumerate(zip(sw.runs(store), sw.cells)):
            status = run.status().get("status") if run is not None else "waiting"
            done += planned[i] if status == "completed" else len(run.epochs()) if run is not None else 0
            if said.get(i) != status and status != "waiting":
                said[i] = status
                err = (run.summary() or {}).get("test_full_sq_err") if status == "completed" else None
                bar.write(f"cell {i + 1}/{len(sw.cells)} [{cell['label']} | seed {cell['seed']}] {status}"
                          + (f"  test_full_sq_err={err:.4g}" if isinstance(err, float) else "")
                          + (f"  {run.id}" if run is not None else ""), file=sys.stderr)
        bar.n = done
        bar.refresh()

    todo = sum(S.cell_state(r) != "done" for r in sweep.runs(store))
    where = "on Ray" if _on_ray(args) else f"{args.jobs or S.local_jobs()} at a time"
    bar.write(f"{sweep.id}: {len(cells)} cells ({todo} to run, {where})", file=sys.stderr)
    try:
        if _on_ray(args):  # Ray tasks: a local instance, or a cluster without a shared filesystem
            from .sweep_ray import run_ray

            run_ray(sweep, store, address=args.ray_address, threads=args.threads or 2, on_change=show)
        else:
            S.run_local(sweep, store, jobs=args.jobs, on_change=show, threads=args.threads)
    except KeyboardInterrupt:
        bar.close()
        print(f"stopped; run the same command again to resume. {S.Sweep.path(store.root, sweep.id)}",
              file=sys.stderr)
        return 130
    show(sweep)
    bar.close()
    print(S.report(sweep, store), file=sys.stderr)
    print(S.Sweep.path(store.root, sweep.id))
    return 0 if all(S.cell_state(r) == "done" for r in sweep.runs(store)) else 1


def _tune(sweep, store, spaces, args) -> None:
    """The tuning phase of a sweep: a bar over all trials, a line per trial, the best setting per cell."""
    from tqdm import tqdm

    from . import tune as T

    total = sweep.tuning["trials"] * len(sweep.tuning["cells"])
    done = sum(len(c["trials"]) for c in sweep.tuning["cells"].values())
    bar = tqdm(total=total, initial=done, unit="trial", desc=f"{sweep.id} tuning", file=sys.stderr,
               dynamic_ncols=True)

    def said(label: str, k: int, n: int, value) -> None:
        bar.update(1)
        bar.write(f"[{label}] trial {k}/{n}: {T.OBJECTIVE}=" + ("failed" if value is None else f"{value:.4g}"),
                  file=sys.stderr)
    remote = None
    if _on_ray(args):  # each trial a Ray task; the cells' studies side by side, as locally
        from .sweep_ray import Remote

        remote = Remote(store, args.ray_address, threads=args.threads or 2)
    try:
        best = T.tune(sweep, store, spaces, on_trial=said, train=T.run_trial_on(remote) if remote else T.run_trial_here)
    finally:
        if remote:
            remote.close()
    bar.close()
    for label, params in best.items():
        print(f"[{label}] best on validation: " + ", ".join(f"{k}={v:.4g}" for k, v in params.items()),
              file=sys.stderr)
    sweep.settle(store.root, best)


def cmd_export(args) -> int:
    """A saved run taken elsewhere: slides (GIF / MP4 replay, PNG), code (script, notebook), trackers."""
    from . import export, tracking
    from .runs import Run

    wanted = {k: getattr(args, k) for k in ("gif", "mp4", "png", "script", "notebook", "tensorboard", "mlflow")}
    if all(v is None for v in wanted.values()):
        raise ValueError("export: say what to write: --gif OUT.gif, --mp4 OUT.mp4, --png OUT.png, --script OUT.py, "
                         "--notebook OUT.ipynb, --tensorboard DIR and/or --mlflow [TRACKING_URI]")
    if Path(args.run_dir).suffix == ".json":  # a race record: its replay, both arms at equal compute
        if others := [k for k, v in wanted.items() if v is not None and k not in ("gif", "mp4", "png")]:
            raise ValueError(f"export: --{others[0]} takes one run folder; a race (a .json record) exports as "
                             "--gif, --mp4 or --png")
        run = export.RaceReplay.load(args.run_dir)
    elif (Path(args.run_dir) / "config.json").exists():
        run = Run(args.run_dir)
    else:
        raise ValueError(f"export: {args.run_dir} is not a run folder (no config.json) nor a race record "
                         "(runs/races/ID.json)")
    n = export.frame_count(run)
    writers = {"gif": lambda p: export.gif(run, p, fps=args.fps), "mp4": lambda p: export.mp4(run, p, fps=args.fps),
               "png": lambda p: export.png(run, p), "script": lambda p: _write_code(run, p, "script"),
               "notebook": lambda p: _write_code(run, p, "notebook"),
               "tensorboard": lambda p: f"{tracking.to_tensorboard(run, p)}  (tensorboard --logdir {p})",
               "mlflow": lambda uri: f"MLflow run {tracking.to_mlflow(run, uri or None)}"}
    for kind, path in wanted.items():
        if path is not None:
            said = writers[kind](path)
            print(said if kind in ("tensorboard", "mlflow") else f"{path}  ({n} frames)" if kind in ("gif", "mp4")
                  else path)
    return 0


def _write_code(run, path: str, fmt: str) -> None:
    from .codegen import for_run

    Path(path).write_text(for_run(run, fmt))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m aelab", description="aelab: an autoencoder lab (headless)")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("presets", help="list preset names with one line each").set_defaults(fn=cmd_presets)
    t = sub.add_parser("train", help="train a preset/config to the end; prints the run folder last")
    t.add_argument("--preset", help="start from this preset (see `presets`)")
    t.add_argument("--config", help="JSON file with config sections to apply on top")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="dotted override, e.g. train.epochs=5")
    t.add_argument("--runs-dir", default="runs")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue this interrupted run instead (same as `resume`)")
    t.set_defaults(fn=cmd_train)
    u = sub.add_parser("resume", help="continue an interrupted run from its last checkpoint, in its folder")
    u.add_argument("run_dir", metavar="RUN_DIR")
    u.set_defaults(fn=cmd_resume)
    r = sub.add_parser("runs", help="list runs in the run store")
    r.add_argument("--runs-dir", default="runs")
    r.set_defaults(fn=cmd_runs)
    e = sub.add_parser("examples", help="build the example runs (every preset + a race) that are missing")
    e.add_argument("--runs-dir", default="runs")
    e.add_argument("--only", metavar="NAME,...", help="just these examples (preset names, or 'race')")
    e.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="dotted override for every example built now, e.g. train.epochs=1 (a quick smoke test)")
    e.set_defaults(fn=cmd_examples)
    p = sub.add_parser("pca", help="PCA baseline: validation squared error per image with K components")
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="e.g. data.name=digits")
    p.set_defaults(fn=cmd_pca)
    q = sub.add_parser("payoff", help="does pretraining pay off with few labels? (accuracy vs labels)")
    q.add_argument("--runs", required=True, help="RUN_DIR[,RUN_DIR...] of trained autoencoders")
    q.add_argument("--budgets", help="labels per budget, comma list; 'all' = the whole train split")
    q.add_argument("--repeats", type=int, default=3)
    q.add_argument("--max-steps", "--steps", dest="max_steps", type=int, default=6000,
                   help="step budget of the networks: at most max_steps/30 epochs of the labelled set, between "
                        "max_steps/10 and max_steps steps, less when the training loss plateaus (--steps: old name)")
    q.add_argument("--patience", type=int, default=5,
                   help="plateau checks (one epoch each) without a 1 %% fall of the training loss before the "
                        "learning rate drops or training stops")
    q.add_argument("--lsuv", action="store_true", help="also run scratch + BN with LSUV init")
    q.add_argument("--ray", action="store_true", help="run each label draw as a task of a local Ray instance")
    q.add_argument("--ray-address", metavar="ADDR", help="run the label draws on this Ray cluster")
    q.set_defaults(fn=cmd_payoff)
    w = sub.add_parser("sweep", help="a grid of settings x seeds through the job queue; groups with mean ± sd")
    w.add_argument("--preset", help="the base config (see `presets`)")
    w.add_argument("--config", help="JSON file with config sections to apply on top")
    w.add_argument("--set", action="append", metavar="KEY=VALUE", help="dotted override of the base")
    w.add_argument("--grid", action="append", metavar="KEY=V1,V2",
                   help="a dotted key and its values (model.layers: separate the lists with /, e.g. 64,16/128,32)")
    w.add_argument("--seeds", type=int, default=3, help="seeds per cell: train.seed, +1, ... (default 3)")
    w.add_argument("--jobs", type=int, help="cells at a time (default: one per 2 cores)")
    w.add_argument("--tune", action="append", metavar="KEY=LO:HI[:log]",
                   help="equal tuning budget: each cell gets --trials trials (Optuna TPE, on the validation split) "
                        "before its --seeds runs at the best setting, e.g. train.lr=1e-4:1e-2:log")
    w.add_argument("--trials", type=int, default=12, help="trials per cell with --tune (default 12)")
    w.add_argument("--threads", type=int, help="torch threads per cell (default: the fair share; Ray: 2)")
    w.add_argument("--ray", action="store_true", help="run the cells as tasks of a local Ray instance")
    w.add_argument("--ray-address", metavar="ADDR", help="run the cells on this Ray cluster (e.g. ray://head:10001)")
    w.add_argument("--runs-dir", default="runs")
    w.set_defaults(fn=cmd_sweep)
    x = sub.add_parser("export", help="a saved run (or race) for slides (GIF / MP4 / PNG), a run as code (script / "
                                      "notebook), to TensorBoard or MLflow")
    x.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, or a race record (runs/races/ID.json) for its "
                   "replay: both arms at equal compute")
    x.add_argument("--gif", metavar="OUT.gif", help="the replay, 1280x720, looping")
    x.add_argument("--mp4", metavar="OUT.mp4", help="the replay, 1920x1080, H.264 (imageio's ffmpeg; none needed)")
    x.add_argument("--png", metavar="OUT.png", help="the finished run's frame, 1920x1080")
    x.add_argument("--fps", type=float, default=4, help="frames (snapshots) per second")
    x.add_argument("--script", metavar="OUT.py", help="a standalone PyTorch program of the run (no aelab needed)")
    x.add_argument("--notebook", metavar="OUT.ipynb", help="the same program as a Jupyter notebook")
    x.add_argument("--tensorboard", metavar="DIR", help="TensorBoard event files in DIR/RUN_ID (scalars, stages, "
                   "reconstructions, codes for the projector); then: tensorboard --logdir DIR")
    x.add_argument("--mlflow", nargs="?", const="", metavar="TRACKING_URI",
                   help="log to MLflow (needs mlflow): params, metrics, summary, weights; default: MLflow's own store")
    x.set_defaults(fn=cmd_export)
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, KeyError, FileNotFoundError) as e:
        msg = e.args[0] if e.args else str(e)
        print(f"error: {msg}", file=sys.stderr)
        return 2
