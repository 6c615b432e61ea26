"""Training strategies (end-to-end, greedy layer-wise) and the loop they share.

The loop slices mini-batches from in-memory tensors, emits small events (`step`, `epoch`, `stage`,
`snapshot`) to a callback and asks a `Control` whether to pause or stop between batches. It never
writes files or knows a UI exists: the run store subscribes to the events. Record keys are the metric
vocabulary's (`metrics.py`); the compute counter (`gflop`) comes from `flops.py`.

Checkpoints: at every stage end, and at a control check once CHECKPOINT_EVERY_S have passed, the loop
emits a `checkpoint` event carrying everything needed to continue (weights, optimiser, RNG states, the
position in the epoch and its shuffle, the context's counters); `restore` puts such a state back and
`run` then continues where it was taken. On CPU the continued run ends bit-identical to an uninterrupted
one; on CUDA it continues from the same state, but CUDA kernels do not promise bitwise-equal results.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields
from typing import Callable

import torch

from . import flops, probes
from .config import RunConfig, SparsityConfig, kl_stages
from .data import Data
from .model import AE, Dense, StageAE
from .objectives import (contractive_penalty, corrupt, reconstruction_loss, sparsity_penalty,
                         sq_err_per_image)
from .runs import SNAPSHOT_EVERY_S

N_PROBE_IMAGES = 16  # reconstructions shown in the grid
N_PROBE_CODES = 2000  # validation points whose codes are mapped in 2-D
FINE_TUNING = "fine-tuning"  # the stage after greedy pretraining: the whole network, end to end
JACOBIAN_SHARE = 0.1  # the exact ||J||_F (costly for wide/conv encoders) takes at most this share of the time
LOG_EVERY_S = 0.25  # step records: often enough for a live chart, rare enough to cost nothing
EVAL_CHUNK = 1024
CHECKPOINT_EVERY_S = 25.0  # checked every LOG_EVERY_S, so a kill loses under 30 s of training


YIELD_REASON = "waiting: a run launched by a person goes first (example runs train at the lowest priority)"


class Stopped(Exception):
    """Raised inside the loop when the control asks to stop; the strategy unwinds and saves."""


class Diverged(Exception):
    """Raised when the loss becomes NaN/inf."""


class Control:
    """Asked between batches. The default never pauses or stops; the worker's reads a control file."""

    pause_after_stage = False

    def poll(self) -> str | None:
        """'stop', 'pause', 'yield' (a background run makes way for a person's: wait() gives the cores
        back and returns when they are free again) or None."""
        return None

    def wait(self, reason: str) -> str:
        """Block while paused; return 'run' or 'stop'."""
        return "run"


@dataclass
class Stage:
    index: int  # 1-based; fine-tuning is n_stages + 1
    name: str  # "end-to-end", "pretraining layer 2 of 3", "fine-tuning" (what a lecture would say)
    level: int  # which code the map shows (h_level) and how deep reconstructions go
    epochs: int


@dataclass
class Context:
    cfg: RunConfig
    data: Data
    model: AE
    device: torch.device
    emit: Callable[..., None]
    control: Control
    n_stages_total: int
    step: int = 0
    samples: int = 0
    epoch: int = 0  # global epoch counter over all stages
    macs: int = 0  # training multiply-adds so far (flops.py: forward x 3, plus greedy code caching)
    step_macs_per_sample: int = 0  # of the stage being trained
    _t0: float = field(default_factory=time.perf_counter)
    last_snapshot: float = 0.0
    _paused: float = 0.0
    probe: probes.ProbeSet | None = None  # made at the first snapshot (PCA of the train data for linear AEs)
    jacobian_cost: float = 0.0  # seconds the last snapshot with ||J||_F took
    last_jacobian: float = -math.inf
    jacobian: dict = field(default_factory=dict)  # the last ||J||_F measured and its epoch
    checkpoint_every_s: float = CHECKPOINT_EVERY_S
    last_checkpoint: float = 0.0
    resume: dict | None = None  # a checkpoint state to continue from (see `restore`); fit consumes it

    def seconds(self) -> float:
        return time.perf_counter() - self._t0 - self._paused

    def gflop(self) -> float:
        return flops.gflop(self.macs)

    def axes(self) -> dict:
        """The x axes every step and epoch record carries."""
        return dict(epoch=self.epoch, step=self.step, samples=self.samples, seconds=round(self.seconds(), 4),
                    gflop=self.gflop())

    def pause_here(self, reason: str) -> None:
        t = time.perf_counter()
        self.emit("paused", reason=reason, step=self.step, epoch=self.epoch)
        verdict = self.control.wait(reason)
        self._paused += time.perf_counter() - t
        self.emit("resumed", step=self.step)
        if verdict == "stop":
            raise Stopped()


def resolve_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def make_optimizer(params, cfg: RunConfig):
    t = cfg.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=0.9, weight_decay=t.weight_decay)
    if t.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)


def plan_stages(cfg: RunConfig, n: int) -> list[Stage]:
    t = cfg.train
    if t.strategy == "end_to_end":
        return [Stage(1, "end-to-end", n, t.epochs)]
    stages = [Stage(k, f"pretraining layer {k} of {n}", k, t.epochs) for k in range(1, n + 1)]
    if t.finetune_epochs:
        stages.append(Stage(n + 1, FINE_TUNING, n, t.finetune_epochs))
    return stages


def fit(net, encode, x_in: torch.Tensor, stage: Stage, ctx: Context, params, loss_name: str,
        contract_layer, gen: torch.Generator) -> None:
    """Train `net` (x -> x_hat, code by `encode`) on x_in for stage.epochs, emitting events."""
    cfg = ctx.cfg
    opt = make_optimizer(params, cfg)
    sparsity = stage_sparsity(cfg, stage.level)
    n, bs = len(x_in), cfg.train.batch_size
    last_log, run_loss, run_n = 0.0, torch.zeros((), device=ctx.device), 0
    at = _resume_point(ctx, stage, opt)
    for ep in range(at["epoch_in_stage"] if at else 0, stage.epochs):
        if cfg.train.schedule == "cosine":
            for group in opt.param_groups:
                group["lr"] = cfg.train.lr * 0.5 * (1 + math.cos(math.pi * ep / stage.epochs))
        net.train()
        if at and at["perm"] is not None:  # resumed mid-epoch: the same shuffle, from the next batch
            perm, start, ep_loss, ep_n, last_log = (at["perm"].to(x_in.device), at["offset"], at["ep_loss"],
                                                    at["ep_n"], at["last_log"])
        else:
            ctx.epoch += 1
            ep_loss, ep_n, start = torch.zeros((), device=ctx.device), 0, 0
            perm = torch.randperm(n, generator=gen, device=gen.device)
        at = None
        for i in range(start, n, bs):
            xb = x_in[perm[i:i + bs]]
            xc = corrupt(xb, cfg.noise, gen)
            code = encode(xc)
            loss = reconstruction_loss(net.decode(code), xb, loss_name)
            loss = loss + sparsity_penalty(code, sparsity)
            if cfg.contractive.weight:
                loss = loss + contractive_penalty(encode, xc, code, cfg.contractive, contract_layer)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ctx.step += 1
            ctx.samples += len(xb)
            ctx.macs += ctx.step_macs_per_sample * len(xb)
            run_loss += loss.detach()
            ep_loss += loss.detach() * len(xb)
            run_n += 1
            ep_n += len(xb)
            now = ctx.seconds()
            if now - last_log >= LOG_EVERY_S or ctx.step == 1:
                value = (run_loss / run_n).item()
                if not math.isfinite(value):
                    raise Diverged()
                ctx.emit("step", stage=stage.index, **ctx.axes(), loss=value)
                last_log, run_loss, run_n = now, torch.zeros((), device=ctx.device), 0
                _check_control(ctx)
                _checkpoint(ctx, stage, opt, gen, dict(epoch_in_stage=ep, offset=i + bs, perm=perm,
                                                       ep_loss=ep_loss, ep_n=ep_n, last_log=last_log))
        train_loss = (ep_loss / max(ep_n, 1)).item()
        if not math.isfinite(train_loss):
            raise Diverged()
        end_of_epoch(ctx, stage, train_loss, loss_name, net, encode, edge=ep in (0, stage.epochs - 1))
        _check_control(ctx)
        _checkpoint(ctx, stage, opt, gen, dict(epoch_in_stage=ep + 1, offset=0, perm=None),
                    force=ep == stage.epochs - 1)  # every stage end: a kill between stages loses nothing


_NOT_COUNTERS = ("n_stages_total", "checkpoint_every_s")


def counters(ctx: Context) -> dict:
    """The context's numeric fields (step, samples, epoch, ... and any counter added later)."""
    values = {f.name: getattr(ctx, f.name) for f in fields(ctx)
              if not f.name.startswith("_") and f.name not in _NOT_COUNTERS}
    return {k: v for k, v in values.items() if isinstance(v, (int, float, torch.Tensor))}


def _checkpoint(ctx: Context, stage: Stage, opt, gen, position: dict, force: bool = False) -> None:
    """Emit a checkpoint (position: where the next batch starts) when due; wall-clock timing decides
    only when, never what: nothing here touches the weights or the random streams."""
    if not force and ctx.seconds() - ctx.last_checkpoint < ctx.checkpoint_every_s:
        return
    ctx.last_checkpoint = ctx.seconds()
    # the state's tensors are the live ones: a subscriber serialises them before it returns
    ctx.emit("checkpoint", state=dict(
        position, stage=stage.index, model=ctx.model.state_dict(), optimizer=opt.state_dict(),
        gen=gen.get_state(), torch_rng=torch.get_rng_state(), counters=counters(ctx), seconds=ctx.seconds()))


def restore(ctx: Context, state: dict) -> None:
    """Put a checkpoint state back into ctx (weights, global RNG, counters, clock); `run` continues it."""
    ctx.model.load_state_dict(state["model"])
    torch.set_rng_state(state["torch_rng"])
    for k, v in state["counters"].items():
        setattr(ctx, k, v)
    ctx._t0, ctx._paused = time.perf_counter() - state["seconds"], 0.0
    ctx.resume = state


def _resume_point(ctx: Context, stage: Stage, opt) -> dict | None:
    """The checkpoint state if it was taken in this stage (then consumed, with its optimiser state)."""
    if ctx.resume is None or ctx.resume["stage"] != stage.index:
        return None
    at, ctx.resume = ctx.resume, None
    opt.load_state_dict(at["optimizer"])
    return at


def _done(ctx: Context, stage: Stage) -> bool:
    """A stage the checkpoint being resumed has already finished."""
    return ctx.resume is not None and stage.index < ctx.resume["stage"]


def stage_sparsity(cfg: RunConfig, level: int) -> SparsityConfig:
    """The sparsity penalty on the code h_level: KL(rho || rho_hat) only means something for units in
    (0, 1), so a greedy stage with a ReLU/tanh/linear code gets none (L1 applies to any code)."""
    if cfg.sparsity.kind == "kl" and level not in kl_stages(cfg):
        return SparsityConfig()
    return cfg.sparsity


def _check_control(ctx: Context) -> None:
    cmd = ctx.control.poll()
    if cmd == "stop":
        raise Stopped()
    if cmd == "pause":
        ctx.pause_here("paused on request")
    if cmd == "yield":
        ctx.pause_here(YIELD_REASON)


@torch.no_grad()
def evaluate(model: AE, x: torch.Tensor, level: int, loss_name: str, device, keep_codes: int = 0):
    """Pixel-space reconstruction of x by the full network (all n stages) and through stages 1..level.

    One pass: the encoders 1..level are shared, and when level == n (end-to-end, fine-tuning, the last
    greedy stage) the two are the same computation, done once.
    Returns ({vocabulary key: mean over x}, codes h_level of the first keep_codes rows).
    """
    model.eval()
    n_stages = model.n_stages
    sums = dict.fromkeys(("val_full_loss", "val_full_sq_err", "val_stage_pixel_loss", "val_stage_sq_err"), 0.0)
    codes = []
    for i in range(0, len(x), EVAL_CHUNK):
        xb = x[i:i + EVAL_CHUNK].to(device, non_blocking=True)
        h = model.encode(xb, upto=level)
        if i < keep_codes:
            codes.append(h[: keep_codes - i].reshape(len(h[: keep_codes - i]), -1).float().cpu())
        if level < n_stages:
            _add_errors(sums, "val_stage_pixel_loss", "val_stage_sq_err", model.decode(h, frm=level), xb, loss_name)
            for enc in model.encoders[level:]:  # on to the final code h_n
                h = enc(h)
        _add_errors(sums, "val_full_loss", "val_full_sq_err", model.decode(h), xb, loss_name)
    out = {k: v / len(x) for k, v in sums.items()}
    if level == n_stages:
        out.update(val_stage_pixel_loss=out["val_full_loss"], val_stage_sq_err=out["val_full_sq_err"])
    return out, (torch.cat(codes) if codes else None)


def _add_errors(sums: dict, loss_key: str, sq_key: str, x_hat, x, loss_name: str) -> None:
    sums[loss_key] += _eval_loss(x_hat, x, loss_name) * len(x)
    sums[sq_key] += sq_err_per_image(x_hat, x).sum().item()


def _eval_loss(x_hat, x, loss_name: str) -> float:
    """The reconstruction loss for reporting. For BCE this spells the formula out: ~2x faster than
    F.binary_cross_entropy on CPU, and validation runs every epoch. The clamp is float32's smallest normal number
    (log -87, near F.binary_cross_entropy's floor of -100): a subnormal one such as 1e-38 is flushed to zero in
    training (see run), and 0 * log(0) would be NaN."""
    if loss_name != "bce":
        return reconstruction_loss(x_hat, x, loss_name).item()
    tiny = torch.finfo(x_hat.dtype).tiny
    return float(-(x * x_hat.clamp_min(tiny).log() + (1 - x) * (1 - x_hat).clamp_min(tiny).log()).mean())


def end_of_epoch(ctx: Context, stage: Stage, train_loss: float, loss_name: str, net, encode,
                 edge: bool = True) -> None:
    """Validation every epoch: the stage's own objective, the full network's pixel error (the curve
    runs of every strategy share) and, for greedy stages, the error through stages 1..k. A snapshot at a
    stage's first and last epoch and otherwise at most every SNAPSHOT_EVERY_S (short epochs would spend a
    fifth of the time writing snapshots nobody can look at that fast)."""
    d, model, dev = ctx.data, ctx.model, ctx.device
    snap = edge or ctx.seconds() - ctx.last_snapshot >= SNAPSHOT_EVERY_S
    val, codes = evaluate(model, d.x_val, stage.level, ctx.cfg.train.loss, dev,
                          keep_codes=N_PROBE_CODES if snap else 0)
    if stage.index > 1 and stage.level == stage.index:  # greedy stage k > 1: its own loss is on codes
        with torch.no_grad():
            net.eval()
            h_prev = model.encode(d.x_val[:EVAL_CHUNK].to(dev), upto=stage.level - 1)
            stage_val = reconstruction_loss(net(h_prev), h_prev, loss_name).item()
    else:
        stage_val = val["val_stage_pixel_loss"]
    ctx.emit("epoch", stage=stage.index, stage_name=stage.name, **ctx.axes(), train_loss=train_loss,
             val_loss=stage_val, **val)
    if not all(math.isfinite(v) for v in (stage_val, *val.values())):
        raise Diverged()
    if not snap:
        return
    ctx.last_snapshot = ctx.seconds()
    with torch.no_grad():
        probe = d.x_val[:N_PROBE_IMAGES].to(dev)
        recon = model.decode(model.encode(probe, upto=stage.level), frm=stage.level).clamp(0, 1).cpu()
    ctx.emit("snapshot", stage=stage.index, stage_name=stage.name, epoch=ctx.epoch, step=ctx.step,
             level=stage.level, recon=recon, codes=codes, probes=_probes(ctx, stage.level, edge))


def _probes(ctx: Context, level: int, edge: bool) -> dict:
    """The snapshot's instruments (aelab/probes.py) on the run's fixed probe set: the first N_PROBE_CODES
    validation images, corrupted once as the worker's probe.npz shows them (seed + 1). ||J||_F is taken
    at a stage's edges and otherwise only while it costs under JACOBIAN_SHARE of the time since the last."""
    d, cfg = ctx.data, ctx.cfg
    if ctx.probe is None:
        ctx.probe = probes.make_probe_set(ctx.model, d.x_train, d.x_val, cfg.noise, cfg.train.seed + 1,
                                          N_PROBE_CODES, N_PROBE_IMAGES)
    now, t = ctx.seconds(), time.perf_counter()
    jacobian = edge or ctx.jacobian_cost <= JACOBIAN_SHARE * (now - ctx.last_jacobian)
    out = probes.snapshot_probes(ctx.model, ctx.probe, level, N_PROBE_IMAGES, ctx.device, jacobian)
    if jacobian:
        ctx.jacobian_cost, ctx.last_jacobian = time.perf_counter() - t, now
        ctx.jacobian = {k: out[k] for k in ("jacobian_fro", "jacobian_images")} | {"jacobian_epoch": ctx.epoch}
    return {**ctx.jacobian, **out}  # a skipped snapshot repeats the last value, with the epoch it is from


def _exact_jacobian_layer(model: AE):
    """The encoder layer whose Jacobian norm has a closed form (a one-layer dense encoder), else None."""
    return model.encoders[0] if model.n_stages == 1 and isinstance(model.encoders[0], Dense) else None


def train_end_to_end(ctx: Context, stages: list[Stage], gen) -> None:
    model, x = ctx.model, ctx.data.x_train.to(ctx.device)
    _run_stage(ctx, stages[0], model, model.encode, x, list(model.parameters()), ctx.cfg.train.loss,
               _exact_jacobian_layer(model), gen)


def train_greedy(ctx: Context, stages: list[Stage], gen) -> None:
    """Stage k trains a shallow AE on the frozen codes of stages 1..k-1; then optional fine-tuning."""
    model, cfg = ctx.model, ctx.cfg
    x = ctx.data.x_train.to(ctx.device)
    h = x
    for stage in stages:
        done = _done(ctx, stage)  # resuming later: recompute its codes h, do not train it again
        if stage.index > model.n_stages:  # fine-tuning: the whole network
            for p in model.parameters():
                p.requires_grad_(True)
            _run_stage(ctx, stage, model, model.encode, x, list(model.parameters()), cfg.train.loss,
                       _exact_jacobian_layer(model), gen)
            continue
        k = stage.index
        net = StageAE(model, k)
        for p in model.parameters():  # earlier (and later) stages stay frozen
            p.requires_grad_(False)
        params = model.stage_parameters(k)
        for p in params:
            p.requires_grad_(True)
        # Stage 1 reconstructs pixels with the configured loss; later stages reconstruct their input codes.
        loss_name = cfg.train.loss if k == 1 else "mse"
        layer = model.encoders[k - 1] if net.encoder_is_single_dense() else None
        if not done:
            _run_stage(ctx, stage, net, net.encode, h, params, loss_name, layer, gen)
        if k < model.n_stages:
            with torch.no_grad():  # the frozen codes h_k that stage k+1 learns to reconstruct
                model.eval()
                h = torch.cat([net.encode(h[i:i + EVAL_CHUNK]) for i in range(0, len(h), EVAL_CHUNK)])
            if not done:  # training work, counted once (a resumed run's counters already hold it)
                ctx.macs += flops.cache_macs_per_sample(model, k) * len(h)
            more = k < model.n_stages or cfg.train.finetune_epochs
            if more and ctx.control.pause_after_stage and not done:
                ctx.pause_here(f"pretraining layer {k} of {model.n_stages} done")
        elif cfg.train.finetune_epochs and ctx.control.pause_after_stage and not done:
            ctx.pause_here(f"pretraining layer {k} of {model.n_stages} done; fine-tuning next")
    for p in model.parameters():
        p.requires_grad_(True)


def _run_stage(ctx, stage, net, encode, x, params, loss_name, layer, gen) -> None:
    trained = [net.k] if isinstance(net, StageAE) else range(1, ctx.model.n_stages + 1)
    ctx.step_macs_per_sample = flops.step_macs_per_sample(ctx.model, trained)
    ctx.emit("stage", stage=stage.index, stage_name=stage.name, level=stage.level, epochs=stage.epochs,
             **ctx.axes(), n_stages=ctx.n_stages_total)
    fit(net, encode, x, stage, ctx, params, loss_name, layer, gen)


STRATEGIES = {"end_to_end": train_end_to_end, "greedy": train_greedy}


def make_context(cfg: RunConfig, data: Data, model: AE, emit: Callable[..., None] = lambda *a, **k: None,
                 control: Control | None = None, device: torch.device | None = None) -> Context:
    device = device or resolve_device(cfg.train.device)
    model.to(device)
    n_planned = len(plan_stages(cfg, model.n_stages))
    return Context(cfg, data, model, device, emit, control or Control(), n_planned)


def flush_subnormals() -> None:
    """Compute subnormal floats as zero, as TensorFlow does on CPU by default. Weights and Adam moments of inputs
    that never light up (MNIST's border pixels) decay into subnormals, which x86 CPUs compute many times slower:
    by epoch 300 of keras-deep 6 % of them were, and an epoch took 1.6x as long.

    The setting is per thread in hardware and threads inherit it when they start: torch's worker threads get it
    only if this runs before its first parallel operation (the worker process calls it first thing; in a
    notebook whose thread pool is already up, only the calling thread is set)."""
    torch.set_flush_denormal(True)


def run(ctx: Context) -> None:
    """Train ctx.model with the strategy the config names. Raises Stopped or Diverged; the counters
    (steps, samples, seconds) stay readable in ctx either way."""
    flush_subnormals()
    gen = torch.Generator(device=ctx.device)
    gen.manual_seed(ctx.cfg.train.seed)
    if ctx.resume is not None:
        gen.set_state(ctx.resume["gen"])
    STRATEGIES[ctx.cfg.train.strategy](ctx, plan_stages(ctx.cfg, ctx.model.n_stages), gen)


def train(cfg: RunConfig, data: Data, model: AE, **kw) -> Context:
    """Convenience for notebooks and tests: make_context + run."""
    ctx = make_context(cfg, data, model, **kw)
    run(ctx)
    return ctx
