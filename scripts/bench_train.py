"""Training-loop overhead: aelab's loop (events, validation every epoch, snapshots written to a run
folder) against a bare PyTorch loop on the same model, data and batch size.

    .venv/bin/python -m scripts.bench_train [--epochs 5] [--batch 256,32] [--rounds 3]

Both loops are timed alternately in one process, best of `rounds` each (the machine is shared and noisy;
compare the ratio within one run). Prints a markdown table for the README. The aelab loop validates every
epoch (the shared full-stack curve), writes step/epoch records and snapshots; the ratios are against the
bare loop with and without a per-epoch validation pass.
"""
import argparse
import tempfile
import time

import torch
import torch.nn.functional as F

from aelab import train as T
from aelab.data import load_data
from aelab.model import build_model
from aelab.presets import PRESETS
from aelab.runs import RunStore, RunWriter


def bare(cfg, data, epochs: int, validate: bool = False) -> float:
    """A plain loop; with validate, also the validation loss once per epoch (what Keras's
    fit(validation_data=...) does, and what aelab's loop must do to draw its validation curve)."""
    T.flush_subnormals()  # the same arithmetic as aelab's loop (for every thread if called before the first op)
    torch.manual_seed(0)
    model = build_model(cfg, data.input_shape)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    x, bs = data.x_train, cfg.train.batch_size
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), bs):
            xb = x[perm[i:i + bs]]
            loss = F.binary_cross_entropy(model(xb), xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if validate:
            with torch.no_grad():
                F.binary_cross_entropy(model(data.x_val), data.x_val).item()
    return epochs * len(x) / (time.perf_counter() - t0)


def aelab_loop(cfg, data, root) -> float:
    torch.manual_seed(0)
    model = build_model(cfg, data.input_shape)
    writer = RunWriter(RunStore(root).create(cfg))
    ctx = T.make_context(cfg, data, model, emit=writer.emit)
    T.run(ctx)  # seconds include per-epoch validation, snapshots and metric writes
    return ctx.samples / ctx.seconds()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", default="256,32")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    T.flush_subnormals()  # before torch's thread pool starts, as the worker does
    data = load_data(PRESETS["keras-deep"].config().data)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, keras-deep (784-128-64-32), mnist5k, "
          f"{args.epochs} epochs per measurement, best of {args.rounds}")
    print("| batch | bare loop | bare loop + val loss per epoch | aelab loop (val, logging, snapshots) "
          "| ratio to bare | ratio to bare + val |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        for bs in (int(b) for b in args.batch.split(",")):
            cfg = PRESETS["keras-deep"].config().with_overrides({"train.batch_size": bs, "train.epochs": args.epochs})
            bare(cfg, data, 1)  # warm-up: the first optimizer step imports torch._dynamo
            b, v, a = [], [], []
            for _ in range(args.rounds):
                b.append(bare(cfg, data, args.epochs))
                v.append(bare(cfg, data, args.epochs, validate=True))
                a.append(aelab_loop(cfg, data, root))
            b, v, a = max(b), max(v), max(a)
            print(f"| {bs} | {b:,.0f} | {v:,.0f} | {a:,.0f} | {a / b:.2f} | {a / v:.2f} |", flush=True)


if __name__ == "__main__":
    main()
