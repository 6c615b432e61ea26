"""Autoencoders as stacks of stages: dense (any depth, optionally tied) and convolutional.

Stage k is encoder block k plus its mirror decoder block k, so greedy training can train one stage
alone (`StageAE`) and the full stack can be used after (`AE.encode(x, upto=k)`, `AE.decode(h, frm=k)`).
Objectives and training loops live elsewhere; this file only builds and runs networks.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import CONV_KERNEL, RunConfig, code_activation, resolved_output_activation

_ACT = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "linear": nn.Identity}


class Dense(nn.Module):
    """Linear layer then activation. `pre`/`post` split it there, so a classifier built from these blocks
    can put BatchNorm between the layer and its activation (forward = post(pre(h)))."""

    def __init__(self, n_in: int, n_out: int, act: str):
        super().__init__()
        self.linear, self.act, self.act_name = nn.Linear(n_in, n_out), _ACT[act](), act

    @property
    def weight(self) -> nn.Parameter:
        return self.linear.weight

    @property
    def width(self) -> int:
        """Features of the pre-activation (what a BatchNorm1d between pre and post normalises)."""
        return self.linear.out_features

    def pre(self, h):  # (B, n_in) -> (B, n_out), before the activation
        return self.linear(h)

    def post(self, a):
        return self.act(a)

    def forward(self, h):  # (B, n_in) -> (B, n_out)
        return self.post(self.pre(h))


class TiedDense(nn.Module):
    """Decoder layer that reuses its encoder's weight W (shape out x in) as W^T, with its own bias.

    The Parameter object itself is shared, so storage, gradients and the optimizer state are one.
    """

    def __init__(self, encoder: Dense, act: str):
        super().__init__()
        self.weight = encoder.linear.weight  # the same nn.Parameter: tied, not copied
        self.bias = nn.Parameter(torch.zeros(encoder.linear.in_features))
        self.act, self.act_name = _ACT[act](), act

    def forward(self, h):  # (B, out) -> (B, in)
        return self.act(F.linear(h, self.weight.t(), self.bias))


class EncConv(nn.Module):
    """3x3 conv, activation, 2x2 max-pool; `pre` is the conv, `post` the rest (forward = post(pre(h)))."""

    def __init__(self, c_in: int, c_out: int, act: str):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, CONV_KERNEL, padding=CONV_KERNEL // 2)
        self.act, self.act_name = _ACT[act](), act

    @property
    def weight(self) -> nn.Parameter:
        return self.conv.weight

    @property
    def width(self) -> int:
        """Channels of the pre-activation (what a BatchNorm2d between pre and post normalises)."""
        return self.conv.out_channels

    def pre(self, h):  # (B, c_in, H, W) -> (B, c_out, H, W), before the activation
        return self.conv(h)

    def post(self, a):  # (B, c_out, H, W) -> (B, c_out, H/2, W/2)
        return F.max_pool2d(self.act(a), 2)

    def forward(self, h):
        return self.post(self.pre(h))


class DecConv(nn.Module):
    """Upsample x2 then a 3x3 conv back to c_in channels; tied: the transposed encoder kernel."""

    def __init__(self, encoder: EncConv, act: str, tied: bool):
        super().__init__()
        c_out, c_in = encoder.conv.out_channels, encoder.conv.in_channels
        if tied:
            # conv_transpose2d expects (in=c_out, out=c_in, k, k): exactly the encoder's Conv2d weight shape.
            self.weight = encoder.conv.weight
            self.bias = nn.Parameter(torch.zeros(c_in))
            self.conv = None
        else:
            self.conv = nn.Conv2d(c_out, c_in, CONV_KERNEL, padding=CONV_KERNEL // 2)
        self.act, self.act_name = _ACT[act](), act

    def forward(self, h):  # (B, c_out, H, W) -> (B, c_in, 2H, 2W)
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        if self.conv is not None:
            return self.act(self.conv(h))
        return self.act(F.conv_transpose2d(h, self.weight, self.bias, padding=CONV_KERNEL // 2))


class AE(nn.Module):
    """An autoencoder of n stages. `encoders[i]` maps level i -> i+1, `decoders[i]` maps level i+1 -> i."""

    def __init__(self, kind: str, input_shape: tuple[int, ...], encoders: list[nn.Module],
                 decoders: list[nn.Module]):
        super().__init__()
        self.kind, self.input_shape = kind, tuple(input_shape)
        self.encoders, self.decoders = nn.ModuleList(encoders), nn.ModuleList(decoders)

    @property
    def n_stages(self) -> int:
        return len(self.encoders)

    @property
    def widths(self) -> tuple[int, ...]:
        """Features (dense) or channels (conv) of levels 1..n: with kind and input_shape, a `flops.Arch`."""
        return tuple(e.width for e in self.encoders)

    def prepare(self, x):
        """Pixels -> level-0 tensor: flatten (dense) or pad H, W to a multiple of 2^n (conv)."""
        if self.kind == "dense":
            return x.reshape(len(x), -1)
        m = 2 ** self.n_stages
        _, _, hgt, wid = x.shape
        return F.pad(x, (0, (-wid) % m, 0, (-hgt) % m))

    def finish(self, x0):
        """Level-0 tensor -> pixels in the input's shape (undo `prepare`)."""
        if self.kind == "dense":
            return x0.reshape(len(x0), *self.input_shape)
        _, hgt, wid = self.input_shape
        return x0[:, :, :hgt, :wid]

    def encode(self, x, upto: int | None = None):
        """Code h_upto of pixels x (default: the code layer)."""
        h = self.prepare(x)
        for enc in self.encoders[: self.n_stages if upto is None else upto]:
            h = enc(h)
        return h

    def decode(self, h, frm: int | None = None):
        """Pixels reconstructed from the level-`frm` code through decoders frm..1."""
        for dec in reversed(self.decoders[: self.n_stages if frm is None else frm]):
            h = dec(h)
        return self.finish(h)

    def forward(self, x):
        return self.decode(self.encode(x))

    def stage_parameters(self, k: int) -> list[nn.Parameter]:
        """Trainable parameters of stage k (1-based), shared (tied) ones once."""
        seen, out = set(), []
        for p in list(self.encoders[k - 1].parameters()) + list(self.decoders[k - 1].parameters()):
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
        return out

    def code_dim(self, upto: int | None = None) -> int:
        with torch.no_grad():
            p = next(self.parameters())
            h = self.encode(torch.zeros(1, *self.input_shape, device=p.device, dtype=p.dtype), upto)
        return int(h[0].numel())


class StageAE(nn.Module):
    """Stage k of `ae` as a shallow AE on level k-1 (stage 1 works on pixels). Shares ae's modules."""

    def __init__(self, ae: AE, k: int):
        super().__init__()
        self.ae, self.k = ae, k

    def encode(self, h):
        if self.k == 1:
            h = self.ae.prepare(h)
        return self.ae.encoders[self.k - 1](h)

    def decode(self, c):
        out = self.ae.decoders[self.k - 1](c)
        return self.ae.finish(out) if self.k == 1 else out

    def forward(self, h):
        return self.decode(self.encode(h))

    def encoder_is_single_dense(self) -> bool:
        return isinstance(self.ae.encoders[self.k - 1], Dense)


def build_model(cfg: RunConfig, input_shape: tuple[int, ...]) -> AE:
    """Build the AE a RunConfig describes for data of `input_shape` ((C,H,W) or (D,))."""
    m = cfg.model
    act, code_act, out_act = m.activation, code_activation(cfg), resolved_output_activation(cfg)
    n = len(m.layers)
    enc_acts = [act] * (n - 1) + [code_act]
    # Decoder i reconstructs level i: pixels (output activation) for i = 0, else hidden h_i.
    dec_acts = [out_act] + [act] * (n - 1)
    encoders, decoders = [], []
    if m.kind == "dense":
        dims = [int(math.prod(input_shape))] + list(m.layers)
        for i in range(n):
            enc = Dense(dims[i], dims[i + 1], enc_acts[i])
            encoders.append(enc)
            decoders.append(TiedDense(enc, dec_acts[i]) if m.tied else Dense(dims[i + 1], dims[i], dec_acts[i]))
    else:
        if len(input_shape) != 3:
            raise ValueError("model.kind: a conv autoencoder needs image data (C, H, W); use dense")
        chans = [input_shape[0]] + list(m.layers)
        for i in range(n):
            enc = EncConv(chans[i], chans[i + 1], enc_acts[i])
            encoders.append(enc)
            decoders.append(DecConv(enc, dec_acts[i], m.tied))
    return AE(m.kind, input_shape, encoders, decoders)


def count_params(module: nn.Module) -> int:
    """Trainable parameters; a tied weight counts once (module.parameters() de-duplicates)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def first_layer_filters(ae: AE):
    """First-layer weights as images: (n_filters, C, h, w)."""
    w = ae.encoders[0].weight.detach().cpu()
    if ae.kind == "dense":
        return w.reshape(w.shape[0], *ae.input_shape) if len(ae.input_shape) == 3 else w[:, None, None, :]
    return w
