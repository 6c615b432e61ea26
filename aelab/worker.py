"""The training worker: a separate process that trains one run folder and writes it as it goes.

`start_run(cfg, runs_dir)` (CLI, notebooks) and `WorkerPool.start(cfg)` (the app, which keeps one
warm process waiting so a click starts training without paying the torch import) both launch
`python -m aelab.worker` through the job system (aelab.jobs): the run folder is the job's folder, the
worker waits in the machine's queue for a slot, then calls `execute(run)` with its fair share of the
cores. Callers only poll the run store and write control requests; nothing else crosses the process
boundary. An interrupted run with a checkpoint is resumed the same way (`start_resume`,
`WorkerPool.resume`): the worker finds checkpoint.pt in the folder and continues from it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from . import jobs, standby
from .config import RunConfig, validate, validate_for_data
from .jobs import watch
from .jobs.record import CANCEL_FILE
from .runs import (
    CHECKPOINT,
    Run,
    RunStore,
    RunWriter,
    StoreWriteError,
    Unreadable,
    atomic_write_json,
    read_json,
)

POLL_S = 0.1  # how often the control file is looked at (a stat call) while training
SHARE_S = 2.0  # how often a running job re-reads how many jobs share the cores, and re-sets its threads
JOB_STATE = {"completed": "completed", "stopped": "completed", "diverged": "failed", "failed": "failed",
             "interrupted": "interrupted"}  # run outcome -> job state (the run's status says more)
DIVERGED_HINT = "the loss became NaN/inf: lower train.lr (e.g. by 10x) or the regulariser weights"
CHECKPOINT_ENV = "AELAB_CHECKPOINT_EVERY_S"  # seconds between checkpoints (tests lower it)


class FileControl:
    """Reads control.json (written by Run.request) between batches; SIGTERM also means stop."""

    def __init__(self, run: Run, job: jobs.Job | None = None):
        self.path, self.job = run.dir / "control.json", job
        self._mtime, self._last_check, self._stop_signal = 0.0, 0.0, False
        self._last_share = time.monotonic()
        self._yielding = False
        ctl = read_json(self.path, {})
        self.seq = ctl.get("seq", 0)
        self.pause_after_stage = bool(ctl.get("pause_after_stage", False))

    def signal_stop(self, *_):
        self._stop_signal = True

    def _read_new(self) -> dict | None:
        """The control record if a new request arrived since the last one we acted on."""
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        if mtime == self._mtime:
            return None
        self._mtime = mtime
        ctl = read_json(self.path, {})
        self.pause_after_stage = bool(ctl.get("pause_after_stage", self.pause_after_stage))
        if ctl.get("seq", 0) <= self.seq:
            return None
        self.seq = ctl["seq"]
        return ctl

    def poll(self) -> str | None:
        if self._stop_signal:
            return "stop"
        now = time.monotonic()
        if now - self._last_check < POLL_S:
            return None
        self._last_check = now
        if self.job is not None and now - self._last_share > SHARE_S:
            self._last_share = now
            if self.job.should_yield():  # a background run and a person's run appeared: make way
                self._yielding = True
                return "yield"
            share_cores(self.job)  # between batches, on the training thread (torch's thread count is per thread)
        ctl = self._read_new()
        if ctl and ctl.get("command") in ("stop", "pause"):
            return ctl["command"]
        return None

    def wait(self, reason: str) -> str:
        if self._yielding:  # back in line until the work above is done; only a stop ends the wait early
            self._yielding = False
            if not self.job.give_way(cancelled=self.stop_asked):
                return "stop"
            share_cores(self.job)
            return "run"
        while True:
            if self._stop_signal:
                return "stop"
            ctl = self._read_new()
            if ctl and ctl.get("command") == "stop":
                return "stop"
            if ctl and ctl.get("command") == "resume":
                return "run"
            time.sleep(POLL_S)

    def stop_asked(self) -> bool:
        """A stop was asked (before or after this process started): a queued run then leaves the line."""
        return self._stop_signal or read_json(self.path, {}).get("command") == "stop"


def warm_up() -> None:
    """The first optimizer step imports torch._dynamo (~4 s): pay it before the clock matters."""
    import torch

    warm = torch.nn.Linear(8, 8)
    opt = torch.optim.Adam(warm.parameters())
    torch.nn.functional.binary_cross_entropy(torch.sigmoid(warm(torch.rand(4, 8))), torch.rand(4, 8)).backward()
    opt.step()


def share_cores(job: jobs.Job) -> int:
    """Set torch's threads to this job's fair share of the cores (no oversubscription)."""
    import torch

    n = job.share_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def execute(run: Run, queue: jobs.Queue | None = None) -> dict:
    """Train the run in this process, writing everything to its folder. Returns the summary.

    With a queue (the worker process), wait for a slot first and train with a fair share of the cores.
    """
    import torch

    from . import train as T
    from .data import load_data
    from .model import build_model, count_params
    from .objectives import corrupt

    checkpoint = run.checkpoint()  # a resumed run: the folder goes back to that moment, then appends
    if checkpoint is not None:
        run.rewind(checkpoint)
    writer = RunWriter(run)
    board = _board(run)
    job = jobs.Job(run.dir, "train", queue=queue)
    if job.priority > 0:  # a background run (an example): below everything else on the machine, too
        os.nice(10)
    control = FileControl(run, job if queue else None)
    signal.signal(signal.SIGTERM, control.signal_stop)
    writer.set_status(status="queued", pid=os.getpid())
    if not job.wait_turn(cancelled=control.stop_asked):
        summary = {"status": "cancelled", "message": "cancelled before it started"}
        writer.finish(summary)
        return summary
    job.start()
    threads = share_cores(job) if queue else torch.get_num_threads()
    writer.set_status(status="running", started=time.time(), threads=threads, message="loading data")
    ctx, model, cfg, summary = None, None, None, {}
    try:
        cfg = validate(run.config)
        data = load_data(cfg.data)
        validate_for_data(cfg, data.kind, *data.value_range)
        warm_up()  # the first optimizer step's imports (~1.4 s) are not training time (a warm standby paid them)
        torch.manual_seed(cfg.train.seed)  # after warm_up, which draws random numbers
        model = build_model(cfg, data.input_shape)
        params = count_params(model)
        stages = T.plan_stages(cfg, model.n_stages)
        writer.set_status(input_shape=list(data.input_shape), params=params, n_stages=len(stages),
                          epochs_total=sum(s.epochs for s in stages), data=data.describe(), message="")
        gen = torch.Generator().manual_seed(cfg.train.seed + 1)
        probe = data.x_val[: T.N_PROBE_IMAGES]
        writer.write_probe(images=(probe.numpy() * 255).round().clip(0, 255).astype("uint8"),
                           noisy=(corrupt(probe, cfg.noise, gen).clamp(0, 1).numpy() * 255).round().astype("uint8"),
                           labels=(data.y_val[: T.N_PROBE_CODES].numpy() if data.y_val is not None else []),
                           classes=data.classes or [])
        ctx = T.make_context(cfg, data, model, emit=_tee(writer.emit, board), control=control)
        ctx.checkpoint_every_s = float(os.environ.get(CHECKPOINT_ENV, T.CHECKPOINT_EVERY_S))
        if checkpoint is not None:
            T.restore(ctx, checkpoint)
        if job.rec.get("group"):  # a race: the first step waits until every arm is ready for its own
            writer.set_status(message="waiting for the other runs of its race")
            job.wait_group(cancelled=control.stop_asked)
            job.set(go_threads=share_cores(job))  # the share it starts with, beside the other arms
            writer.set_status(message="")
        T.run(ctx)
        summary["status"] = "completed"
    except T.Stopped:
        summary.update(status="stopped", message="stopped on request; the model so far is saved")
    except T.Diverged:
        summary.update(status="diverged", message=DIVERGED_HINT)
    except KeyboardInterrupt:
        summary.update(status="interrupted", message="interrupted (Ctrl-C)")
    except StoreWriteError as e:  # a full disk: stop here, the run reads up to its last complete epoch
        summary.update(status="failed", message=str(e), error=e.record())
    except Exception as e:  # any other failure: keep a readable run with the reason
        summary.update(status="failed", message=f"{type(e).__name__}: {e}",
                       error={"kind": "exception", "type": type(e).__name__})
        try:
            (run.dir / "error.txt").write_text(traceback.format_exc())
        except OSError:
            pass  # the message above is the part that matters
    summary = _finish(writer, run, cfg, model, ctx, summary)
    if board is not None:
        board.close()
    state = JOB_STATE.get(summary["status"], "failed")
    job.end(state, None if state == "completed" else summary["message"])
    return summary


def _board(run: Run):
    """The optional live TensorBoard log (AELAB_TENSORBOARD=DIR): every new run also logs there."""
    from .tracking import TENSORBOARD_ENV, LiveTensorBoard

    logdir = os.environ.get(TENSORBOARD_ENV)
    return LiveTensorBoard(run, logdir) if logdir else None


def _tee(emit, board):
    """The run writer's emit, followed (when logging) by the TensorBoard log catching up on the folder."""
    if board is None:
        return emit

    def both(kind: str, **kw) -> None:
        emit(kind, **kw)
        board.event(kind)
    return both


def _finish(writer: RunWriter, run: Run, cfg, model, ctx, summary: dict) -> dict:
    from .evaluate import summarize
    from .model import count_params

    summary.setdefault("message", "")
    summary["strategy"] = cfg.train.strategy if cfg else run.config_dict().get("train", {}).get("strategy")
    summary["name"] = cfg.name if cfg else ""
    summary["params"] = count_params(model) if model is not None else None
    epochs = run.epochs()
    summary["epochs_completed"] = len(epochs)
    seconds = ctx.seconds() if ctx else 0.0
    summary["seconds"] = round(seconds, 3)
    summary["samples_per_second"] = round(ctx.samples / seconds, 1) if ctx and seconds > 0 else None
    summary["step"] = ctx.step if ctx else 0
    summary["samples"] = ctx.samples if ctx else 0
    summary["gflop"] = ctx.gflop() if ctx else 0.0
    keys = ("val_full_loss", "val_full_sq_err", "test_full_loss", "test_full_sq_err", "code_mean_activation",
            "linear_probe_accuracy")
    summary["weights"] = False
    if model is not None and ctx is not None and summary["status"] in ("completed", "stopped", "interrupted") \
            and ctx.step > 0:
        try:
            writer.save_weights(model)
            summary["weights"] = True
        except StoreWriteError as e:  # never "completed" without the model it claims
            summary.update(status="failed", message=str(e), error=e.record())
    if summary["weights"]:
        try:
            summary.update(summarize(model.cpu(), ctx.data, cfg.train.loss, cfg.train.seed))
        except Exception as e:  # evaluation must not lose the run
            summary["message"] += f" (evaluation failed: {type(e).__name__}: {e})"
    for k in keys:
        summary.setdefault(k, None)
    if summary["status"] == "completed":  # nothing left to resume: drop the weights' 3x-size copy
        (run.dir / CHECKPOINT).unlink(missing_ok=True)
    try:
        writer.finish(summary)
    except StoreWriteError as e:  # no summary on disk: the status alone says why (if even that fits)
        summary.update(status="failed", message=str(e), error=e.record())
        try:
            writer.set_status(status="failed", message=summary["message"], error=summary["error"])
        except StoreWriteError:
            pass  # nothing fits on the disk: the exit code and the dead pid still tell the caller
    return summary


# ----------------------------------------------------------------------------- launching

def start_run(cfg: RunConfig, runs_dir: str | os.PathLike = "runs", priority: int = 0) -> tuple[Run, subprocess.Popen]:
    """Validate, create the run folder, put it in the queue and start a fresh worker process on it.
    priority: 0 for a person's run, jobs.queue.BACKGROUND for an example (last in line, yields the cores)."""
    return start_group([cfg], runs_dir, priority)[0]


def start_group(cfgs: list[RunConfig], runs_dir: str | os.PathLike = "runs",
                priority: int = 0) -> list[tuple[Run, subprocess.Popen]]:
    """Runs that start together (a race), each in a fresh worker: consecutive places in the queue, and each
    holds its slot until the others have theirs (one run: no group). All are validated before any is created."""
    for cfg in cfgs:
        validate(cfg)
    runs = [RunStore(runs_dir).create(cfg) for cfg in cfgs]
    group = [str(r.dir) for r in runs] if len(runs) > 1 else None
    for r in runs:
        jobs.prepare(r.dir, "train", queue=jobs.Queue(), group=group, priority=priority)
    return [(r, jobs.spawn("aelab.worker", str(r.dir), log=r.dir / "worker.log")) for r in runs]


def start_resume(run: Run) -> subprocess.Popen:
    """Put an interrupted run back in the queue and start a fresh worker that continues it."""
    prepare_resume(run)
    return jobs.spawn("aelab.worker", str(run.dir), log=run.dir / "worker.log")


def prepare_resume(run: Run, pid: int | None = None) -> None:
    """Queue an interrupted run again (ValueError naming the run when it cannot be resumed). Old control
    requests (the stop that may have preceded the crash) are cleared so the resumed run does not obey them."""
    if not run.resumable():
        why = "it has no checkpoint" if run.status().get("status") == "interrupted" else \
            f"it is {run.status().get('status')}, not interrupted"
        raise ValueError(f"run {run.id}: cannot resume: {why}")
    try:
        run.checkpoint()  # read now, so a damaged one is named here and not in a worker's log
    except Unreadable as e:
        raise ValueError(f"run {run.id}: cannot resume: {e}") from None
    jobs.prepare(run.dir, "train", queue=jobs.Queue(), pid=pid)  # first: then "queued" is judged live
    ctl = read_json(run.dir / "control.json", {})
    atomic_write_json(run.dir / "control.json", dict(ctl, command="run"))
    (run.dir / CANCEL_FILE).unlink(missing_ok=True)
    st = read_json(run.dir / "status.json", {})
    atomic_write_json(run.dir / "status.json", dict(st, status="queued", message="resuming", updated=time.time()))


# A run paused between stages, or a long one, must not leave every later Launch to a cold worker: with no standby
# left for this long, one starts beside the launched runs.
STANDBY_MAX_WAIT_S = 60.0
RESPAWN_CHECK_S = 0.25  # how often the pool looks whether its launched runs have ended


class WorkerPool:
    """Keeps warm workers (torch and aelab imported) waiting on stdin for a run folder: one, or one per arm of a
    race (spares=2), so that a race's runs start as fast as a single run.

    Start-up of a fresh Python+torch process costs seconds; a warm one starts training at once (it
    still takes its place in the queue: at once when a slot is free). The standbys are services: they
    end as soon as the process that holds the pool is gone.
    """

    def __init__(self, runs_dir: str | os.PathLike = "runs", respawn_delay_s: float = 0.0, env: dict | None = None,
                 spares: int = 1, spare_gap_s: float = 0.0, first: subprocess.Popen | None = None):
        """respawn_delay_s: with a delay, standbys are started again only that long after the launched runs have
        all ended (checked every RESPAWN_CHECK_S), not beside them: their imports and warm-up take ~5 CPU-seconds
        each, which on a small machine come out of the training a class is watching; but when no standby has been
        left for STANDBY_MAX_WAIT_S (a long or paused run), one starts anyway. Without a delay a launch starts the
        missing ones at once. spares: how many standbys to keep; the first starts with the pool, each further one
        at least spare_gap_s after the one before (one import at a time). A launch with none ready gets a fresh
        process. env: extra variables for the workers (the app's reserved core). first: a standby started before
        the pool (standby.prestart), taken as its first one."""
        self.store = RunStore(runs_dir)
        self.respawn_delay_s = respawn_delay_s
        self.env = env
        self.spares, self.spare_gap_s = spares, spare_gap_s
        self._lock = threading.Lock()
        self._spares: list[subprocess.Popen] = []
        self._children: list[subprocess.Popen] = []
        self._filler: threading.Thread | None = None
        self._closed = False
        self._last_spawn = self._emptied_at = time.monotonic()
        if first is not None and first.poll() is None:
            self._spares.append(first)
        else:
            self._spawn_standby()
        if spares > 1:
            self._fill()

    @property
    def _standby(self) -> subprocess.Popen | None:
        """The standby the next launch gets (None while the pool waits to start one)."""
        return self._spares[0] if self._spares else None

    def _fill(self) -> None:
        """Bring the standbys back to `spares` in a thread. One thread at a time does it: the caller holds the lock
        (or is __init__), and the thread clears its handle under the lock as it ends, so no refill is missed."""
        if self._filler is not None:
            return

        def fill():
            ended = None
            try:
                while True:
                    time.sleep(RESPAWN_CHECK_S)
                    with self._lock:
                        self.reap()
                        if len(self._spares) >= self.spares or self._closed:
                            return
                        now = time.monotonic()
                        if self._children:
                            ended = None
                        elif ended is None:
                            ended = now
                        quiet = ended is not None and now - ended >= self.respawn_delay_s
                        overdue = not self._spares and now - self._emptied_at > STANDBY_MAX_WAIT_S
                        # with no standby left nothing of ours is importing; else wait the gap after the last one
                        apart = not self._spares or now - self._last_spawn >= self.spare_gap_s
                        if (quiet or overdue) and apart:
                            self._spawn_standby()
            finally:
                with self._lock:
                    if self._filler is threading.current_thread():
                        self._filler = None  # a launch after this starts a new filler (also if this one failed)
        self._filler = threading.Thread(target=fill, daemon=True, name="aelab-standby-filler")
        self._filler.start()

    def _spawn_standby(self) -> None:
        self._spares.append(standby.spawn(self.env))
        self._last_spawn = time.monotonic()

    def start(self, cfg: RunConfig) -> Run:
        validate(cfg)
        run = self.store.create(cfg)
        return self._launch(run, lambda pid: jobs.prepare(run.dir, "train", queue=jobs.Queue(), pid=pid))

    def start_group(self, cfgs: list[RunConfig]) -> list[Run]:
        """Runs that start together (a race): consecutive places in the queue, and each holds its slot
        until the others have theirs. All are validated before any is created."""
        for cfg in cfgs:
            validate(cfg)
        runs = [self.store.create(cfg) for cfg in cfgs]
        group = [str(r.dir) for r in runs]
        return [self._launch(r, lambda pid, r=r: jobs.prepare(r.dir, "train", queue=jobs.Queue(), pid=pid,
                                                              group=group)) for r in runs]

    def resume(self, run: Run) -> Run:
        """Continue an interrupted run from its checkpoint (ValueError when it cannot be)."""
        return self._launch(run, lambda pid: prepare_resume(run, pid))

    def _launch(self, run: Run, prepare) -> Run:
        """Hand run to a standby (or a fresh process); prepare(pid) queues it first (when it raises, the standby
        stays for the next launch)."""
        with self._lock:
            self.reap()
            proc = self._spares[0] if self._spares else None
            prepare(proc.pid if proc is not None else None)
            if proc is not None:
                self._spares.pop(0)
                if not self._spares:
                    self._emptied_at = time.monotonic()
            try:
                if proc is None:
                    raise BrokenPipeError
                proc.stdin.write((str(run.dir.resolve()) + "\n").encode())
                proc.stdin.flush()
                proc.stdin.close()
            except (BrokenPipeError, OSError):
                proc = jobs.spawn("aelab.worker", str(run.dir), env=self.env)
            self._children.append(proc)
            if self.respawn_delay_s > 0:
                self._fill()
            else:
                while len(self._spares) < self.spares and not self._closed:
                    self._spawn_standby()
        return run

    def reap(self) -> None:
        """Collect finished children so none stays a zombie, and let go of standbys that died."""
        self._children = [p for p in self._children if p.poll() is None]
        self._spares = [p for p in self._spares if p.poll() is None]

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True  # no filler thread starts a standby after this
            spares, self._spares = self._spares, []
        for p in spares:
            if p.poll() is None:
                p.kill()
                p.wait()


def main(argv: list[str]) -> int:
    from . import train

    train.flush_subnormals()  # before torch starts its thread pool, whose threads inherit the setting
    if argv and argv[0] == "--standby":
        # Pay the imports now, then wait for a run folder on stdin. Parent gone (EOF) = exit quietly.
        from . import evaluate, model  # noqa: F401
        from .config import DataConfig
        from .data import load_data
        load_data(DataConfig())  # the default dataset, cached in-process for the run to come
        warm_up()
        line = watch.handed_line()  # a run folder, also when the server died right after handing it
        if not line:
            return 0
        argv = [line]
    if len(argv) != 1:
        print("usage: python -m aelab.worker RUN_DIR | --standby", file=sys.stderr)
        return 2
    log = open(Path(argv[0]) / "worker.log", "a", buffering=1)
    os.dup2(log.fileno(), 2)  # tracebacks of anything unexpected land in the run folder
    summary = execute(Run(argv[0]), queue=jobs.Queue())
    return 0 if summary["status"] in ("completed", "stopped", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
